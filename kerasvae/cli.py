"""The `kerasvae` command: parse arguments, load the config, call a pipeline step. No logic here.

  kerasvae run                                  the quickstart pipeline on built-in dSprites
  kerasvae run --config mnist_vae --set model.latent_dim=2
  kerasvae ingest|train|evaluate|export --config FILE.yaml [--set key=value ...] [--force]
  kerasvae validate --config FILE.yaml --images FOLDER     new data against the training data's
  kerasvae infer --config FILE.yaml [--images FOLDER] [--model saved_models/vae/1]   scores
  kerasvae study NAME [--config FILE] [--quick] [--report-only]
  kerasvae study render-docs                    README's studies table, the studies index and
                                                each report's across-seed section from results.json
  kerasvae config [--config FILE]               print the full, validated config
  kerasvae pipeline compile --config NAME --output pipeline.yaml   the Kubeflow Pipelines spec
  kerasvae pipeline run-local --package pipeline.yaml              run it on KFP's local runner
  kerasvae pipeline compile --study NAME [--quick] --output study.yaml   a study as a KFP sweep
  kerasvae pipeline run-local --study NAME --quick                 the sweep on KFP's local runner
"""

import argparse
import sys
from pathlib import Path

STEP_COMMANDS = ("ingest", "train", "evaluate", "export")
# `kerasvae study render-docs` (run from the repository's root): not a study but the command
# that renders the published numbers from the committed results.json files.
RENDER_DOCS = "render-docs"
# The studies `kerasvae study --help` lists: `kerasvae.studies.STUDIES`' names, written out so
# that the help does not import the studies (tests/test_package.py checks they are the same).
STUDY_NAMES = ("latent-dim", "beta", "ae-vs-vae", "priors", "disentanglement", "methods",
               "precision", "budget", "ood")


def _parser():
  parser = argparse.ArgumentParser(
      prog="kerasvae", description="Train, evaluate and export variational autoencoders.")
  sub = parser.add_subparsers(dest="command", required=True)
  helps = {"run": "all steps: ingest, train, evaluate, export",
           "ingest": "read a data source into an Examples artifact",
           "train": "train the configured model (resumes an interrupted training)",
           "evaluate": "metrics, figures and the blessing of a trained model",
           "export": "write a TF Serving SavedModel of a blessed model",
           "validate": "check new data against the training data's schema and statistics",
           "infer": "per-example codes and anomaly scores of a data set (sharded, resumable)",
           "config": "print the validated config"}
  for name, text in helps.items():
    p = sub.add_parser(name, help=text, description=text)
    p.add_argument("--config", default=None,
                   help="YAML file or bundled config name (default: quickstart)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.latent_dim=2 (repeatable)")
    if name != "config":
      p.add_argument("--run-dir", default=None,
                     help="run directory (default: <run.runs_dir>/<run.name>-<config hash>)")
      p.add_argument("--force", action="store_true",
                     help="redo the step(s) even if unchanged; export an unblessed model")
    if name in ("validate", "infer"):
      p.add_argument("--images", default=None, metavar="FOLDER",
                     help="an image folder (PNG/JPEG, one subfolder per class) as the data")
    if name == "infer":
      p.add_argument("--model", default=None, metavar="VERSION_DIR",
                     help="a SavedModel version, e.g. saved_models/vae/1 (default: infer.model, "
                     "else the run's trained model)")
  study = sub.add_parser("study", help="run a study (several runs and a report)")
  study.add_argument("name", help=", ".join(STUDY_NAMES[:-1]) + f" or {STUDY_NAMES[-1]}"
                     " (dashes or underscores); "
                     "render-docs rewrites the published numbers from results.json")
  study.add_argument("--config", default=None, help="the study's YAML (default: bundled)")
  study.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
  study.add_argument("--quick", action="store_true", help="a tiny version (minutes) for tests")
  study.add_argument("--output", default=None, help="study directory (default: studies/<name>)")
  study.add_argument("--force", action="store_true",
                     help="redo every trial's steps and the classifier even if finished")
  study.add_argument("--report-only", action="store_true",
                     help="train nothing: report on the trials that have finished")
  _add_pipeline_parser(sub)
  return parser


