"""Distribution and fault tolerance: MirroredStrategy, multi-worker, checkpoints, NaN (a kill and
resume: tests/reliability/test_resume.py)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasvae import cli
from kerasvae import models
from kerasvae import training
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env
from tests.pipeline_helpers import tiny_config
from tests.pipeline_helpers import tiny_trainer

MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from kerasvae.steps import configs, train
from kerasvae import pipeline
config_path, kind, out = sys.argv[1:4]
results = {}
for strategy, batch in (("default", 16), ("mirrored", 8)):
  config = configs.load_pipeline_config(config_path, [
      f"model.kind={kind}", f"train.strategy={strategy}", f"train.batch_size={batch}",
      "train.epochs=2", "train.steps_per_epoch=10"])
  run = pipeline.run_pipeline(config, steps=("ingest", "train"),
                              run_dir=pipeline.common.run_directory(config).with_name(strategy))
  meta = json.load(open(run["train"] / "metadata.json"))
  model = train.load_model(run["train"])
  np.savez(f"{out}/{strategy}.npz", *model.get_weights())
  results[strategy] = {"replicas": meta["replicas"], "final": meta["final"]}
json.dump(results, open(f"{out}/results.json", "w"))
"""


def _run_mirrored(tmp_path, kind):
  config_path = tiny_config(tmp_path)
  proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(config_path), kind,
                         str(tmp_path)], env=subprocess_env(), capture_output=True, text=True,
                        timeout=300, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  weights = {s: list(np.load(tmp_path / f"{s}.npz").values()) for s in ("default", "mirrored")}
  return results, weights


def test_mirrored_autoencoder_matches_single_device(tmp_path):
  results, weights = _run_mirrored(tmp_path, "autoencoder")
  assert results["default"]["replicas"] == 1 and results["mirrored"]["replicas"] == 2
  # Same examples per step (2 replicas x 8 = 16), same initialisation, no noise: the same
  # model up to the summation order of the all-reduce.
  for a, b in zip(weights["default"], weights["mirrored"]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(results["mirrored"]["final"]["train/loss"],
                             results["default"]["final"]["train/loss"], rtol=1e-4)


def test_mirrored_vae_matches_single_device_within_noise(tmp_path):
  results, weights = _run_mirrored(tmp_path, "vae")
  single, mirrored = results["default"]["final"], results["mirrored"]["final"]
  # Each replica draws its own reparameterisation noise, so only statistics agree. After 20
  # steps on the calibrated dSprites the ELBO is still falling steeply (about -2,300 nats from
  # -2,840 at initialisation), where another draw moves it by several percent (6 % measured).
  assert abs(single["validation/elbo"] - mirrored["validation/elbo"]) < 0.1 * abs(single["validation/elbo"])
  assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(weights["default"], weights["mirrored"]))


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_multi_worker_strategy_trains_one_epoch_with_two_local_workers(tmp_path):
  config_path = tiny_config(tmp_path, train={"epochs": 1, "strategy": "multi_worker",
                                             "batch_size": 16, "progress": False})
  assert cli.main(["ingest", "--config", str(config_path)]) == 0
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  procs = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "kerasvae.cli", "train", "--config", str(config_path)],
        cwd=REPO, env=subprocess_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  run_dir = common.run_directory(configs.load_pipeline_config(config_path))
  meta = json.loads((run_dir / "train" / "metadata.json").read_text())
  # MultiWorkerMirroredStrategy is an alias of CollectiveAllReduceStrategy.
  assert meta["strategy"] == "CollectiveAllReduceStrategy" and meta["replicas"] == 2
  assert meta["epochs_run"] == 1 and np.isfinite(meta["final"]["train/loss"])
  assert (run_dir / "train" / "model" / "model.keras").is_file()


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
  config = configs.TrainConfig(epochs=3, batch_size=8, progress=False, jit_compile="false",
                               checkpoint_min_seconds=0)
  strategy = tf.distribute.get_strategy()
  model = models.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.trainable_variables)
  good = np.full((16, 4, 4, 1), 0.5, "float32")
  bad = np.full((8, 4, 4, 1), np.nan, "float32")

  def dataset_fn(_):  # epoch 1: two good batches; then NaN images
    data = np.concatenate([good] + [bad] * 10)
    return tf.data.Dataset.from_tensor_slices({"image": data}).batch(8)

  trainer = training.Trainer(model, optimizer, strategy, config, str(tmp_path), dataset_fn,
                             steps_per_epoch=2, jit_compile=False)
  with pytest.raises(training.TrainingError, match=r"loss became nan at epoch 2.*ckpt-1"):
    trainer.train()
  assert trainer.manager.latest_checkpoint.endswith("ckpt-1")
  assert any(np.isnan(w).any() for w in model.get_weights())  # the NaN step corrupted them
  trainer.checkpoint.restore(trainer.manager.latest_checkpoint)
  assert all(np.isfinite(w).all() for w in model.get_weights())


