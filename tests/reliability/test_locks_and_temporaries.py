"""The run lock under contention, temporaries of killed writers, and the NaN stop's message."""

import signal
import subprocess
import sys

import pytest

from kerasvae import artifacts
from kerasvae.steps import common
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env

# Takes the run lock as often as it can for a while; inside the lock, a marker file must not
# exist (another holder's) and is made and removed again. Prints how often it held the lock
# and how often it found another holder inside.
CONTENDER = r"""
import os, sys, time
from kerasvae.steps import common
run_dir, seconds = sys.argv[1], float(sys.argv[2])
marker = os.path.join(run_dir, "holder")
held = overlaps = 0
end = time.time() + seconds
while time.time() < end:
  try:
    with common.run_lock(run_dir):
      held += 1
      try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        overlaps += 1
        continue
      os.close(fd)
      os.unlink(marker)
  except common.StepError:
    pass
print(held, overlaps)
"""


def test_the_run_lock_admits_one_process_at_a_time(tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, str(run_dir), "4"], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(6)]
  results = []
  try:
    for proc in procs:
      out, err = proc.communicate(timeout=60)
      assert proc.returncode == 0, err[-2000:]
      results.append([int(n) for n in out.split()])
  finally:
    for proc in procs:
      proc.kill()
      proc.wait()
  assert sum(held for held, _ in results) > 100  # the lock changed hands often
  assert [overlaps for _, overlaps in results] == [0] * 6


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\nfrom kerasvae.steps import common\n"
       "with common.run_lock(sys.argv[1]):\n  print('held', flush=True)\n  time.sleep(60)",
       str(tmp_path / "run")], cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(common.StepError,
                       match=rf"Another kerasvae process \(pid {holder.pid}\) is writing into"):
      with common.run_lock(tmp_path / "run"):
        pass
    holder.send_signal(signal.SIGKILL)  # a killed holder's lock is free at once
    holder.wait()
    with common.run_lock(tmp_path / "run"):
      pass
  finally:
    holder.kill()
    holder.wait()


WRITER = r"""
import sys, time
from kerasvae import artifacts
with artifacts.atomic_directory(sys.argv[1]) as tmp:
  (tmp / "part").write_text("half")
  print(tmp.name, flush=True)
  time.sleep(60)
"""


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
  def writer(name):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / name)], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()

  (killed, killed_tmp), (live, live_tmp) = writer("examples"), writer("evaluate")
  try:
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert (tmp_path / killed_tmp / "part").is_file() and killed_tmp.startswith(".examples.")
    with artifacts.atomic_directory(tmp_path / "other") as tmp:
      (tmp / "done").write_text("yes")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert killed_tmp not in names  # its process is gone
    assert live_tmp in names  # another live process's: left alone
    assert "other" in names
  finally:
    live.kill()
    live.wait()


def test_an_artifact_that_appears_while_writing_is_never_replaced(tmp_path):
  final = tmp_path / "examples"
  with pytest.raises(FileExistsError, match="Refusing to replace the existing"):
    with artifacts.atomic_directory(final) as tmp:
      (tmp / "mine").write_text("mine")
      # Another writer finished first. Its directory is empty here, which a plain rename
      # onto it (Linux) would silently replace.
      final.mkdir()
  assert final.is_dir() and list(final.iterdir()) == []
  assert [p.name for p in tmp_path.iterdir()] == ["examples"]  # our temporary is gone


# A `kerasvae train` killed while it writes the trained model: Keras' save writes half a file
# at the name it is given, then the process is killed.
KILLED_MODEL_SAVE = r"""
import os, signal, sys
import keras
def save(self, filepath, *args, **kwargs):
  with open(filepath, "wb") as f:
    f.write(b"half a model")
  os.kill(os.getpid(), signal.SIGKILL)
keras.Model.save = save
from kerasvae import cli
cli.main(["train", "--config", sys.argv[1]])
"""


def test_the_temporary_of_a_killed_model_save_is_removed_by_the_stale_cleanup(tmp_path):
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  from tests.pipeline_helpers import tiny_config  # pylint: disable=import-outside-toplevel
  config_path = tiny_config(tmp_path, train={"epochs": 1, "images_every_epochs": 100,
                                             "projector_examples": 0})
  assert cli.main(["ingest", "--config", str(config_path)]) == 0
  proc = subprocess.run([sys.executable, "-c", KILLED_MODEL_SAVE, str(config_path)], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
  model_dir = common.run_directory(configs.load_pipeline_config(config_path)) / "train" / "model"
  left = sorted(p.name for p in model_dir.iterdir())
  assert left and "model.keras" not in left  # the half-written temporary, under some name
  removed = artifacts.remove_stale_temporaries(model_dir)  # what the next writer calls
  assert sorted(p.name for p in removed) == left
  assert list(model_dir.iterdir()) == []
