"""The validate step (StatisticsGen + ExampleValidator): new data against the training data.

Reads the new data (`validation.data`, any ingest source, or an image folder given with
`--images`) as ingest would store it, computes its statistics, and checks them rule by rule
(`kerasvae.data.validation`) against the schema and statistics ingest recorded for the run's
training split. Writes `<run>/validate/`:

  statistics.json   the new data's schema and statistics
  anomalies.json    the violated rules (errors and warnings) and the rules skipped, with why
  metadata.json     written last

then stops with a `DataValidationError` listing every violated rule that is not configured as
a warning (`validation.on_anomaly`, `validation.warn_rules`).
"""

from pathlib import Path

from kerasvae import artifacts
from kerasvae.data import reader
from kerasvae.data import validation
from kerasvae.steps import common
from kerasvae.steps import executor
from kerasvae.steps import table


def check_data(config, examples_dir, data):
  """Describes `data` and checks it against the Examples' training split.

  Returns:
    (description, anomalies, skipped) as `validation.describe` and `validation.check` give.
  """
  ref = validation.reference(reader.read_metadata(examples_dir))
  new = validation.describe(data, config.ingest, config.validation.max_examples)
  anomalies, skipped = validation.check(ref, new, config.validation.thresholds)
  return new, anomalies, skipped


def run(config, examples_dir, validate_dir, data=None):
  """Validates `data` (default `config.validation.data`) against the run's training data.

  Returns:
    The validate directory; raises `validation.DataValidationError` after writing it when a
    rule configured to fail is violated.
  """
  data = data or config.validation.data
  if data is None:
    raise common.StepError("Expected new data to validate: a validation.data block in the "
                           "config or --images FOLDER. Received: neither")
  return executor.execute(table.STEPS["validate"], config, validate_dir,
                          {"examples": examples_dir}, given={"data": data})


def body(run):
  """The validate step's body: the new data's statistics and anomalies, published as one
  directory, then the failing rules raised."""
  config, validate_dir, data = run.config, run.directory, run.given["data"]
  examples_dir = run.paths["examples"]
  new, anomalies, skipped = check_data(config, examples_dir, data)
  v = config.validation
  failing = [a for a in anomalies if v.on_anomaly == "fail" and a.rule not in v.warn_rules]
  with run.publishing() as tmp:
    artifacts.write_json(tmp / "statistics.json", new)
    artifacts.write_json(tmp / "anomalies.json", {
        "data": new["location"], "errors": [a.to_json() for a in failing],
        "warnings": [a.to_json() for a in anomalies if a not in failing],
        "skipped": skipped, "examples": str(examples_dir)})
    run.write_metadata(
        tmp, inputs={"examples": Path(examples_dir).resolve(), "data": new["location"]},
        outputs={"anomalies": validate_dir / "anomalies.json"}, num_anomalies=len(anomalies))
  validation.enforce(anomalies, v.on_anomaly, v.warn_rules, new["location"])
  checked = len(validation.RULES) - len(skipped)
  print(f"validate: {new['location']}: {new['statistics']['num_examples']} examples, "
        f"{checked} rules checked, {len(anomalies)} violated"
        + (f" (warnings: {', '.join(a.rule for a in anomalies)})" if anomalies else "")
        + f"; {validate_dir / 'anomalies.json'}")
  return validate_dir


def check_training_data(config, examples_dir):
  """`train` on new data: the new Examples' training split against the training split of
  `validation.training_reference` (earlier data), by the same rules; raises or warns as
  `validation.on_anomaly` and `warn_rules` say. Does nothing without a reference."""
  reference_dir = config.validation.training_reference
  if not reference_dir:
    return []
  if not (Path(reference_dir) / artifacts.METADATA_FILE).is_file():
    raise common.StepError(f"validation.training_reference: expected an Examples artifact (a "
                           f"folder with metadata.json). Received: {reference_dir}")
  ref = validation.reference(reader.read_metadata(reference_dir))
  new = validation.reference(reader.read_metadata(examples_dir))
  anomalies, _ = validation.check(ref, new, config.validation.thresholds)
  v = config.validation
  return validation.enforce(anomalies, v.on_anomaly, v.warn_rules,
                            f"{examples_dir} (training data, against {reference_dir})")
