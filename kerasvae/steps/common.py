"""What every step shares: run directories, step metadata, reuse, locking, building models."""

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

from kerasvae import artifacts
from kerasvae import kinds
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


# Train settings that do not change the trained model (display, disk use): left out of the
# fingerprints, so that changing one finds the same run and reuses its model.
UNFINGERPRINTED_TRAIN_SETTINGS = ("progress", "keep_checkpoints", "keep_final_checkpoint")
# Train settings added after runs were fingerprinted: left out while at these defaults, so that
# a config that does not set one keeps its run (and its reused model) as before.
FINGERPRINTED_UNLESS_DEFAULT = {"precision": "float32"}


def train_identity(train_config):
  """The train config as fingerprinted: without `UNFINGERPRINTED_TRAIN_SETTINGS`, and
  without those of `FINGERPRINTED_UNLESS_DEFAULT` at their defaults."""
  train = config_lib.to_dict(train_config)
  for name in UNFINGERPRINTED_TRAIN_SETTINGS:
    train.pop(name, None)
  for name, default in FINGERPRINTED_UNLESS_DEFAULT.items():
    if train.get(name) == default:
      del train[name]
  return train


def refuse_symlinks(config, run_dir, steps):
  """Raises artifacts.SymlinkError if a folder that running `steps` writes is or holds a link.

  Checked: the run directory (below run.runs_dir, or the --run-dir itself), the shared
  Examples artifact, and with the export step the model's folder under export.base_dir.
  """
  runs_dir = Path(config.run.runs_dir)
  run_dir = Path(run_dir)
  if Path(os.path.abspath(run_dir)).is_relative_to(os.path.abspath(runs_dir)):
    artifacts.refuse_symlinks(run_dir, runs_dir, "run.runs_dir")
  else:
    artifacts.refuse_symlinks(run_dir, run_dir, "--run-dir")
  artifacts.refuse_symlinks(examples_directory(config), runs_dir, "run.runs_dir")
  if "export" in steps:
    base_dir = Path(config.export.base_dir)
    artifacts.refuse_symlinks(base_dir / config.export.model_name, base_dir, "export.base_dir")


def run_fingerprint(config):
  return artifacts.fingerprint({"ingest": config_lib.to_dict(config.ingest),
                                "model": config_lib.to_dict(config.model),
                                "train": train_identity(config.train)})


def examples_directory(config):
  """Examples artifacts are shared by all runs with the same ingest config (studies reuse one).

  What the source adds is part of the name (`Source.artifact_identity`): the built-in dSprites
  renderer's version, so that after a change of the renderer a run writes a new artifact
  instead of meeting the old one (which ingest would refuse to reuse, its content fingerprint
  differing).
  """
  from kerasvae.data import sources  # pylint: disable=import-outside-toplevel
  identity = config_lib.to_dict(config.ingest)
  identity.update(sources.SOURCES[config.ingest.data.source].artifact_identity())
  digest = artifacts.fingerprint(identity)[:12]
  return Path(config.run.runs_dir) / "examples" / digest


def reusable(step_dir, fingerprint):
  """True when `step_dir` holds a complete step output made from the same inputs and config."""
  path = Path(step_dir) / artifacts.METADATA_FILE
  if not path.is_file():
    return False
  return artifacts.read_json(path, redo=redo_command(step_dir)).get("fingerprint") == fingerprint


def redo_command(step_dir):
  """The command that rewrites a step directory's artifacts: `kerasvae <step> --force`."""
  return f"kerasvae {Path(step_dir).name} --force"


def step_metadata(step, fingerprint, config, inputs, outputs, started, **extra):
  """The `metadata.json` of a step: inputs, outputs, config, versions, the machine (its CPU and
  cores), start and end time."""
  return dict(step=step, fingerprint=fingerprint, config=config_lib.to_dict(config),
              inputs={k: str(v) for k, v in inputs.items()},
              outputs={k: str(v) for k, v in outputs.items()},
              versions=artifacts.package_versions(), machine=artifacts.machine(), started=started,
              finished=artifacts.utc_now(), **extra)


class DamagedArtifactError(StepError):
  """An artifact's files differ from the digests its step recorded when it wrote them."""


def check_artifact(directory, digests, what, step, redo, note=None):
  """Raises DamagedArtifactError if a file under `directory` differs from its recorded digest.

  Args:
    directory: the artifact (a directory, or a single file).
    digests: the `digests` its step recorded (`artifacts.digest_files`); None (an artifact
      written before digests were recorded) checks nothing.
    what: the artifact's name in the message ("Examples artifact", "trained model").
    step: the step that wrote it.
    redo: the command that redoes that step.
    note: a remark after the command, or None.
  """
  if not digests:
    return
  problem = artifacts.find_damage(directory, digests)
  if problem is not None:
    raise DamagedArtifactError(
        f"The {what} {directory} is damaged: {problem}. Redo the {step} step with `{redo}`"
        + (f" ({note})." if note else "."))


