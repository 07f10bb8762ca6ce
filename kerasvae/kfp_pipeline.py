"""The kerasvae pipeline on Kubeflow Pipelines v2: ingest → train → evaluate → export → infer
(infer: the export's scores of the test split).

Wiring only: each component calls `kerasvae.steps.kfp_adapter`, which runs the same
`kerasvae.steps` code as `kerasvae run`. The compiled spec runs on Kubeflow Pipelines,
on Vertex AI Pipelines, and on KFP's local runner:

  kerasvae pipeline compile --config quickstart --output pipeline.yaml
  kerasvae pipeline run-local --package pipeline.yaml --set train.epochs=1

Pipeline parameters:
  config            YAML text of a pipeline config (default: the compiled file's, on one
                    line) or a bundled config name
  overrides         `--set` overrides, e.g. ["train.epochs=20"]
  force_export      export even when the evaluation did not bless the model
  train_image       the train step's container image
  train_accelerator_type, train_accelerator_count
                    the train step's accelerators ("nvidia.com/gpu" on Kubeflow,
                    "NVIDIA_TESLA_T4" on Vertex AI); an empty type: CPU only

A study compiles to a sweep of the same components (`compile_study`): ingest once, a
`dsl.ParallelFor` of train → evaluate per trial, and a `study_report` task over every
trial (`dsl.Collected`) that writes the local study's report:

  kerasvae pipeline compile --study priors --output study.yaml --parallelism 9
  kerasvae pipeline run-local --study priors --quick

Its parameters: `trial_image`, `trial_accelerator_type`, `trial_accelerator_count` (the
trials' train and evaluate tasks); the trials themselves and the parallelism limit are
fixed when compiling.

The components install nothing when they start (no `pip install`, not even kfp): the
image (see the Dockerfile) holds kerasvae and kfp, and the local runner uses the
current Python environment.

This module imports kfp (the extra `kfp`): only `kerasvae pipeline ...` and the runner
script a user edits (`pipelines/kubeflow_runner.py`) import it.
"""

import builtins
import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import List

from kfp import compiler
from kfp import dsl

PIPELINE_NAME = "kerasvae"
# `docker build -t kerasvae:0.1.0 .` with the repository's Dockerfile; on a cluster pass the
# pushed name (`--image registry.example.com/kerasvae:0.1.0`).
DEFAULT_IMAGE = "kerasvae:0.1.0"
# kfp.local's ParallelFor runs at most this many iterations at once (a thread pool of 2).
LOCAL_RUNNER_MAX_PARALLEL = 2
_COMPONENT = dict(base_image=DEFAULT_IMAGE, packages_to_install=[], install_kfp_package=False)


@dsl.component(**_COMPONENT)
def ingest(config: str, overrides: List[str], examples: dsl.Output[dsl.Dataset]):
  """Reads the configured data source into an Examples artifact."""
  from kerasvae.steps import kfp_adapter
  kfp_adapter.ingest(config, overrides, examples)


@dsl.component(**_COMPONENT)
def train(config: str, overrides: List[str], examples: dsl.Input[dsl.Dataset],
          model: dsl.Output[dsl.Model]):
  """Trains the configured model on the Examples."""
  from kerasvae.steps import kfp_adapter
  kfp_adapter.train(config, overrides, examples, model)


@dsl.component(**_COMPONENT)
def evaluate(config: str, overrides: List[str], force_export: bool,
             examples: dsl.Input[dsl.Dataset], model: dsl.Input[dsl.Model],
             metrics: dsl.Output[dsl.Metrics], evaluation: dsl.Output[dsl.Artifact],
             summary: dsl.Output[dsl.HTML]) -> bool:
  """Metrics, figures and blessing; returns whether the model may be exported."""
  from kerasvae.steps import kfp_adapter
  return kfp_adapter.evaluate(config, overrides, force_export, examples, model, metrics,
                              evaluation, summary)


@dsl.component(**_COMPONENT)
def export(config: str, overrides: List[str], force_export: bool, model: dsl.Input[dsl.Model],
           evaluation: dsl.Input[dsl.Artifact], saved_model: dsl.Output[dsl.Model]):
  """Exports the model as a SavedModel with its serving signatures."""
  from kerasvae.steps import kfp_adapter
  kfp_adapter.export(config, overrides, force_export, model, evaluation, saved_model)


