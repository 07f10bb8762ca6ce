"""The kerasvae pipeline: ingest → train → evaluate → export, wired through named artifacts.

Only wiring lives here: each step reads the artifacts the previous steps
wrote (`examples`, `model`, `blessing`) and the step code is in
`kerasvae.steps`. Every step's output is a sub-directory of the run directory.
"""

from pathlib import Path

from kerasvae import artifacts
from kerasvae.steps import common
from kerasvae.steps import evaluate
from kerasvae.steps import export
from kerasvae.steps import ingest
from kerasvae.steps import train

STEPS = ("ingest", "train", "evaluate", "export")


def step_dirs(run_dir):
  return {name: run_dir / name for name in STEPS}


def run_pipeline(config, steps=STEPS, force=False, run_dir=None):
  """Runs `steps` of the pipeline for `config` in its run directory.

  Args:
    config: a `PipelineConfig`.
    steps: which steps to run; the others' artifacts must already exist.
    force: redo the steps even when their inputs and config are unchanged.
    run_dir: the run directory; default `common.run_directory(config)`.

  Returns:
    A dict of the artifacts: run_dir, examples, train, evaluate, saved_model.
  """
  run_dir = Path(run_dir or common.run_directory(config))
  if run_dir.exists() and not run_dir.is_dir():
    raise common.StepError(f"Expected a run directory at {run_dir}. Received: a file there.")
  dirs = step_dirs(run_dir)
  out = {"run_dir": run_dir}
  made = [run_dir, common.examples_directory(config)]  # folders a failed command must not leave
  if "export" in steps:
    made.append(Path(config.export.base_dir) / config.export.model_name)
  with artifacts.remove_empty_on_failure(*made), common.run_lock(run_dir):
    if "ingest" in steps:
      out["examples"] = ingest.run(config, dirs["ingest"], force=force)
    else:
      out["examples"] = ingest.examples_of(config, dirs["ingest"])
    if "train" in steps:
      out["train"] = train.run(config, out["examples"], dirs["train"], force=force)
    if "evaluate" in steps:
      out["evaluate"] = evaluate.run(config, out["examples"], dirs["train"], dirs["evaluate"],
                                     force=force)
    if "export" in steps:
      out["saved_model"] = export.run(config, dirs["train"], dirs["evaluate"], dirs["export"],
                                      force=force)
  return out