def _add_pipeline_parser(sub):
  pipeline = sub.add_parser("pipeline", help="the pipeline on Kubeflow Pipelines (extra: kfp)")
  commands = pipeline.add_subparsers(dest="pipeline_command", required=True)
  build = commands.add_parser("compile", help="write the KFP v2 pipeline spec (YAML)")
  _add_study_arguments(build)
  build.add_argument("--config", default=None,
                     help="YAML file or bundled config name (default: quickstart); with "
                     "--study, the study's YAML (default: bundled)")
  build.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
  build.add_argument("--output", required=True, help="the spec file, e.g. pipeline.yaml")
  build.add_argument("--image", default=None,
                     help="container image of the components, built from the Dockerfile and "
                     "pushed where the cluster pulls from, e.g. REGISTRY/kerasvae:0.1.0 "
                     "(default: kerasvae:0.1.0, the tag of `docker build -t kerasvae:0.1.0 .`; "
                     "run-local uses no image)")
  build.add_argument("--accelerator-type", default="",
                     help="the train step's accelerator, e.g. nvidia.com/gpu (default: none)")
  build.add_argument("--accelerator-count", type=int, default=1,
                     help="accelerators of the train step when a type is set (default: 1)")
  local = commands.add_parser("run-local", help="run a compiled spec on KFP's local runner")
  source = local.add_mutually_exclusive_group(required=True)
  source.add_argument("--package", help="the compiled spec (pipeline.yaml or study.yaml)")
  _add_study_arguments(source, local)
  local.add_argument("--config", default=None, help="with --study: the study's YAML")
  local.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
  local.add_argument("--force-export", action="store_true",
                     help="export even if the evaluation does not bless the model")
  local.add_argument("--pipeline-root", default="kfp_local",
                     help="where the runner writes the artifacts (default: kfp_local)")
  local.add_argument("--verbose", action="store_true",
                     help="print the runner's and the steps' whole output (default: one line "
                     "per task; the rest in run-local.log in the run's folder)")


def _add_study_arguments(group, parser=None):
  """--study, --quick and --parallelism (the last two on `parser`, default the group's)."""
  parser = parser or group
  group.add_argument("--study", default=None,
                     help=f"a study ({', '.join(STUDY_NAMES)}): its trials as a sweep, ingest "
                     "once, train and evaluate per trial in a ParallelFor, one report task")
  parser.add_argument("--quick", action="store_true", help="with --study: its tiny version")
  parser.add_argument("--parallelism", type=int, default=0,
                      help="with --study: the most trials running at once (default: 0, no cap)")


def _pipeline(args):
  """`kerasvae pipeline ...`: the only command that needs kfp, imported here and nowhere else."""
  from kerasvae import kfp_pipeline  # pylint: disable=import-outside-toplevel
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  if not args.study and (args.quick or args.parallelism):
    raise ConfigError("Expected --quick and --parallelism with --study only. Received: "
                      + ("--quick" if args.quick else f"--parallelism {args.parallelism}"))
  if args.pipeline_command == "compile":
    image = args.image or kfp_pipeline.DEFAULT_IMAGE
    if args.study:
      path = kfp_pipeline.compile_study(
          args.study, args.output, args.config, args.overrides, args.quick, image=image,
          accelerator_type=args.accelerator_type, accelerator_count=args.accelerator_count,
          parallelism=args.parallelism)
    else:
      path = kfp_pipeline.compile_pipeline(
          args.config, args.output, args.overrides, image=image,
          accelerator_type=args.accelerator_type, accelerator_count=args.accelerator_count)
    print(f"pipeline: wrote {path}")
    if image == kfp_pipeline.DEFAULT_IMAGE:
      print(f"pipeline: its components run in the image {image}, which no registry holds: build "
            f"it from the Dockerfile (docker build -t {image} .), push it where the cluster "
            "pulls from and compile with --image REGISTRY/kerasvae:0.1.0")
    return 0
  package, overrides = args.package, args.overrides
  if args.study:  # compiled into the pipeline root, then run
    package = kfp_pipeline.compile_study(
        args.study, Path(args.pipeline_root) / f"study-{args.study}.yaml", args.config,
        args.overrides, args.quick, parallelism=args.parallelism)
    print(f"pipeline: wrote {package}")
    overrides = []
  elif args.config:
    raise ConfigError("Expected --config with --study only (a compiled spec holds its config). "
                      f"Received: --config {args.config}")
  try:
    run_dir = kfp_pipeline.run_local(package, args.pipeline_root, overrides,
                                     force_export=args.force_export, verbose=args.verbose)
  except RuntimeError as e:  # kfp.local: a task failed (the message or the output above says why)
    print(f"kerasvae pipeline run-local: error: {e}", file=sys.stderr)
    return 1
  print(f"pipeline: artifacts in {run_dir}")
  if kfp_pipeline.is_study_spec(package):
    print("\n".join(kfp_pipeline.study_outcome(run_dir, package)))
  else:
    print(kfp_pipeline.export_outcome(run_dir))
  return 0


