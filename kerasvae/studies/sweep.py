"""A study as a Kubeflow sweep: its plan as data for the compiled spec, and the report from artifacts.

`kerasvae pipeline compile --study NAME` loads the study with the same loader as
`kerasvae study NAME` (`studies.plan_study`) and writes `sweep_spec(plan)` into the
pipeline: every trial's name, seed, overrides and whole pipeline config. Each trial then
trains and evaluates in its own tasks, and the report task calls `report_from_artifacts`,
which lays the trials' Model and evaluation artifacts out as the local study's run
directories and writes the same `report.md`, `results.json` and figures
(`studies.write_report`).

No kfp here: the artifacts arrive as folders (the report task gets KFP's artifact objects and
uses only their `path` and `metadata`).
"""

import base64
import html
import json
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae.config import ConfigError
from kerasvae.data.config import bundled_data_dir
from kerasvae.data.config import relative_data_paths


def trial_config_text(config):
  """A trial's `PipelineConfig` as one line of YAML, its data paths inside the data directory
  made relative to it (each task resolves them against its own `$KERASVAE_DATA_DIR`)."""
  data = config_lib.to_dict(config)
  relative_data_paths(data["ingest"], bundled_data_dir())
  return yaml.safe_dump(data, default_flow_style=True, sort_keys=False,
                        width=float("inf")).strip()


def sweep_spec(plan):
  """The plan of a study as plain data (JSON), what the compiled pipeline carries.

  Returns:
    `{"study", "config", "bundled", "title", "description", "settings", "quick",
    "overrides", "trials": [{"name", "setting", "seed", "overrides", "full_only",
    "config"}]}`; a trial's `config` is `trial_config_text` of its `PipelineConfig`.
  """
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  if plan.study.runner is not None:  # its trials read several data sets; one ingest task cannot
    raise ConfigError(f"Expected a study whose trials share one ingest to compile as a sweep. "
                      f"Received: --study {plan.name}, which runs its own trials and analysis "
                      f"(run it with `kerasvae study {plan.name}`)")
  if plan.study.continues:  # each trial starts from the previous one's checkpoint: a chain
    raise ConfigError(f"Expected a study whose trials train independently to compile as a "
                      f"sweep. Received: --study {plan.name}, whose longer budgets continue the "
                      f"shorter ones' trainings (run it with `kerasvae study {plan.name}`)")
  bundled = plan.path.resolve().parent == core.STUDY_CONFIG_DIR.resolve()
  return {
      "study": plan.name, "config": plan.path.name if bundled else str(plan.path),
      "bundled": bundled, "title": plan.title, "description": plan.description,
      "settings": config_lib.to_dict(plan.settings), "quick": plan.quick,
      "overrides": list(plan.overrides),
      "trials": [{"name": t.name, "setting": t.setting, "seed": t.seed,
                  "overrides": t.overrides, "full_only": t.full_only,
                  "config": trial_config_text(t.config)} for t in plan.trials]}


def plan_from_spec(spec, output):
  """The `StudyPlan` a `sweep_spec` describes, its trials' runs under `output/runs`."""
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  if spec.get("study") not in studies.STUDIES:
    raise ConfigError(f"Expected a study name among {sorted(studies.STUDIES)}. Received: "
                      f"study={spec.get('study')!r} in the sweep's spec")
  output = Path(output)
  trials = []
  for entry in spec["trials"]:
    config = configs.load_config_parameter(entry["config"])
    config.run.runs_dir = str(output / "runs")
    trials.append(core.Trial(name=entry["name"], overrides=entry["overrides"], config=config,
                             full_only=entry["full_only"], setting=entry["setting"],
                             seed=entry["seed"]))
  settings = config_lib.from_dict(core.StudySettings, spec["settings"], where="study")
  path = core.STUDY_CONFIG_DIR / spec["config"] if spec["bundled"] else Path(spec["config"])
  return studies.StudyPlan(studies.STUDIES[spec["study"]], spec["study"], path, output,
                           spec["title"], spec["description"], settings, trials,
                           tuple(spec["overrides"]), spec["quick"])


