"""Tiny pipeline configs and helpers shared by the pipeline, strategy and study tests."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path, **blocks):
  """Writes a seconds-long pipeline config under tmp_path and returns its path."""
  config = {
      "run": {"name": "tiny", "runs_dir": str(tmp_path / "runs")},
      "ingest": {"data": {"source": "dsprites", "dsprites": {"num_examples": 640, "seed": 1}},
                 "split": {"eval_fraction": 0.2}, "num_shards": 2},
      "model": {"kind": "vae", "latent_dim": 2, "hidden_units": [32]},
      "train": {"epochs": 2, "batch_size": 32, "images_every_epochs": 1,
                "projector_examples": 50, "progress": False},
      "evaluate": {"iwae_samples": 10, "iwae_examples": 50, "disentanglement_train_points": 60,
                   "disentanglement_eval_points": 30},
      "export": {"base_dir": str(tmp_path / "saved_models"), "model_name": "tiny"},
  }
  return write_config_file(tmp_path / "tiny.yaml", config, blocks)


def write_config_file(path, config, blocks):
  """Writes `config` with each of `blocks` merged over its block of the same name as YAML at
  `path`; returns `path`."""
  for block, values in blocks.items():
    config[block] = {**config.get(block, {}), **values}
  path.write_text(yaml.safe_dump(config))
  return path


def finished_tiny_run(tmp_path):
  """One tiny finished `kerasvae run` in `tmp_path` (no disentanglement scores, no IWAE:
  seconds, not minutes); `(tmp_path, config_path, run_dir)`."""
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  config_path = tiny_config(tmp_path, evaluate={"disentanglement": False, "iwae_samples": 0})
  assert cli.main(["run", "--config", str(config_path)]) == 0
  run_dir = common.run_directory(configs.load_pipeline_config(config_path))
  return tmp_path, config_path, run_dir


def subprocess_env(**extra):
  env = dict(os.environ)
  env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""})
  env.update(extra)
  return env


def run_cli(args, cwd, timeout=300, **env):
  """Runs `python -m kerasvae.cli ARGS` in a fresh process; returns the CompletedProcess."""
  return subprocess.run([sys.executable, "-m", "kerasvae.cli", *args], cwd=cwd,
                        env=subprocess_env(**env), capture_output=True, text=True,
                        timeout=timeout)


def tiny_trainer(work_dir, config, data=None, model=None, **kwargs):
  """A `Trainer` of a 4x4x1 autoencoder (2 latents; or `model`) on 16 uniform images (or
  `data`), two steps of 8 per epoch, without XLA: seconds-long training for the loop's own tests.

  `kwargs` go to `Trainer` (`epoch_end_fn=...`, `evaluate_fn=...`).
  """
  import keras  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae import models  # pylint: disable=import-outside-toplevel
  from kerasvae import training  # pylint: disable=import-outside-toplevel
  if data is None:
    data = np.random.default_rng(0).uniform(size=(16, 4, 4, 1)).astype("float32")
  if model is None:
    model = models.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.main_trainable_variables)
  return training.Trainer(
      model, optimizer, tf.distribute.get_strategy(), config, str(work_dir),
      lambda _: tf.data.Dataset.from_tensor_slices({"image": data}).batch(8).repeat(),
      steps_per_epoch=2, **{"jit_compile": False, **kwargs})