def test_epoch_end_fn_sees_the_initial_model_once_and_every_epoch(tmp_path):
  seen = []

  def trainer(epochs):
    config = configs.TrainConfig(epochs=epochs, batch_size=8, progress=False)
    return tiny_trainer(tmp_path, config, epoch_end_fn=lambda epoch, *_: seen.append(epoch))

  trainer(2).train()
  assert seen == [0, 1, 2]
  trainer(3).train()  # resumes after epoch 2: no second "initial model"
  assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("min_seconds, saved", [(0, [2, 4, 5]), (3600, [5])])
def test_checkpoints_follow_the_epoch_interval_and_the_time_floor(tmp_path, min_seconds, saved):
  config = configs.TrainConfig(epochs=5, batch_size=8, progress=False, jit_compile="false",
                               checkpoint_every_epochs=2, checkpoint_min_seconds=min_seconds,
                               keep_checkpoints=10)
  trainer = tiny_trainer(tmp_path, config)
  trainer.train()
  numbers = [int(p.rsplit("-", 1)[1]) for p in trainer.manager.manager.checkpoints]
  assert numbers == saved  # the last epoch is always saved


def test_asynchronous_checkpoint_saves_the_values_at_save_time(tmp_path):
  weights = tf.Variable(tf.fill([1000, 100], 1.0))
  step = tf.Variable(0, dtype=tf.int64)
  writer = training.CheckpointWriter({"weights": weights, "step": step}, str(tmp_path), 2)
  assert writer.asynchronous
  writer.save(checkpoint_number=1)
  weights.assign(tf.fill([1000, 100], 2.0))  # while the write may still run
  step.assign(1)
  writer.save(checkpoint_number=2)
  weights.assign(tf.fill([1000, 100], 3.0))
  assert writer.latest_checkpoint.endswith("ckpt-2")  # waits for the write
  restored = {"weights": tf.Variable(tf.zeros([1000, 100])), "step": tf.Variable(7, dtype=tf.int64)}
  for number, value in ((1, 1.0), (2, 2.0)):
    tf.train.Checkpoint(**restored).read(str(tmp_path / f"ckpt-{number}")).assert_existing_objects_matched()
    np.testing.assert_array_equal(restored["weights"].numpy(), value)
    assert int(restored["step"].numpy()) == number - 1


def test_a_failed_asynchronous_checkpoint_write_is_raised_by_the_next_save(tmp_path):
  blocker = tmp_path / "checkpoints"
  blocker.write_text("a file where the checkpoint directory should be")
  writer = training.CheckpointWriter({"v": tf.Variable(1.0)}, str(blocker), 2)
  writer.save(checkpoint_number=1)  # returns at once; the write fails on its thread
  with pytest.raises(Exception, match="checkpoints"):
    writer.save(checkpoint_number=2)
  assert writer.manager.latest_checkpoint is None


def test_early_stopping_stops_after_patience_and_keeps_the_best_weights(tmp_path):
  config = configs.TrainConfig(epochs=10, batch_size=8, progress=False,
                               early_stopping_patience=2)
  model = models.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  optimizer = keras.optimizers.Adam(1e-2)
  optimizer.build(model.trainable_variables)
  data = np.random.default_rng(0).uniform(size=(16, 4, 4, 1)).astype("float32")
  scores = iter([-10.0, -5.0, -7.0, -6.0, -1.0])  # best after epoch 2, then two worse evals
  snapshots = []

  def evaluate_fn():
    snapshots.append([w.copy() for w in model.get_weights()])
    return {"elbo": 0.0, "objective": next(scores)}  # the objective decides, not the ELBO

  trainer = training.Trainer(
      model, optimizer, tf.distribute.get_strategy(), config, str(tmp_path),
      lambda _: tf.data.Dataset.from_tensor_slices({"image": data}).repeat().batch(8),
      steps_per_epoch=2, evaluate_fn=evaluate_fn, jit_compile=False)
  history = trainer.train()
  assert [r["epoch"] for r in history] == [1, 2, 3, 4]
  for best, restored in zip(snapshots[1], model.get_weights()):
    np.testing.assert_array_equal(best, restored)


