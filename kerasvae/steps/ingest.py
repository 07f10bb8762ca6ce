"""The ingest step of a run: the shared Examples artifact for the run's ingest config.

Examples live in `<runs_dir>/examples/<hash of the ingest config>/` so that every
run (and every trial of a study) with the same data shares one artifact; the
run's `ingest/metadata.json` names it.
"""

from pathlib import Path

from kerasvae import artifacts
from kerasvae.data.ingest import ingest as ingest_examples
from kerasvae.data import reader
from kerasvae.data.sources import DataError
from kerasvae.steps import common


def run(config, ingest_dir, force=False):
  """Ingests the configured source (or reuses its artifact). Returns the Examples directory."""
  from kerasvae.steps import executor  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import table  # pylint: disable=import-outside-toplevel
  return executor.execute(table.STEPS["ingest"], config, ingest_dir, force=force)


def body(run):
  """The ingest step's body: the shared Examples artifact (written, or reused by its content
  fingerprint), named in the run's `ingest/metadata.json`."""
  config = run.config
  examples_dir = common.examples_directory(config)
  existed = artifacts.is_complete(examples_dir)
  ingest_examples(config.ingest, examples_dir, force=run.force)
  examples_meta = reader.read_metadata(examples_dir)
  counts = {name: split["num_examples"] for name, split in examples_meta["splits"].items()}
  eval_name = config.ingest.eval_split_name
  if not counts.get(eval_name):
    split = config.ingest.split
    setting = (f"eval_start={split.eval_start}" if split.method == "index" else
               f"eval_fraction={split.eval_fraction}" if split.method == "hash" else "method=source")
    if not existed or run.force:  # written by this command for nothing: leave nothing behind
      common.remove_tree(examples_dir)
    raise DataError(f"ingest.split: expected at least one example in the test split "
                    f"{eval_name!r} (evaluate scores it). Received: 0 of "
                    f"{sum(counts.values())} examples with {setting}")
  run.fingerprint = examples_meta["fingerprint"]
  run.directory.mkdir(parents=True, exist_ok=True)
  run.write_metadata(run.directory, inputs={"source": config.ingest.data.source},
                     outputs={"examples": examples_dir.resolve()}, split_counts=counts)
  print(f"ingest: {examples_dir} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
  return examples_dir


def examples_of(config, ingest_dir):
  """The Examples artifact of the run's ingest step, or the shared one for the same ingest config.

  Runs with the same ingest config share their Examples, so `kerasvae train`
  with another model config finds the data `kerasvae ingest` wrote.
  """
  if artifacts.is_complete(ingest_dir):
    meta = artifacts.read_json(Path(ingest_dir) / artifacts.METADATA_FILE,
                               redo="kerasvae ingest --force")
    return Path(meta.get("outputs", {}).get("examples") or common.examples_directory(config))
  shared = common.examples_directory(config)
  if artifacts.is_complete(shared):
    return shared
  raise common.StepError(f"No Examples artifact for this ingest config: neither {ingest_dir} nor "
                         f"{shared} is complete. Run `kerasvae ingest` with the same config first.")
