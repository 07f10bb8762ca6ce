"""A full disk during ingest, train or export is a named error: exit 2, the path and the space,
nothing half-written, and the same command completes once there is room.

The end-to-end test fills real devices: small tmpfs mounts (it needs root and `mount`, and
is skipped without them). The others inject the errors a full disk raises (Python's OSError
ENOSPC, TensorFlow's ResourceExhaustedError) and run everywhere.
"""

import errno
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.reliability.test_bad_inputs import run_main
from tests.reliability.test_bad_inputs import tree
from tests.reliability.test_bad_inputs import write_config

DISK_FULL = (r"error: No space left on the device holding {path}: the step needs more than "
             r"the [0-9.]+ [kMG]B free there \(of [0-9.]+ [kMG]B\); nothing half-written is kept\. "
             r"Free some space or set {setting} to a folder on another device, then run the "
             r"command again\.\n$")
# Names a killed or failed writer leaves: kerasvae's temporaries, TensorFlow's checkpoint
# folders being written, Keras' model being saved.
HALF_WRITTEN = re.compile(r"\..*\.tmp-.*|.*_temp|\.model\.tmp\.keras")


@pytest.fixture
def small_device(tmp_path):
  """`small_device(name, size)`: a tmpfs of `size` mounted at tmp_path/name (unmounted after)."""
  mounted = []

  def mount(name, size):
    path = tmp_path / name
    path.mkdir()
    if os.geteuid() != 0:
      pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
      pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    mounted.append(path)
    return path

  yield mount
  for path in reversed(mounted):
    # Lazily: a file a failed writer left open (in a traceback pytest keeps) holds the mount.
    subprocess.run(["umount", "--lazy", str(path)], check=True)


def assert_disk_full(args, cwd, monkeypatch, capsys, path, setting):
  """Runs a command that must fail on a full device holding `path` (a regex)."""
  code, err = run_main(args, cwd, monkeypatch, capsys)
  assert code == 2, err
  assert "Traceback" not in err
  assert re.search(DISK_FULL.format(path=path, setting=re.escape(setting)), err), err
  return err


def half_written(root):
  return sorted(p for p in tree(root) if HALF_WRITTEN.fullmatch(Path(p).name))