@dsl.component(**_COMPONENT)
def infer(config: str, overrides: List[str], examples: dsl.Input[dsl.Dataset],
          saved_model: dsl.Input[dsl.Model], scores: dsl.Output[dsl.Dataset],
          metrics: dsl.Output[dsl.Metrics]):
  """Scores the test split (or infer.data) through the export: codes and anomaly scores."""
  from kerasvae.steps import kfp_adapter
  kfp_adapter.infer(config, overrides, examples, saved_model, scores, metrics)


@dsl.component(**_COMPONENT)
def study_report(sweep: str, examples: dsl.Input[dsl.Dataset],
                 models: dsl.Input[List[dsl.Model]], evaluations: dsl.Input[List[dsl.Artifact]],
                 study: dsl.Output[dsl.Artifact], report: dsl.Output[dsl.HTML]):
  """Gathers every trial of a study sweep into the local study's report, results and figures."""
  from kerasvae.studies import sweep as sweep_lib
  sweep_lib.study_report(sweep, examples, models, evaluations, study, report)


def build_pipeline(config_text, overrides=(), image=DEFAULT_IMAGE, accelerator_type="",
                   accelerator_count=1):
  """The pipeline function, with these values as its parameters' defaults."""
  default_overrides = list(overrides)

  @dsl.pipeline(name=PIPELINE_NAME,
                description="kerasvae: ingest, train, evaluate and export a VAE")
  def kerasvae_pipeline(config: str = config_text,
                        overrides: List[str] = default_overrides,
                        force_export: bool = False,
                        train_image: str = image,
                        train_accelerator_type: str = accelerator_type,
                        train_accelerator_count: int = accelerator_count):
    ingest_task = ingest(config=config, overrides=overrides).set_container_image(image)
    train_task = train(config=config, overrides=overrides,
                       examples=ingest_task.outputs["examples"])
    (train_task.set_container_image(train_image)
     .set_accelerator_limit(train_accelerator_count)
     .set_accelerator_type(train_accelerator_type))
    evaluate_task = evaluate(config=config, overrides=overrides, force_export=force_export,
                             examples=ingest_task.outputs["examples"],
                             model=train_task.outputs["model"]).set_container_image(image)
    # The evaluate task's single output parameter ("Output"): kfp.local 2.17 cannot resolve a
    # condition on a named output of a multi-output task and silently skips its branch.
    with dsl.If(evaluate_task.outputs["Output"] == True, name="blessed-or-forced"):  # noqa: E712
      export_task = export(config=config, overrides=overrides, force_export=force_export,
                           model=train_task.outputs["model"],
                           evaluation=evaluate_task.outputs["evaluation"])
      export_task.set_container_image(image)
      infer(config=config, overrides=overrides, examples=ingest_task.outputs["examples"],
            saved_model=export_task.outputs["saved_model"]).set_container_image(image)

  return kerasvae_pipeline


def compile_pipeline(config, output, overrides=(), image=DEFAULT_IMAGE, accelerator_type="",
                     accelerator_count=1):
  """Writes the KFP v2 pipeline spec (YAML) for a config; returns its path.

  Args:
    config: a YAML file or bundled config name; it becomes the `config` parameter's default.
    output: where the spec goes (written through a temporary file and a rename).
    overrides: `--set` overrides, the `overrides` parameter's default.
    image: the container image of every component (and the `train_image` default).
    accelerator_type, accelerator_count: the train step's accelerator defaults.
  """
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  _check_count(accelerator_count, "accelerator_count")
  config_text = configs.config_parameter(config, overrides)
  pipeline = build_pipeline(config_text, overrides, image, accelerator_type, accelerator_count)
  return _write_spec(pipeline, output)


def _write_spec(pipeline, output):
  """Compiles `pipeline` to `output` (through a temporary file and a rename); returns its path."""
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  output = Path(output)
  output.parent.mkdir(parents=True, exist_ok=True)
  artifacts.remove_stale_temporaries(output.parent)
  # KFP picks the format by the name's ending; the compiler's own open() gives the umask's mode.
  tmp = output.parent / (artifacts.temporary_name(output.name) + ".yaml")
  try:
    compiler.Compiler().compile(pipeline, str(tmp))
    tmp.write_text(_integer_defaults_in_header(tmp.read_text()))
    os.replace(tmp, output)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return output


