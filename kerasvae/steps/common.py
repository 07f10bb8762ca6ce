"""What every step shares: run directories, step metadata, reuse, locking, building models."""

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from kerasvae import artifacts
from kerasvae import config as config_lib

logger = logging.getLogger(__name__)


class StepError(RuntimeError):
  """A step cannot run (a missing input artifact, a refused export); the message says what to do."""


def run_directory(config):
  """`<runs_dir>/<run.name>-<hash>`: one directory per model configuration.

  The hash covers what determines the trained model (ingest, model, train
  minus display options), so the same config reuses its run, another config
  gets another directory, and two different runs never share one.
  """
  return Path(config.run.runs_dir) / f"{config.run.name}-{run_fingerprint(config)[:10]}"


def run_fingerprint(config):
  train = config_lib.to_dict(config.train)
  train.pop("progress", None)
  return artifacts.fingerprint({"ingest": config_lib.to_dict(config.ingest),
                                "model": config_lib.to_dict(config.model), "train": train})


def examples_directory(config):
  """Examples artifacts are shared by all runs with the same ingest config (studies reuse one).

  The built-in dSprites renderer's version is part of the name: after a change of the
  renderer a run writes a new artifact instead of meeting the old one (which ingest would
  refuse to reuse, its content fingerprint differing).
  """
  identity = config_lib.to_dict(config.ingest)
  if config.ingest.data.source == "dsprites":
    from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
    identity["dsprites_renderer"] = dsprites.RENDERER_VERSION
  digest = artifacts.fingerprint(identity)[:12]
  return Path(config.run.runs_dir) / "examples" / digest


def reusable(step_dir, fingerprint):
  """True when `step_dir` holds a complete step output made from the same inputs and config."""
  path = Path(step_dir) / artifacts.METADATA_FILE
  if not path.is_file():
    return False
  return artifacts.read_json(path).get("fingerprint") == fingerprint


def step_metadata(step, fingerprint, config, inputs, outputs, started, **extra):
  """The `metadata.json` of a step: inputs, outputs, config, versions, start and end time."""
  return dict(step=step, fingerprint=fingerprint, config=config_lib.to_dict(config),
              inputs={k: str(v) for k, v in inputs.items()},
              outputs={k: str(v) for k, v in outputs.items()},
              versions=artifacts.package_versions(), started=started,
              finished=artifacts.utc_now(), **extra)


def require_step(step_dir, step, command_hint):
  """The metadata of a finished upstream step, or a StepError saying how to produce it."""
  if not artifacts.is_complete(step_dir):
    raise StepError(f"Expected a finished {step} step in {step_dir}, but it has no "
                    f"{artifacts.METADATA_FILE}. Run `{command_hint}` first.")
  return artifacts.read_json(Path(step_dir) / artifacts.METADATA_FILE)


def _pid_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def is_secondary_worker():
  """True in a multi-worker cluster's non-chief process (it shares the chief's run directory)."""
  import json  # pylint: disable=import-outside-toplevel
  task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
  cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
  if not task:
    return False
  if "chief" in cluster:
    return task.get("type") != "chief"
  return not (task.get("type") == "worker" and int(task.get("index", 0)) == 0)


@contextlib.contextmanager
def run_lock(run_dir):
  """Holds `<run_dir>/.lock` so that two processes never write into the same run at once.

  The workers of one multi-worker training are one run: only the chief locks.
  """
  run_dir = Path(run_dir)
  run_dir.mkdir(parents=True, exist_ok=True)
  if is_secondary_worker():
    yield run_dir
    return
  lock = run_dir / ".lock"
  for _ in range(2):
    try:
      fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      break
    except FileExistsError:
      try:
        pid = int(lock.read_text().strip() or 0)
      except (OSError, ValueError):
        pid = 0
      if pid and _pid_alive(pid) and pid != os.getpid():
        raise StepError(f"Another kerasvae process (pid {pid}) is writing into {run_dir}. "
                        f"Wait for it, or remove {lock} if that process is gone.") from None
      lock.unlink(missing_ok=True)  # stale: its process is gone
  else:
    raise StepError(f"Could not lock {run_dir}: remove {lock}.")
  with os.fdopen(fd, "w") as f:
    f.write(str(os.getpid()))
  try:
    yield run_dir
  finally:
    lock.unlink(missing_ok=True)


def remove_tree(path):
  if Path(path).exists():
    shutil.rmtree(path)


def build_model(model_config, image_shape, steps_per_epoch=1):
  """Builds the model a `ModelConfig` describes, for images of `image_shape`.

  `steps_per_epoch` turns `kl_warmup_epochs` into the model's warm-up steps.
  """
  from kerasvae import models  # pylint: disable=import-outside-toplevel
  c = model_config
  common = dict(input_shape=tuple(image_shape), latent_dim=c.latent_dim,
                architecture=c.architecture, hidden_units=tuple(c.hidden_units),
                filters=tuple(c.filters), dense_units=c.dense_units)
  if c.kind == "vae":
    likelihood = {"name": c.likelihood}
    if c.likelihood == "gaussian":
      likelihood.update(scale=c.gaussian_scale, learn_scale=c.learn_scale)
    prior = {"name": c.prior}
    if c.prior != "gaussian":
      prior["num_components"] = c.num_components
    return models.VAE(prior=prior, likelihood=likelihood, kl_weight=c.kl_weight,
                      kl_warmup_steps=int(round(c.kl_warmup_epochs * steps_per_epoch)), **common)
  if c.kind == "autoencoder":
    return models.Autoencoder(reconstruction_loss=c.reconstruction_loss, **common)
  return models.NoisyAutoencoder(reconstruction_loss=c.reconstruction_loss,
                                 noise_factor=c.noise_factor, **common)


class Timer:
  def __init__(self):
    self.started = artifacts.utc_now()
    self.t0 = time.time()

  @property
  def seconds(self):
    return time.time() - self.t0
