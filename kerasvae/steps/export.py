"""The export step: a blessed trained model in, a TF Serving SavedModel version out.

The SavedModel goes to `<export.base_dir>/<export.model_name>/<version>/`
(see `kerasvae.serving`); the step directory records which version holds this
run's model and the digest of its files, so re-running the pipeline does not
export the same model twice. The version's own metadata records the step's
fingerprint too: a kill between the version's rename and the step's
`metadata.json` is recovered by finding that version, not by exporting again.

A new export of the same run (after `--force`, or a retrained model) replaces
the version the run exported before: that one is removed, unless it was blessed
and the new one is not. Existing versions that differ from what was exported
(their `kerasvae.json` records the digests) are named before a new one is written.
"""

import contextlib
import signal
import threading
from pathlib import Path

from kerasvae import artifacts
from kerasvae import serving
from kerasvae.steps import common
from kerasvae.steps import executor
from kerasvae.steps import table
from kerasvae.steps import train as train_step


class ExportRefused(common.StepError):
  """The model is not blessed by the evaluate step's thresholds."""


class ExportInterrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM stopped the export; the message says what was and was not written.

  Attributes:
    signal_number: the signal (the command exits with 128 + it).
  """

  def __init__(self, message, signal_number=signal.SIGINT):
    super().__init__(message)
    self.signal_number = int(signal_number)


@contextlib.contextmanager
def _interruptible():
  """Turns SIGINT and SIGTERM into `ExportInterrupted` in the main thread, so the export's
  cleanup runs (its temporary version is removed, a version whose models.config entry was
  not written is taken back) and the caller can say what was written. Further signals are
  ignored while that cleanup runs."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  numbers = (signal.SIGINT, signal.SIGTERM)
  previous = {}

  def handler(number, frame):  # pylint: disable=unused-argument
    for n in numbers:
      signal.signal(n, signal.SIG_IGN)
    raise ExportInterrupted(signal.Signals(number).name, number)

  for number in numbers:
    previous[number] = signal.signal(number, handler)
  try:
    yield
  finally:
    for number, old in previous.items():
      signal.signal(number, old)


def export_fingerprint(config, train_meta, evaluate_meta):
  """The export step's fingerprint (its table: `kerasvae.steps.table.EXPORT`)."""
  return table.EXPORT.fingerprint.compute(config=config, train=train_meta,
                                          evaluate=evaluate_meta)


def run(config, train_dir, evaluate_dir, export_dir, force=False):
  """Exports the trained model for TF Serving if the evaluation blessed it (or `force`).

  Returns:
    The SavedModel version directory.
  """
  return executor.execute(table.STEPS["export"], config, export_dir,
                          {"train": train_dir, "evaluate": evaluate_dir}, force=force)


def exported_output(run, meta):  # pylint: disable=unused-argument
  """The version a finished export step recorded, or None when it is gone (export again)."""
  version_dir = Path(meta["outputs"]["saved_model"])
  return version_dir if version_dir.is_dir() else None


def recover(run):
  """The version exported with this fingerprint by a run killed before its `metadata.json`
  was written, now recorded; or None."""
  model_dir = Path(run.config.export.base_dir) / run.config.export.model_name
  version_dir = _exported_version(model_dir, run.fingerprint)
  if version_dir is None:
    return None
  print(f"export: reusing {version_dir} (this model was exported by an interrupted run; "
        "--force exports again)")
  _write_metadata(run, version_dir, forced=False)
  return version_dir