def _integer_defaults_in_header(text):
  """The spec's header comment with integer parameters' defaults written as integers.

  KFP's compiler stores every number as a protobuf double, so its header says
  `train_accelerator_count: int [Default: 1.0]` for an `int` parameter; the spec's body
  (`parameterType: NUMBER_INTEGER`) is left as KFP wrote it.
  """
  lines = text.split("\n")
  for i, line in enumerate(lines):
    if not line.startswith("#"):
      break
    match = re.fullmatch(r"(#\s+\w+: int \[Default: )(-?\d+)\.0(\])", line)
    if match:
      lines[i] = match.group(1) + match.group(2) + match.group(3)
  return "\n".join(lines)


def _check_count(value, name):
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  if isinstance(value, bool) or not isinstance(value, int) or value < 0:
    raise ConfigError(f"Expected {name} to be an integer >= 0. Received: {name}={value!r}")


def build_study_pipeline(spec, image=DEFAULT_IMAGE, accelerator_type="", accelerator_count=1,
                         parallelism=0):
  """The pipeline of a study sweep (`kerasvae.studies.sweep.sweep_spec`), defaults as given.

  ingest once (the trials share their ingest config), then a `dsl.ParallelFor` over the
  trials, each a train and an evaluate task, then the report task over every trial's
  Model and evaluation (`dsl.Collected`). `parallelism` caps the trials running at once
  (0: no cap); KFP's spec holds it as a number of the loop, fixed when compiling.
  """
  sweep_text = json.dumps(spec, ensure_ascii=False, sort_keys=True)
  # Not "name": a loop item's key "name" clashes with the channel's own name in kfp 2.17.
  items = [{"trial": t["name"], "config": t["config"]} for t in spec["trials"]]
  first_config = spec["trials"][0]["config"]

  @dsl.pipeline(name=f"{PIPELINE_NAME}-study-{spec['study']}",
                description=f"kerasvae study {spec['study']}: {len(items)} trials")
  def kerasvae_study(trial_image: str = image,
                     trial_accelerator_type: str = accelerator_type,
                     trial_accelerator_count: int = accelerator_count):
    ingest_task = ingest(config=first_config, overrides=[]).set_container_image(image)
    with dsl.ParallelFor(items, parallelism=parallelism, name="trials") as trial:
      train_task = train(config=trial.config, overrides=[],
                         examples=ingest_task.outputs["examples"])
      # Evaluation reads the model on the same image and accelerator.
      evaluate_task = evaluate(config=trial.config, overrides=[], force_export=False,
                               examples=ingest_task.outputs["examples"],
                               model=train_task.outputs["model"])
      for task in (train_task, evaluate_task):
        (task.set_container_image(trial_image)
         .set_accelerator_limit(trial_accelerator_count)
         .set_accelerator_type(trial_accelerator_type))
        # kfp 2.17 passes a pipeline parameter into the loop only when a task registers it:
        # the image setter does, the accelerator setters do not (the loop then lacks them).
        task.register_pipeline_channels([trial_accelerator_type, trial_accelerator_count])
    study_report(sweep=sweep_text, examples=ingest_task.outputs["examples"],
                 models=dsl.Collected(train_task.outputs["model"]),
                 evaluations=dsl.Collected(evaluate_task.outputs["evaluation"])
                 ).set_container_image(image)

  return kerasvae_study


def compile_study(name, output, config=None, overrides=(), quick=False, image=DEFAULT_IMAGE,
                  accelerator_type="", accelerator_count=1, parallelism=0):
  """Writes the KFP v2 spec of a study sweep; returns its path.

  The trials are the ones `kerasvae study NAME` trains with the same arguments: the spec
  is made from `studies.plan_study`, the local study's loader.

  Args:
    name: the study (`latent-dim`, `beta`, `ae-vs-vae`, `priors`, `disentanglement`,
      `methods`).
    output: the spec file.
    config, overrides, quick: as for `kerasvae study` (`--config`, `--set`, `--quick`).
    image: the image of every task (and the trials' default).
    accelerator_type, accelerator_count: the trials' accelerator defaults.
    parallelism: the most trials running at once; 0: no cap.
  """
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  from kerasvae.studies import sweep  # pylint: disable=import-outside-toplevel
  _check_count(accelerator_count, "accelerator_count")
  _check_count(parallelism, "parallelism")
  spec = sweep.sweep_spec(studies.plan_study(name, config, overrides, quick))
  return _write_spec(build_study_pipeline(spec, image, accelerator_type, accelerator_count,
                                          parallelism), output)