def _train_until_epoch(config_path, epochs_before_signal, signals):
  """Starts `kerasvae train`, sends `signals` once `epochs_before_signal` epoch lines are out
  (so, mid-epoch), and returns (return code, stdout lines, stderr)."""
  proc = subprocess.Popen([sys.executable, "-m", "kerasvae.cli", "train", "--config",
                           str(config_path)], cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  lines, epochs_seen = [], 0
  deadline = time.time() + 240
  for line in proc.stdout:  # one line per epoch (progress is off), flushed
    lines.append(line.rstrip("\n"))
    epochs_seen += line.startswith("epoch ")
    if epochs_seen == epochs_before_signal:
      for number in signals:
        proc.send_signal(number)
      break
    assert time.time() < deadline, lines
  out, err = proc.communicate(timeout=120)
  return proc.returncode, lines + out.splitlines(), err


def test_sigint_and_sigterm_save_a_checkpoint_and_the_rerun_resumes_there(tmp_path):
  # The default 30 s checkpoint floor: without the signal handling nothing would be saved.
  config_path = tiny_config(tmp_path, train={"epochs": 50, "steps_per_epoch": 50,
                                             "batch_size": 32, "progress": False,
                                             "images_every_epochs": 100})
  assert cli.main(["ingest", "--config", str(config_path)]) == 0
  run_dir = common.run_directory(configs.load_pipeline_config(config_path))
  checkpoints = run_dir / "train" / "checkpoints"
  resumed_from = 0
  for number, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
    returncode, lines, err = _train_until_epoch(config_path, 2, [number])
    assert returncode == code, err[-3000:]
    assert lines[0] == "train: DefaultDistributionStrategy (auto), 1 replica"
    if resumed_from:  # the rerun starts after the interrupted run's last finished epoch
      assert lines[1] == (f"train: resuming from {checkpoints}/ckpt-{resumed_from} "
                          f"({resumed_from} epochs done)")
      assert lines[2].startswith(f"epoch {resumed_from + 1}/50:")
    # Saved: the last epoch that finished (its line was printed), not a half-done one.
    done = max(int(line.split()[1].split("/")[0]) for line in lines if line.startswith("epoch "))
    assert done in (resumed_from + 2, resumed_from + 3), lines
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"ckpt-{done}")
    name = signal.Signals(number).name
    assert (f"interrupted: {name}: the last finished epoch is saved in {checkpoints}/ckpt-{done} "
            f"({done} of 50 epochs done); run the same command again to resume from epoch "
            f"{done + 1}.") in err
    assert not (run_dir / "train" / "metadata.json").exists()
    resumed_from = done


def _signal_trainer(tmp_path, signals_at_epoch_end):
  config = configs.TrainConfig(epochs=5, batch_size=8, progress=False, jit_compile="false")

  def epoch_end_fn(epoch, *_):
    for number in signals_at_epoch_end.get(epoch, ()):
      os.kill(os.getpid(), number)

  return tiny_trainer(tmp_path, config, epoch_end_fn=epoch_end_fn)


def test_a_signal_saves_the_finished_epoch_and_a_second_stops_at_once(tmp_path):
  handlers = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
  trainer = _signal_trainer(tmp_path / "one", {2: [signal.SIGINT]})
  with pytest.raises(training.TrainingInterrupted,
                     match=r"SIGINT: the last finished epoch is saved in .*ckpt-2 \(2 of 5 epochs "
                     r"done\); run the same command again to resume from epoch 3"):
    trainer.train()
  assert trainer.manager.latest_checkpoint.endswith("ckpt-2")  # the 30 s floor skipped it
  # Two signals: the second one stops at once and nothing is saved.
  trainer = _signal_trainer(tmp_path / "two", {2: [signal.SIGINT, signal.SIGTERM]})
  with pytest.raises(training.TrainingInterrupted, match="SIGTERM again: stopped at once") as info:
    trainer.train()
  assert info.value.signal_number == signal.SIGTERM
  assert trainer.manager.latest_checkpoint is None
  assert {n: signal.getsignal(n) for n in handlers} == handlers  # restored