def report_from_artifacts(spec, examples_dir, model_dirs, evaluation_dirs, output):
  """Writes the study's report from the sweep's artifacts; returns the path of `report.md`.

  Each trial's train step directory (a Model artifact) and evaluate step directory are
  matched to it by the fingerprints their steps recorded (of the trial's config and the
  Examples), not by their order, and copied to `<output>/runs/<run>/train` and `evaluate`:
  the layout the local study's analysis reads.

  Args:
    spec: `sweep_spec` of the study (a mapping).
    examples_dir: the Examples artifact every trial read.
    model_dirs, evaluation_dirs: the trials' train and evaluate step directories, any order.
    output: the study directory to write.
  """
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import evaluate  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import train  # pylint: disable=import-outside-toplevel
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  plan = plan_from_spec(spec, output)
  examples_meta = reader.read_metadata(examples_dir)

  def by_fingerprint(dirs):
    return {artifacts.read_json(Path(d) / artifacts.METADATA_FILE).get("fingerprint"): Path(d)
            for d in dirs}

  models, evaluations = by_fingerprint(model_dirs), by_fingerprint(evaluation_dirs)
  for trial in plan.trials:
    model_dir = models.get(train.train_fingerprint(trial.config, examples_meta))
    if model_dir is None:
      raise common.StepError(f"Expected a Model artifact of trial {trial.name!r} among the "
                             f"sweep's {len(models)}. Received: none trained with its config")
    train_meta = artifacts.read_json(model_dir / artifacts.METADATA_FILE)
    evaluation_dir = evaluations.get(evaluate.evaluate_fingerprint(trial.config, train_meta))
    if evaluation_dir is None:
      raise common.StepError(f"Expected an evaluation of trial {trial.name!r} among the "
                             f"sweep's {len(evaluations)}. Received: none of its model")
    run_dir = common.run_directory(trial.config)
    for source, step in ((model_dir, "train"), (evaluation_dir, "evaluate")):
      shutil.rmtree(run_dir / step, ignore_errors=True)
      shutil.copytree(source, run_dir / step)
    core.read_trial_results(trial, run_dir)
  context = core.StudyContext(name=plan.name, output=plan.output, settings=plan.settings,
                              quick=plan.quick, base=plan.trials[0].config,
                              examples_dir=Path(examples_dir))
  return studies.write_report(plan, context, plan.trials, t0, sweep=True)


def read_spec(text):
  """A `sweep_spec` from its JSON text (the report task's parameter)."""
  spec = json.loads(text)
  if not isinstance(spec, dict) or not spec.get("trials"):
    raise ConfigError(f"Expected the JSON of a study sweep with trials. Received: {text[:80]!r}")
  return spec


def study_report(sweep, examples, models, evaluations, study, report):
  """The report task of a study sweep: the local study's report from the trials' artifacts.

  The KFP component `kerasvae.kfp_pipeline.study_report` calls it with KFP's artifact
  objects, used only through their `path` and `metadata`.

  Args:
    sweep: the JSON of `sweep_spec`, compiled into the pipeline.
    examples: the Examples artifact every trial read.
    models, evaluations: the trials' Model and evaluation artifacts (`dsl.Collected` over
      the trial loop), matched to the trials by their steps' fingerprints.
    study: output: the study directory (`report.md`, `results.json`, `figures/`).
    report: output: the report as one HTML page with its figures inline (the KFP UI's view).
  """
  import markdown  # pylint: disable=import-outside-toplevel  # tensorboard's dependency
  spec = read_spec(sweep)
  with tempfile.TemporaryDirectory(prefix="kerasvae-study-") as scratch:
    output = Path(scratch) / spec["study"]
    report_path = report_from_artifacts(
        spec, examples.path, [m.path for m in models], [e.path for e in evaluations], output)
    destination = Path(study.path)
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "results.json"):
      shutil.copy(output / name, destination / name)
    if (output / "figures").is_dir():
      shutil.copytree(output / "figures", destination / "figures", dirs_exist_ok=True)
    text = report_path.read_text()
  figures = {}
  for png in sorted((destination / "figures").glob("*.png")):
    figures[f"figures/{png.name}"] = ("data:image/png;base64,"
                                      + base64.b64encode(png.read_bytes()).decode("ascii"))
  body = markdown.markdown(text, extensions=["tables"])
  for relative, data in figures.items():
    body = body.replace(f'src="{relative}"', f'src="{data}" style="max-width:900px"')
  Path(report.path).parent.mkdir(parents=True, exist_ok=True)
  Path(report.path).write_text(
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>"
      f"{html.escape(spec['title'])}</title></head><body>{body}</body></html>")
  results = artifacts.read_json(destination / "results.json")
  study.metadata.update(study=spec["study"], quick=spec["quick"],
                        trials=[t["name"] for t in results["trials"]])