def export_outcome(run_dir):
  """One line on a local run's export: where the SavedModel is, or why the export was skipped."""
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  run_dir = Path(run_dir)
  saved = [p for p in run_dir.glob("export*/saved_model") if (p / "saved_model.pb").is_file()]
  if saved:
    return f"pipeline: exported the SavedModel {saved[0]}"
  blessings = sorted(run_dir.glob("evaluate*/evaluation/blessing.json"))
  if not blessings:
    return "pipeline: export SKIPPED: the run has no evaluation"
  blessing = artifacts.read_json(blessings[0])
  if blessing["blessed"]:
    return "pipeline: export SKIPPED, though the model is blessed: see the export task's log"
  return ("pipeline: export SKIPPED: the model is not blessed ("
          + common.blessing_failures(blessing)
          + "); rerun with --force-export or --set export.require_blessing=false to export it")


class TaskLines:
  """A stand-in for `sys.stdout` during a quiet local run: everything goes to the log file,
  and each task KFP's local runner finishes becomes one line on `echo`
  (`pipeline: task train succeeded in 41 s`).

  KFP's runner prints its own log, each task's executor input and output JSON and the
  components' whole output (TensorFlow's C++ start-up lines included) to `sys.stdout`:
  over a thousand lines for the four steps, of which the task outcomes are what a user reads.
  """

  _ANSI = re.compile(r"\x1b\[[0-9;]*m")
  _START = re.compile(r"Executing task '?([\w-]+)'?")
  _END = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")

  def __init__(self, log, echo, clock=None):
    import threading  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    self._log, self._echo, self._clock = log, echo, clock or time.monotonic
    self._lock = threading.RLock()  # ParallelFor iterations print from a thread pool
    self._pending, self._started = "", {}

  def write(self, text):
    outcomes = []
    # Re-entrant, and the outcome lines echoed after it is released: kfp.local swaps
    # builtins.print for an indenting print that writes to sys.stdout (this object) whatever
    # `file` it is given, so an echo under a plain lock waited for itself (a hung sweep).
    with self._lock:
      self._log.write(text)
      self._pending += text
      *lines, self._pending = self._pending.split("\n")
      for line in lines:
        plain = self._ANSI.sub("", line)
        if (match := self._START.search(plain)):
          self._started[match.group(1)] = self._clock()
        elif (match := self._END.search(plain)):
          task, status = match.group(1), match.group(2).lower()
          end = self._clock()
          seconds = end - self._started.pop(task, end)
          outcome = "succeeded" if status == "success" else status
          outcomes.append(f"pipeline: task {task} {outcome} in {seconds:.0f} s")
    for line in outcomes:
      self._echo(line)
    return len(text)

  def flush(self):
    self._log.flush()

  def isatty(self):
    return False