def test_full_device_in_ingest_train_and_export_is_named_and_the_rerun_completes(
    tmp_path, small_device, monkeypatch, capsys):
  write_config(tmp_path / "c.yaml",
               ingest={"data": {"source": "dsprites", "dsprites": {"num_examples": 2000}},
                       "split": {"eval_fraction": 0.2}, "num_shards": 1},
               model={"latent_dim": 2, "hidden_units": [16]},
               train={"epochs": 1, "batch_size": 32, "progress": False,
                      "projector_examples": 10},
               evaluate={"iwae_samples": 5, "iwae_examples": 20, "disentanglement": False},
               export={"base_dir": "saved_models", "model_name": "full",
                       "require_blessing": False})
  # Ingest: the Examples (gzip TFRecords of 2,000 images, 200 kB) do not fit in 64 kB.
  ingest_device = small_device("ingest-device", "64k")
  examples = ["--config", "c.yaml", "--set", "run.runs_dir=ingest-device/runs"]
  assert_disk_full(["ingest", *examples], tmp_path, monkeypatch, capsys,
                   r"ingest-device/runs/examples/\w+", "run.runs_dir")
  assert tree(ingest_device) == set()  # not even the empty folders
  # Train: a checkpoint of the model and its Adam slots (about 0.8 MB) does not fit in 256 kB.
  code, err = run_main(["ingest", "--config", "c.yaml"], tmp_path, monkeypatch, capsys)
  assert code == 0, err
  train_device = small_device("train-device", "256k")
  assert_disk_full(["train", "--config", "c.yaml", "--run-dir", "train-device/run"], tmp_path,
                   monkeypatch, capsys, "train-device/run/train", "--run-dir")
  assert half_written(train_device) == []
  assert not (train_device / "run" / "train" / "model.keras").exists()
  assert not (train_device / "run" / "train" / "metadata.json").exists()
  # Export: the SavedModel does not fit in 64 kB; the model name's folder is not left behind.
  for step in ("train", "evaluate"):  # in the run directory under runs/, on the disk
    code, err = run_main([step, "--config", "c.yaml"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
  export_device = small_device("export-device", "64k")
  exports = ["--config", "c.yaml", "--set", "export.base_dir=export-device"]
  assert_disk_full(["export", *exports], tmp_path, monkeypatch, capsys,
                   "export-device/full", "export.base_dir")
  assert half_written(export_device) == [] and not (export_device / "full").exists()
  # With room, the same commands complete.
  subprocess.run(["mount", "-o", "remount,size=64m", str(export_device)], check=True)
  code, err = run_main(["export", *exports], tmp_path, monkeypatch, capsys)
  assert code == 0, err
  assert (export_device / "full" / "1" / "saved_model.pb").is_file()
  subprocess.run(["mount", "-o", "remount,size=64m", str(train_device)], check=True)
  code, err = run_main(["train", "--config", "c.yaml", "--run-dir", "train-device/run"],
                       tmp_path, monkeypatch, capsys)
  assert code == 0, err
  assert (train_device / "run" / "train" / "metadata.json").is_file()


def _raise(error):
  def fail(*args, **kwargs):
    raise error
  return fail


@pytest.mark.parametrize("step,error,path,setting", [
    ("ingest", OSError(errno.ENOSPC, "No space left on device"), r"runs/examples/\w+",
     "run.runs_dir"),
    ("train", OSError(errno.EDQUOT, "Disk quota exceeded"), r"runs/full-\w+/train",
     "run.runs_dir"),
    ("export", "tensorflow", r"saved_models/full", "export.base_dir"),
])
def test_full_device_errors_of_each_step_are_named(step, error, path, setting, tmp_path,
                                                   monkeypatch, capsys):
  """The errors of a full device as Python and TensorFlow raise them, injected into a step."""
  from kerasvae.steps import executor, ingest  # pylint: disable=import-outside-toplevel
  if error == "tensorflow":
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    error = tf.errors.ResourceExhaustedError(
        None, None, "{{function_node __wrapped__SaveV2}} saved_models/.full.tmp/variables/"
        "variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on "
        "device [Op:SaveV2]")
  execute = executor.execute  # every step runs through it: the named one fails
  monkeypatch.setattr(executor, "execute", lambda s, *args, **kwargs: (
      _raise(error)() if s.name == step else execute(s, *args, **kwargs)))
  monkeypatch.setattr(ingest, "examples_of", lambda *_: tmp_path / "examples")  # not read
  # The step itself fails: no upstream artifact is made for the early check to find.
  from kerasvae.steps import table  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(table, "check_upstream", lambda *args, **kwargs: None)
  write_config(tmp_path / "c.yaml", run={"name": "full", "runs_dir": "runs"},
               export={"base_dir": "saved_models", "model_name": "full"})
  before = tree(tmp_path)
  assert_disk_full([step, "--config", "c.yaml"], tmp_path, monkeypatch, capsys, path, setting)
  assert tree(tmp_path) == before


def test_only_errors_of_a_full_device_are_taken_for_one():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  assert artifacts.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as cause:
      raise RuntimeError("saving failed") from cause
  except RuntimeError as wrapped:
    assert artifacts.is_disk_full(wrapped)
  assert artifacts.is_disk_full(tf.errors.ResourceExhaustedError(
      None, None, "/x/a.tfrecord; No space left on device"))
  assert not artifacts.is_disk_full(tf.errors.ResourceExhaustedError(
      None, None, "OOM when allocating tensor with shape[100000,100000]"))
  assert not artifacts.is_disk_full(OSError(errno.EACCES, "Permission denied"))
  assert not artifacts.is_disk_full(ValueError("No space left on device"))  # not TF's, no errno


def test_a_full_device_outside_the_steps_is_named_by_the_command(tmp_path, monkeypatch, capsys):
  """The CLI names a full device wherever it comes from, with the file when the error has one."""
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(configs, "load_pipeline_config", _raise(OSError(
      errno.ENOSPC, "No space left on device", str(tmp_path / "somewhere" / "file"))))
  code, err = run_main(["ingest"], tmp_path, monkeypatch, capsys)
  assert code == 2 and "Traceback" not in err
  assert re.fullmatch(r"kerasvae ingest: error: No space left on the device holding "
                      + re.escape(str(tmp_path / "somewhere" / "file")) + r": the step needs "
                      r"more than the .* free there .*run the command again\.\n", err), err
