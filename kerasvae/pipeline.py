"""The kerasvae pipeline: ingest → train → evaluate → export, wired through named artifacts.

Only wiring lives here: each step reads the artifacts the previous steps
wrote (`examples`, `model`, `blessing`) and the step code is in
`kerasvae.steps`. Every step's output is a sub-directory of the run directory.
`kerasvae run` and every study trial call `run_pipeline`; `kerasvae.kfp_pipeline` is the
same pipeline as Kubeflow components.
"""

from pathlib import Path

from kerasvae import artifacts
from kerasvae import training
from kerasvae.steps import common
from kerasvae.steps import executor
from kerasvae.steps import infer
from kerasvae.steps import ingest
from kerasvae.steps import table
from kerasvae.steps import validate

STEPS = tuple(step.name for step in table.PIPELINE)  # ingest, train, evaluate, export
# What run_pipeline returns each step's artifact as.
RESULTS = {"ingest": "examples", "train": "train", "evaluate": "evaluate",
           "export": "saved_model"}
# What the pipeline checks before a step, besides its inputs: new training data against the
# earlier data (`validation.training_reference`).
BEFORE = {"train": lambda config, out: validate.check_training_data(config, out["examples"])}


def step_dirs(run_dir):
  return {name: run_dir / name for name in STEPS}


def run_pipeline(config, steps=STEPS, force=False, run_dir=None):
  """Runs `steps` of the pipeline for `config` in its run directory.

  Each step of `kerasvae.steps.table.PIPELINE` in `steps` runs through
  `kerasvae.steps.executor.execute`, reading the artifacts of the steps before it.

  Args:
    config: a `PipelineConfig`.
    steps: which steps to run; the others' artifacts must already exist.
    force: redo the steps even when their inputs and config are unchanged.
    run_dir: the run directory; default `common.run_directory(config)`.

  Returns:
    A dict of the artifacts: run_dir, examples, train, evaluate, saved_model.
  """
  given_run_dir = run_dir is not None
  run_dir = Path(run_dir or common.run_directory(config))
  if run_dir.exists() and not run_dir.is_dir():
    raise common.StepError(f"Expected a run directory at {run_dir}. Received: a file there.")
  common.refuse_symlinks(config, run_dir, steps)
  if set(steps) & {"train", "evaluate", "export"}:  # refused before any step runs
    training.check_precision(config.train.precision)
  dirs = step_dirs(run_dir)
  out = {"run_dir": run_dir}
  examples_dir = common.examples_directory(config)
  model_dir = Path(config.export.base_dir) / config.export.model_name
  made = [run_dir, examples_dir]  # folders a failed command must not leave
  if "export" in steps:
    made.append(model_dir)
  # A full device is named with the folder each step writes and the setting that placed it.
  runs = "--run-dir" if given_run_dir else "run.runs_dir"
  writes = {"ingest": (examples_dir, "run.runs_dir"), "export": (model_dir, "export.base_dir")}
  with artifacts.remove_empty_on_failure(*made), \
      artifacts.disk_full_named(run_dir, runs), common.run_lock(run_dir):
    for step in table.PIPELINE:
      if step.name not in steps:
        if step.name == "ingest":  # the run's Examples, or those of the same ingest config
          out["examples"] = ingest.examples_of(config, dirs["ingest"])
        continue
      if step.name in BEFORE:
        BEFORE[step.name](config, out)
      paths = {i.name: out["examples"] if i.step == "ingest" else dirs[i.step]
               for i in step.inputs}
      with artifacts.disk_full_named(*writes.get(step.name, (dirs[step.name], runs))):
        out[RESULTS[step.name]] = executor.execute(step, config, dirs[step.name], paths,
                                                   force=force)
  return out


def validate_data(config, data=None, run_dir=None):
  """`kerasvae validate`: new data (`data`, a `DataConfig`, or `validation.data`) against the
  schema and statistics of the run's training data. Returns the validate directory."""
  run_dir = Path(run_dir or common.run_directory(config))
  examples = ingest.examples_of(config, run_dir / "ingest")
  with common.run_lock(run_dir):
    return validate.run(config, examples, run_dir / "validate", data)


def infer_data(config, data=None, model=None, run_dir=None, force=False):
  """`kerasvae infer`: per-example codes and anomaly scores of a data set (`data`, a
  `DataConfig`, or `infer.data`, or the run's `infer.split`) under the run's model or the
  export `model`. Returns the infer directory."""
  run_dir = Path(run_dir or common.run_directory(config))
  examples = ingest.examples_of(config, run_dir / "ingest")
  if not (model or config.infer.model):
    common.require_step(run_dir / "train", "train", "kerasvae train")
  with common.run_lock(run_dir):
    return infer.run(config, examples, run_dir / "train", run_dir / "infer", data=data,
                     model_path=model, force=force)