def run_local(package, pipeline_root, overrides=(), force_export=False, verbose=False):
  """Runs a compiled pipeline spec on KFP's local runner, one subprocess per step.

  The subprocess runner uses this Python environment (`use_venv=False`): no container,
  no network; the components install nothing. The image the spec names is not used.

  Quiet by default: one line per finished task, and everything the runner and the components
  print (KFP's executor JSON, the steps' output, TensorFlow's logs) in `run-local.log` in the
  run's directory; `verbose` prints all of it as it comes.

  Args:
    package: the compiled pipeline YAML (a single run, or a study sweep).
    pipeline_root: where the runner writes `<pipeline>-<time>/<task>/<output>`.
    overrides: `--set` overrides appended to the spec's default `overrides` (not for a
      sweep, whose trials' configs are compiled in).
    force_export: the `force_export` parameter (not for a sweep).
    verbose: print the runner's and the components' whole output.

  Returns:
    The run's directory under `pipeline_root`.

  Raises:
    RuntimeError: a task failed; quiet, the message names the log and ends with its last lines.
  """
  import yaml  # pylint: disable=import-outside-toplevel
  from kfp import components  # pylint: disable=import-outside-toplevel
  from kfp import local  # pylint: disable=import-outside-toplevel
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  package = Path(package)
  params = yaml.safe_load(package.read_text())["root"]["inputDefinitions"]["parameters"]
  if is_study_spec(package):
    if overrides or force_export:  # the trials' configs are compiled into the spec
      raise ConfigError("Expected no --set or --force-export with a study sweep's spec (its "
                        "trials' configs are compiled in: compile again with --set). Received: "
                        + " ".join([*(f"--set {o}" for o in overrides),
                                    *(["--force-export"] if force_export else [])]))
    arguments = {}
  else:
    defaults = params["overrides"].get("defaultValue", [])
    # A bad override fails here, naming the key, rather than inside the first component.
    configs.load_config_parameter(params["config"].get("defaultValue", ""),
                                  [*defaults, *overrides])
    arguments = {"overrides": [*defaults, *overrides], "force_export": force_export}
  pipeline_root = Path(pipeline_root).resolve()
  before = set(pipeline_root.iterdir()) if pipeline_root.is_dir() else set()
  local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
  # kfp.local 2.17 indents each task's prints by swapping builtins.print inside a context
  # manager; two ParallelFor iterations in its thread pool restore each other's swap, so the
  # process's print stayed indented after a sweep (every later line of this command, and
  # every print of a test that ran after it). What it was before the run is put back.
  print_before = builtins.print
  pipeline_root.mkdir(parents=True, exist_ok=True)
  log_path = pipeline_root / f".run-local-{os.getpid()}.log"
  failure = None
  try:
    with contextlib.ExitStack() as stack:
      if not verbose:
        log = stack.enter_context(open(log_path, "w", encoding="utf-8"))
        stdout = sys.stdout
        def echo(line, stdout=stdout):  # the real stream: not through kfp.local's print
          stdout.write(line + "\n")
          stdout.flush()
        stack.enter_context(contextlib.redirect_stdout(TaskLines(log, echo)))
      components.load_component_from_file(str(package))(**arguments)
  except RuntimeError as e:
    failure = e
  finally:
    builtins.print = print_before
  new = sorted((p for p in set(pipeline_root.iterdir()) - before if p.is_dir()),
               key=lambda p: p.stat().st_mtime)
  if not verbose and new:
    log_path = log_path.replace(new[-1] / "run-local.log")
  if failure is not None:
    if verbose:
      raise failure
    tail = TaskLines._ANSI.sub("", log_path.read_text(errors="replace")).strip().splitlines()[-15:]
    raise RuntimeError(f"{failure}; the log is {log_path}, which ends:\n" + "\n".join(tail)) \
        from None
  if not verbose:
    print(f"pipeline: the runner's and the steps' output is in {log_path}")
  return new[-1]


def is_study_spec(package):
  """Whether the compiled spec at `package` is a study sweep (`compile_study`)."""
  import yaml  # pylint: disable=import-outside-toplevel
  spec = yaml.safe_load(Path(package).read_text())
  return spec["pipelineInfo"]["name"].startswith(f"{PIPELINE_NAME}-study-")


def study_outcome(run_dir, package):
  """What a local run of a study sweep executed and what it only compiled, as lines to print."""
  import yaml  # pylint: disable=import-outside-toplevel
  spec = yaml.safe_load(Path(package).read_text())
  loop = spec["root"]["dag"]["tasks"]["for-loop-2"]
  trials = len(json.loads(loop["parameterIterator"]["items"]["raw"]))
  limit = loop.get("iteratorPolicy", {}).get("parallelismLimit", 0)
  report = Path(run_dir) / "study-report" / "study" / "report.md"
  # kfp.local 2.17 runs a ParallelFor's iterations in a thread pool of at most 2.
  at_once = min(limit, LOCAL_RUNNER_MAX_PARALLEL) if limit else LOCAL_RUNNER_MAX_PARALLEL
  cap = f"parallelism limit of {limit} trials" if limit else "parallelism (no limit)"
  return [
      f"pipeline: ran on kfp.local: ingest once, the ParallelFor of {trials} trials (a train and "
      f"an evaluate task each, {at_once} at once), and the report task over every trial's "
      "model and evaluation (dsl.Collected)",
      "pipeline: compiled but not exercised by kfp.local: the images and accelerators "
      "(trial_image, trial_accelerator_type, trial_accelerator_count: its subprocess runner "
      f"uses this Python environment and ignores them) and the spec's {cap} (it runs at most "
      f"{LOCAL_RUNNER_MAX_PARALLEL})",
      f"pipeline: study report {report}" if report.is_file()
      else "pipeline: the study report task wrote no report: see its log above"]
