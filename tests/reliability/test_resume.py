"""A training killed by SIGKILL late in its run resumes with every epoch recorded exactly once."""

import json
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from kerasvae import cli
from kerasvae import training
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env
from tests.pipeline_helpers import tiny_config
from tests.pipeline_helpers import tiny_trainer

EPOCHS = 8


def test_training_killed_at_a_late_epoch_resumes_with_a_complete_history(tmp_path, capsys):
  config_path = tiny_config(tmp_path, train={"epochs": EPOCHS, "steps_per_epoch": 5,
                                             "batch_size": 32, "checkpoint_min_seconds": 0,
                                             "images_every_epochs": 100})
  assert cli.main(["ingest", "--config", str(config_path)]) == 0
  run_dir = common.run_directory(configs.load_pipeline_config(config_path))
  proc = subprocess.Popen([sys.executable, "-m", "kerasvae.cli", "train", "--config",
                           str(config_path)], cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  watchdog = threading.Timer(240, proc.kill)  # bounded in time: a hung process ends the loop
  watchdog.start()
  try:
    for line in proc.stdout:  # the trainer prints (and flushes) a line after every epoch
      if line.startswith(f"epoch {EPOCHS - 2}/{EPOCHS}:"):
        proc.send_signal(signal.SIGKILL)
        break
    else:
      raise AssertionError("training ended (or hung) before it could be killed")
  finally:
    watchdog.cancel()
    proc.kill()
    proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not (run_dir / "train" / "metadata.json").exists()
  capsys.readouterr()
  assert cli.main(["train", "--config", str(config_path)]) == 0
  resumed = re.search(r"resuming from \S+/ckpt-([0-9]+) \(([0-9]+) epochs done\)",
                      capsys.readouterr().out)
  assert resumed and int(resumed.group(2)) >= 2  # checkpoints were written
  history = json.loads((run_dir / "train" / "history.json").read_text())
  assert [r["epoch"] for r in history] == list(range(1, EPOCHS + 1))  # each epoch exactly once
  assert all("train/loss" in r for r in history)
  meta = json.loads((run_dir / "train" / "metadata.json").read_text())
  assert meta["epochs_run"] == EPOCHS and meta["final"]["epoch"] == EPOCHS
  # The training's wall-clock counts the killed run's epochs too: "elapsed" runs on across the
  # resume, each epoch adding at least its own time, and only what came after the resumed
  # epoch fits in the last run's "seconds".
  elapsed, seconds = [r["elapsed"] for r in history], [r["seconds"] for r in history]
  assert all(b - a >= s for a, b, s in zip(elapsed, elapsed[1:], seconds[1:]))
  assert elapsed[0] >= seconds[0]
  done = int(resumed.group(2))
  assert elapsed[-1] - elapsed[done - 1] <= meta["seconds"] < elapsed[-1]
  assert meta["training_seconds"] == elapsed[-1]


def test_a_nan_before_any_checkpoint_says_nothing_is_kept(tmp_path):
  config = configs.TrainConfig(epochs=3, batch_size=8, progress=False, jit_compile="false")
  trainer = tiny_trainer(tmp_path, config, data=np.full((16, 4, 4, 1), np.nan, "float32"))
  with pytest.raises(training.TrainingError) as error:
    trainer.train()
  message = str(error.value)
  assert "The training loss became nan at epoch 1" in message
  assert "no checkpoint was saved before it, so nothing is kept" in message
  assert "None" not in message