def body(run):
  """The export step's body: the blessed (or forced) model as a new SavedModel version."""
  config, export_dir, force = run.config, run.directory, run.force
  train_dir, evaluate_dir = run.paths["train"], run.paths["evaluate"]
  fingerprint = run.fingerprint
  model_dir = Path(config.export.base_dir) / config.export.model_name
  blessing = artifacts.read_json(Path(evaluate_dir) / "blessing.json")
  if not blessing["blessed"] and config.export.require_blessing and not force:
    raise ExportRefused(f"The model in {train_dir} is not blessed: "
                        f"{common.blessing_failures(blessing)}. "
                        "Export anyway with --force, or set export.require_blessing=false.")
  version_dir = None
  models_config = Path(config.export.base_dir) / serving.MODELS_CONFIG_FILE
  try:
    with _interruptible():
      model = train_step.load_model(train_dir)
      metrics = artifacts.read_json(Path(evaluate_dir) / "metrics.json")
      replaced = _previous_export(export_dir)
      _report_damaged_versions(model_dir)
      try:
        version_dir = serving.export_model(
            model, base_dir=config.export.base_dir, model_name=config.export.model_name,
            metadata={"run_dir": str(Path(train_dir).parent), "blessed": blessing["blessed"],
                      "export_fingerprint": fingerprint,
                      "metrics": {k: v for k, v in metrics.items()
                                  if isinstance(v, (int, float))}},
            allow_signature_change=config.export.allow_signature_change,
            serving_base_path=config.export.serving_base_path)
      except serving.SignatureMismatchError as error:
        raise ExportRefused(str(error)) from None
      _write_metadata(run, version_dir, forced=bool(force and not blessing["blessed"]))
  except ExportInterrupted as interrupted:
    if version_dir is None:
      detail = (f"{interrupted}: nothing was written: no new version in {model_dir} (the "
                f"partial one was removed) and {models_config} is as it was; run the same "
                "command again to export")
    else:
      detail = (f"{interrupted}: {version_dir} was written and {models_config} names "
                f"{config.export.model_name}, but not {export_dir / artifacts.METADATA_FILE}: "
                "the same command finds that version instead of exporting again")
    raise ExportInterrupted(detail, interrupted.signal_number) from None
  print(f"export: wrote {version_dir}")
  if replaced is not None:
    _remove_replaced(*replaced, version_dir, blessing["blessed"])
  return version_dir


def _report_damaged_versions(model_dir):
  """Says which existing versions of the model name differ from what was exported, and which
  entries are named like a version without being one."""
  for path in serving.version_blockers(model_dir):
    print(f"export: warning: {path} is a file, not a version folder: TF Serving does not load "
          "it and export skips its number; remove it if it is not yours", flush=True)
  for version in serving.list_versions(model_dir):
    path = Path(model_dir) / str(version)
    problem = serving.version_damage(path)
    if problem is not None:
      print(f"export: warning: the existing version {path} is damaged: {problem}. It is left "
            f"as it is: remove it if no client asks for version {version}", flush=True)


def _previous_export(export_dir):
  """`(version directory, digests)` of the export step's previous output, or None."""
  try:
    meta = artifacts.read_json(Path(export_dir) / artifacts.METADATA_FILE)
  except (FileNotFoundError, artifacts.ArtifactError):  # none, or damaged: nothing to replace
    return None
  saved_model = (meta.get("outputs") or {}).get("saved_model")
  return (Path(saved_model), meta.get("digests")) if saved_model else None


def _remove_replaced(previous, digests, version_dir, blessed):
  """Removes the version this run exported before, which `version_dir` replaces.

  Only the version the run's export step recorded, in the same model folder, and only if
  it is as that step wrote it (its digests): a damaged one was named and stays, as does
  one another program put under that number. A blessed one replaced by a model that is not
  blessed (`--force`) stays too, so the better model is not lost.
  """
  if (not previous.is_dir() or previous.resolve() == version_dir.resolve()
      or previous.parent.resolve() != version_dir.parent.resolve()
      or not digests or artifacts.find_damage(previous, digests) is not None):
    return
  try:
    info = serving.read_export_metadata(previous)
  except (FileNotFoundError, artifacts.ArtifactError):
    return
  if (info.get("metadata") or {}).get("blessed") and not blessed:
    print(f"export: kept {version_dir.parent / previous.name}, this run's previous export: it "
          f"was blessed and {version_dir} is not")
    return
  previous = version_dir.parent / previous.name  # named as the new one is
  serving.remove_version(previous.parent, previous.name)
  print(f"export: removed {previous}, this run's previous export, which version "
        f"{version_dir.name} replaces")


def _exported_version(model_dir, fingerprint):
  """The version of `model_dir` exported with this fingerprint, or None."""
  for version in reversed(serving.list_versions(model_dir)):
    try:
      info = serving.read_export_metadata(model_dir / str(version))
    except (FileNotFoundError, ValueError):  # not exported by kerasvae, or unreadable
      continue
    if (info.get("metadata") or {}).get("export_fingerprint") == fingerprint:
      return model_dir / str(version)
  return None


def _write_metadata(run, version_dir, forced):
  config = run.config
  run.directory.mkdir(parents=True, exist_ok=True)
  run.write_metadata(
      run.directory,
      inputs={"model": run.paths["train"] / train_step.MODEL_FILE,
              "blessing": run.paths["evaluate"] / "blessing.json"},
      outputs={"saved_model": version_dir.resolve(),
               "models_config": Path(config.export.base_dir).resolve() / "models.config"},
      forced=forced, digests=artifacts.digest_files(version_dir))
