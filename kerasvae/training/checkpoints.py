"""A training's checkpoints and history: resumption after a kill, written off the training thread.

  <work_dir>/checkpoints/ckpt-<epochs>.*   the resumption checkpoint (the last
                                           `train.keep_checkpoints`): model, optimisers, epoch,
                                           early stopping's state
  <work_dir>/checkpoints/history.json      the epochs' records a checkpoint holds, written
                                           before it
  <work_dir>/best/model.*                  the best weights so far (early stopping)

`CheckpointWriter` saves a name -> variable checkpoint on a thread; `Resumption` restores the
newest intact checkpoint with its history and saves the next one.
"""

import json
import logging
import os
import re
import shutil
import threading

import tensorflow as tf

from kerasvae import _backend
from kerasvae import artifacts
from kerasvae.training.errors import TrainingError

logger = logging.getLogger("kerasvae.training")

CHECKPOINT_DIR = "checkpoints"  # in the train step's directory
HISTORY_FILE = "history.json"  # in the checkpoint directory
BEST_DIR = "best"  # in the train step's directory: the best weights so far (early stopping)


class CheckpointWriter:
  """Saves a name -> variable checkpoint, copying the values and writing the copy on a thread.

  The copy (one compiled assign per variable into a private variable) takes about a
  millisecond; the write, 25 ms for the MNIST MLP VAE and its Adam slots on 2 CPU cores,
  then overlaps the next epoch's training instead of stopping it. One write runs at a time:
  `save` first waits for the previous one and re-raises its error. A write killed half-way
  is never the latest checkpoint: `tf.train.CheckpointManager` records a checkpoint only
  once its files are complete. The copy holds the saved state a second time in memory (for
  a VAE and its Adam slots, megabytes).

  Args:
    state: {name: variable} to save; restore with `tf.train.Checkpoint(**state)`.
    directory, max_to_keep: as for `tf.train.CheckpointManager`.
    asynchronous: False writes on the calling thread (the multi-worker strategy, where
      every worker's save takes part in collectives).
  """

  def __init__(self, state, directory, max_to_keep, asynchronous=True):
    self.asynchronous = asynchronous
    self._state = state
    if asynchronous:
      with tf.init_scope(), tf.device("/cpu:0"):
        self._copies = {name: tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                                          name=f"{name}_copy")
                        for name, v in state.items()}
      saved = self._copies
    else:
      saved = state
    self.manager = tf.train.CheckpointManager(tf.train.Checkpoint(**saved), directory,
                                              max_to_keep=max_to_keep)
    self._thread = None
    self._error = None

  @property
  def latest_checkpoint(self):
    """The newest complete checkpoint's prefix (waits for a write under way)."""
    self.wait()
    return self.manager.latest_checkpoint

  @tf.function
  @_backend.once_per_model
  def _copy(self):
    for name, variable in self._state.items():
      self._copies[name].assign(variable)

  def save(self, checkpoint_number):
    """Saves the variables' current values as checkpoint `checkpoint_number`."""
    if not self.asynchronous:
      self.wait()
      self.manager.save(checkpoint_number=checkpoint_number)
      return
    self.snapshot()
    self.write_snapshot(checkpoint_number)

  def snapshot(self):
    """Copies the variables' current values (asynchronous writers only), for `write_snapshot`."""
    self.wait()
    self._copy()

  def write_snapshot(self, checkpoint_number):
    """Starts writing the values of the last `snapshot` as checkpoint `checkpoint_number`."""
    self.wait()
    self._thread = threading.Thread(target=self._write, args=(checkpoint_number,),
                                    name="kerasvae-checkpoint")
    self._thread.start()

  def _write(self, checkpoint_number):
    try:
      self.manager.save(checkpoint_number=checkpoint_number)
    except Exception as error:  # pylint: disable=broad-except  # re-raised by wait()
      self._error = error

  def wait(self):
    """Blocks until the write under way (if any) is on disk; raises its error."""
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    if self._error is not None:
      error, self._error = self._error, None
      raise error


