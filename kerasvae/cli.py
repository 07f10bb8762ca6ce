"""The `kerasvae` command: parse arguments, load the config, call a pipeline step. No logic here.

  kerasvae run                                  the quickstart pipeline on built-in dSprites
  kerasvae run --config mnist_vae --set model.latent_dim=2
  kerasvae ingest|train|evaluate|export --config FILE.yaml [--set key=value ...] [--force]
  kerasvae study NAME [--config FILE] [--quick]
  kerasvae config [--config FILE]               print the full, validated config
"""

import argparse
import sys

STEP_COMMANDS = ("ingest", "train", "evaluate", "export")


def _parser():
  parser = argparse.ArgumentParser(
      prog="kerasvae", description="Train, evaluate and export variational autoencoders.")
  sub = parser.add_subparsers(dest="command", required=True)
  helps = {"run": "all steps: ingest, train, evaluate, export",
           "ingest": "read a data source into an Examples artifact",
           "train": "train the configured model (resumes an interrupted training)",
           "evaluate": "metrics, figures and the blessing of a trained model",
           "export": "write a TF Serving SavedModel of a blessed model",
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
  study = sub.add_parser("study", help="run a study (several runs and a report)")
  study.add_argument("name", help="latent-dim, beta, ae-vs-vae, priors or disentanglement")
  study.add_argument("--config", default=None, help="the study's YAML (default: bundled)")
  study.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
  study.add_argument("--quick", action="store_true", help="a tiny version (minutes) for tests")
  study.add_argument("--output", default=None, help="study directory (default: studies/<name>)")
  return parser


def main(argv=None):
  args = _parser().parse_args(argv)
  import logging  # pylint: disable=import-outside-toplevel
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  from kerasvae.artifacts import ArtifactError  # pylint: disable=import-outside-toplevel
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  from kerasvae.data.sources import DataError  # pylint: disable=import-outside-toplevel
  from kerasvae.steps.common import StepError  # pylint: disable=import-outside-toplevel
  from kerasvae.training import TrainingError  # pylint: disable=import-outside-toplevel
  try:
    if args.command == "study":
      from kerasvae import studies  # pylint: disable=import-outside-toplevel
      report = studies.run_study(args.name, config=args.config, overrides=args.overrides,
                                 quick=args.quick, output=args.output)
      print(f"study {args.name}: report at {report}")
      return 0
    from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
    config = configs.load_pipeline_config(args.config, args.overrides)
    if args.command == "config":
      import yaml  # pylint: disable=import-outside-toplevel
      from kerasvae.config import to_dict  # pylint: disable=import-outside-toplevel
      print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
      return 0
    from pathlib import Path  # pylint: disable=import-outside-toplevel
    from pipelines import pipeline  # pylint: disable=import-outside-toplevel
    steps = pipeline.STEPS if args.command == "run" else (args.command,)
    out = pipeline.run_pipeline(config, steps=steps, force=args.force,
                                run_dir=Path(args.run_dir) if args.run_dir else None)
    print(f"run directory: {out['run_dir']}")
    if "saved_model" in out:
      print(f"SavedModel: {out['saved_model']}")
    print(f"TensorBoard: tensorboard --logdir {Path(out['run_dir']).parent}")
    return 0
  except (ConfigError, DataError, StepError, TrainingError, ArtifactError, FileExistsError,
          FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
    print(f"kerasvae {args.command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"kerasvae {args.command}: interrupted; run the same command again to resume.",
          file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