def _validate_or_infer(args, config):
  """`kerasvae validate` and `kerasvae infer`."""
  from kerasvae import pipeline  # pylint: disable=import-outside-toplevel
  from kerasvae.config import from_dict  # pylint: disable=import-outside-toplevel
  from kerasvae.data.config import DataConfig  # pylint: disable=import-outside-toplevel
  data = None
  if args.images:
    data = from_dict(DataConfig, {"source": "image_folder",
                                  "image_folder": {"root": str(Path(args.images).absolute())}},
                     where="--images")
  run_dir = Path(args.run_dir) if args.run_dir else None
  if args.command == "validate":
    pipeline.validate_data(config, data, run_dir=run_dir)
  else:
    out = pipeline.infer_data(config, data, model=args.model, run_dir=run_dir, force=args.force)
    print(f"TensorBoard: tensorboard --logdir {out / 'logs'}")
  return 0


def _user_errors():
  """The exceptions reported as one line (no traceback) with exit status 2.

  Imported lazily: `kerasvae.training` imports TensorFlow, and a TrainingError can only
  have been raised if it was imported.
  """
  from kerasvae.artifacts import ArtifactError  # pylint: disable=import-outside-toplevel
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  from kerasvae.data.sources import DataError  # pylint: disable=import-outside-toplevel
  from kerasvae.steps.common import StepError  # pylint: disable=import-outside-toplevel
  errors = (ConfigError, DataError, StepError, ArtifactError, FileExistsError, FileNotFoundError,
            NotADirectoryError, IsADirectoryError, PermissionError)
  training = sys.modules.get("kerasvae.training")
  return errors + ((training.TrainingError,) if training is not None else ())


def main(argv=None):
  args = _parser().parse_args(argv)
  if args.command == "pipeline":
    try:
      import kfp  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
      print("kerasvae pipeline: error: needs the Kubeflow Pipelines SDK (kfp), which the core "
            "package does not install. Install the extra: pip install 'kerasvae[kfp]'",
            file=sys.stderr)
      return 2
  import logging  # pylint: disable=import-outside-toplevel
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  from kerasvae import _backend  # pylint: disable=import-outside-toplevel
  _backend.prefer_onednn()
  _backend.quiet_tensorflow_import()
  try:
    if args.command == "study" and args.name == RENDER_DOCS:
      from kerasvae.studies import published  # pylint: disable=import-outside-toplevel
      changed = published.render_docs(".")
      print("study render-docs: " + (", ".join(str(p) for p in changed) if changed
                                     else "README.md and docs/studies already up to date"))
      return 0
    if args.command == "study":
      from kerasvae import studies  # pylint: disable=import-outside-toplevel
      report = studies.run_study(args.name, config=args.config, overrides=args.overrides,
                                 quick=args.quick, output=args.output, force=args.force,
                                 report_only=args.report_only)
      print(f"study {args.name}: report at {report}")
      return 0
    if args.command == "pipeline":
      return _pipeline(args)
    from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
    config = configs.load_pipeline_config(args.config, args.overrides)
    if args.command == "config":
      import yaml  # pylint: disable=import-outside-toplevel
      from kerasvae.config import to_dict  # pylint: disable=import-outside-toplevel
      print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
      return 0
    if args.command in ("validate", "infer"):
      return _validate_or_infer(args, config)
    if args.command in ("run", "ingest"):  # a wrong input path is named before TF's import
      from kerasvae.data import sources  # pylint: disable=import-outside-toplevel
      sources.check_input_paths(config.ingest.data)
    from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
    from kerasvae.steps import table  # pylint: disable=import-outside-toplevel
    steps = STEP_COMMANDS if args.command == "run" else (args.command,)
    # A missing upstream step is named before TensorFlow's import, not 20 s later.
    table.check_upstream(config, steps,
                         Path(args.run_dir) if args.run_dir else common.run_directory(config))
    from kerasvae import pipeline  # pylint: disable=import-outside-toplevel
    out = pipeline.run_pipeline(config, steps=steps, force=args.force,
                                run_dir=Path(args.run_dir) if args.run_dir else None)
    print(f"run directory: {out['run_dir']}")
    if "saved_model" in out:
      print(f"SavedModel: {out['saved_model']}")
    print(f"TensorBoard: tensorboard --logdir {Path(out['run_dir']).parent}")
    return 0
  except _user_errors() as e:  # evaluated only when an exception arrives here
    print(f"kerasvae {args.command}: error: {e}", file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except  # re-raised unless named below
    # The steps name the folder they write (artifacts.disk_full_named); this names the rest,
    # and a read-only file system or an over-long name.
    from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
    message = (artifacts.disk_full_message(e) if artifacts.is_disk_full(e)
               else artifacts.os_error_message(e))
    if message is None:
      raise
    print(f"kerasvae {args.command}: error: {message}", file=sys.stderr)
    return 2
  except KeyboardInterrupt as e:  # training's TrainingInterrupted says what it saved
    detail = str(e) or "finished steps are kept; run the same command again to go on"
    print(f"kerasvae {args.command}: interrupted: {detail}.", file=sys.stderr)
    return 128 + getattr(e, "signal_number", 2)  # 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
  sys.exit(main())