def require_step(step_dir, step, command_hint):
  """The metadata of a finished upstream step, or a StepError saying how to produce it."""
  if not artifacts.is_complete(step_dir):
    raise StepError(f"Expected a finished {step} step in {step_dir}, but it has no "
                    f"{artifacts.METADATA_FILE}. Run `{command_hint}` first.")
  return artifacts.read_json(Path(step_dir) / artifacts.METADATA_FILE, redo=redo_command(step_dir))


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

  The lock is a kernel lock (flock) on the file, not the file's existence: the kernel
  releases it when its process ends, however it ends, so there is no stale lock to judge
  by a pid, and no moment when a lock file exists without an owner. The file holds the
  holder's pid for the message of a refused second writer.

  The workers of one multi-worker training are one run: only the chief locks. A run on a
  read-only file system is read without a lock (no lock file can be made, and no process can
  write there through this mount): its finished steps are reused, and a step that must write
  fails with a named error (`artifacts.os_error_message`).
  """
  run_dir = Path(run_dir)
  run_dir.mkdir(parents=True, exist_ok=True)
  if is_secondary_worker():
    yield run_dir
    return
  lock = run_dir / ".lock"
  try:
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
  except OSError as error:
    if error.errno != errno.EROFS:
      raise
    yield run_dir
    return
  try:
    while True:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        try:
          pid = lock.read_text().strip() or "unknown"
        except OSError:
          pid = "unknown"
        raise StepError(f"Another kerasvae process (pid {pid}) is writing into {run_dir}. "
                        "Wait for it to finish.") from None
      # A lock file unlinked by its previous holder after we opened it locks nothing.
      try:
        same = os.stat(lock).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
      fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    # The pid is only for the message above; the kernel lock is what excludes. One write of a
    # fixed width: a reader sees the old pid or the new one, never a mix or a truncated file.
    os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
    yield run_dir
  finally:
    os.close(fd)  # releases the lock; the file stays (removing it would race a new holder)


def remove_tree(path):
  if Path(path).exists():
    shutil.rmtree(path)


def build_model(model_config, image_shape, steps_per_epoch=1, num_train_examples=None,
                batch_size=None, precision="float32"):
  """Builds the model a `ModelConfig` describes, for images of `image_shape`, through the
  kind registry (`kerasvae.kinds`): the kind's class builds itself from its settings block.

  `steps_per_epoch`, `num_train_examples` and the global `batch_size` are what the training
  tells the model (`kinds.TrainingData`), e.g. to turn a warm-up in epochs into steps.
  `precision` (`train.precision`) is the networks' dtype policy (the models' `network_dtype`).
  """
  c = model_config
  network = dict(input_shape=tuple(image_shape), latent_dim=c.latent_dim,
                 architecture=c.architecture, hidden_units=tuple(c.hidden_units),
                 filters=tuple(c.filters), dense_units=c.dense_units)
  if precision != "float32":
    network["network_dtype"] = precision
  data = kinds.TrainingData(steps_per_epoch, num_train_examples, batch_size)
  return kinds.get(c.kind).model_class().from_settings(c.settings, network, data)


class Timer:
  def __init__(self):
    self.started = artifacts.utc_now()
    self.t0 = time.time()

  @property
  def seconds(self):
    return time.time() - self.t0


def rounded(value, digits=5):
  """A number for a message: floats to `digits` significant digits (-205.32 for
  -205.32167212677), anything else as it is."""
  if isinstance(value, float):
    return f"{value:.{digits}g}"
  return str(value)


def blessing_failures(blessing):
  """The failed checks of a `blessing.json`, in words: thresholds, then the comparison with the
  served model, e.g. `elbo=-205.32 (expected >= -150.0); elbo 12.3 worse than the served
  saved_models/vae/1 (at most 5.0)`."""
  parts = [f"{c['metric']}={rounded(c['value'])} (expected "
           + " and ".join(f"{'>=' if k == 'lower_bound' else '<='} {c[k]}"
                          for k in ("lower_bound", "upper_bound") if k in c) + ")"
           for c in blessing.get("checks", []) if not c["passed"]]
  comparison = blessing.get("baseline") or {}
  parts += [f"{c['metric']} {rounded(c['change'], 3)} worse than the served "
            f"{comparison['version_dir']} (at most {rounded(c['max_change'], 3)})"
            for c in comparison.get("checks", []) if not c["passed"]]
  return "; ".join(parts) or "no failed check recorded"