class Resumption:
  """The resumption checkpoint of a training and the history of the epochs it holds.

  The checkpoint maps names to variables directly: saving it then skips the traversal of the
  Keras object graph, 24 of the 40 ms a checkpoint took (MNIST MLP VAE, 2 CPU cores), and it
  is written after every epoch. The order of the state's variables is fixed by the model's
  config, which also fixes the run directory.

  Args:
    state: {name: variable} to save, with the training's `epoch` counter.
    work_dir: the train step's directory (`checkpoints/` goes there).
    strategy: the tf.distribute strategy.
    keep_checkpoints: how many checkpoints to keep.
    chief: whether this process writes the history and says what it restores.

  Attributes:
    history: the records of the epochs done (restored ones first).
    manager: the `CheckpointWriter`.
    checkpoint: a `tf.train.Checkpoint` of the state (restores what `manager` wrote).
    multi_worker: whether workers save together (collectives): synchronously, and on the
      epoch interval alone, never on each one's clock.
  """

  def __init__(self, state, work_dir, strategy, keep_checkpoints, chief):
    self.state = state
    self.chief = chief
    self.checkpoint = tf.train.Checkpoint(**state)
    checkpoint_dir = os.path.join(work_dir, CHECKPOINT_DIR)
    if not chief:  # other workers must save too (collectives), but somewhere private
      checkpoint_dir = os.path.join(work_dir, f".worker-{strategy.cluster_resolver.task_id}")
    # The history of the epochs a checkpoint holds, written before it: a resumed training
    # keeps the epochs before the resume (restore keeps those up to the restored epoch).
    self.history_path = os.path.join(checkpoint_dir, HISTORY_FILE)
    self.history = []
    self.multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    self.manager = CheckpointWriter(state, checkpoint_dir, keep_checkpoints,
                                    asynchronous=not self.multi_worker)

  def restore(self):
    """Restores the newest intact checkpoint, if any. Returns the epoch to start from.

    A checkpoint that fails to restore (TensorFlow checks every tensor's CRC32C) is
    skipped, saying so, for the next older one; when every checkpoint is damaged, a
    TrainingError says how to start again. The epochs' history saved beside the
    checkpoints is restored up to the restored epoch.
    """
    self.manager.wait()
    directory = self.manager.manager.directory
    if os.path.isdir(directory):
      # TensorFlow writes a checkpoint into `ckpt-N_temp/` and merges it at the end: one left
      # by a killed write is stale (the run lock admits one writer, and ours is not started).
      for name in os.listdir(directory):
        if re.fullmatch(r"ckpt-[0-9]+_temp", name):
          shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    damaged = []
    for prefix in _checkpoint_prefixes(directory):
      try:
        # A fresh Checkpoint object per attempt: a failed restore leaves nothing pending.
        tf.train.Checkpoint(**self.state).restore(prefix).assert_existing_objects_matched()
      except (tf.errors.OpError, ValueError, AssertionError) as error:
        damaged.append((prefix, error))
        continue
      epoch = int(self.state["epoch"].numpy())
      if self.chief:
        for bad, error in damaged:
          print(f"train: the checkpoint {bad} is damaged ({_first_line(error)}); "
                "falling back to the newest intact one", flush=True)
        print(f"train: resuming from {prefix} ({epoch} epochs done)", flush=True)
      self.history = [r for r in _read_history(self.history_path) if r["epoch"] <= epoch]
      if self.chief and [r["epoch"] for r in self.history] != list(range(1, epoch + 1)):
        logger.warning("The history beside %s lacks some of its %d epochs; history.json will "
                       "hold only the epochs it has.", prefix, epoch)
      return epoch
    if damaged:
      names = ", ".join(f"{bad} ({_first_line(error)})" for bad, error in damaged)
      raise TrainingError(f"Every checkpoint in {directory} is damaged: {names}. Train again "
                          "from scratch with `kerasvae train --force`.")
    return 0

  def save(self, epochs_done, snapshot=False):
    """Saves the history so far, then the checkpoint of `epochs_done` epochs: of the
    variables' current values, or (`snapshot`) of the copy the last `manager.snapshot()` took."""
    if self.chief:
      os.makedirs(os.path.dirname(self.history_path), exist_ok=True)
      artifacts.write_json(self.history_path,
                           history_json([r for r in self.history if r["epoch"] <= epochs_done]))
    if snapshot:
      self.manager.write_snapshot(epochs_done)
    else:
      self.manager.save(checkpoint_number=epochs_done)


def remove_resumption_state(work_dir):
  """Removes what only an unfinished training in `work_dir` needs: its checkpoints (with the
  history beside them) and the best weights of early stopping, which the saved model holds."""
  for name in (CHECKPOINT_DIR, BEST_DIR):
    artifacts.remove_directory(os.path.join(work_dir, name))


def has_checkpoint(work_dir):
  """Whether a training in `work_dir` (a Trainer's) has saved a checkpoint to resume from."""
  return bool(_checkpoint_prefixes(os.path.join(work_dir, CHECKPOINT_DIR)))


def _checkpoint_prefixes(directory):
  """The checkpoints in `directory`, newest first, found by their index files (not by the
  `checkpoint` state file, which names only the newest and may itself be damaged)."""
  if not os.path.isdir(directory):
    return []
  numbers = []
  for name in os.listdir(directory):
    match = re.fullmatch(r"ckpt-([0-9]+)\.index", name)
    if match:
      numbers.append(int(match.group(1)))
  return [os.path.join(directory, f"ckpt-{n}") for n in sorted(numbers, reverse=True)]


def _first_line(error):
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[-1] if text else ''}"[:300]


def _read_history(path):
  """The history saved beside the checkpoints, or [] when there is none or it is unreadable."""
  try:
    with open(path) as f:
      history = json.load(f)
  except (OSError, ValueError):
    return []
  return [r for r in history if isinstance(r, dict) and isinstance(r.get("epoch"), int)]


def history_json(history):
  """History as JSON-safe data."""
  return json.loads(json.dumps(history, default=float))
