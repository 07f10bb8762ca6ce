"""The distributed training loop: strategies, checkpoints, resumption and TensorBoard scalars.

Keras' `model.fit` fails under the multi-worker strategy (keras-team/keras
issue 20585), so training is a custom loop: `strategy.run` of a replica step
whose loss is the sum over its examples divided by the GLOBAL batch size
(gradients are summed across replicas, so this gives the global mean). The
gradient computation is XLA-compiled; under a mirrored strategy the update
runs outside XLA so that the cross-replica all-reduce can happen, under the
default and one-device strategies it is compiled into the same step.
"""

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from kerasvae import _backend, artifacts, progress
from kerasvae.config import ConfigError

logger = logging.getLogger(__name__)

# The per-example terms of `loss_terms` shown first; every other per-example term a model kind
# returns (a [B] tensor: a total correlation, an adversary's loss) is logged after them.
LOGGED_TERMS = ("loss", "reconstruction", "kl", "weighted_kl", "elbo")
CHECKPOINT_DIR = "checkpoints"  # in the train step's directory
HISTORY_FILE = "history.json"  # in the checkpoint directory
BEST_DIR = "best"  # in the train step's directory: the best weights so far (early stopping)


class TrainingError(RuntimeError):
  """Training cannot go on (a non-finite loss, a bad strategy); the message says why."""


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM stopped training; the message says what was saved and how to resume.

  A KeyboardInterrupt, so that code which lets Ctrl-C through lets this through too.

  Attributes:
    signal_number: the signal (`signal.SIGINT`, `signal.SIGTERM`).
  """

  def __init__(self, message, signal_number=signal.SIGINT):
    super().__init__(message)
    self.signal_number = int(signal_number)


def make_strategy(name="auto"):
  """The tf.distribute strategy called `name`.

  Args:
    name: `auto` (MirroredStrategy when more than one GPU is visible, the
      default strategy otherwise), `default`, `one_device`, `mirrored` (all
      local GPUs, or all logical CPU devices when there is no GPU) or
      `multi_worker` (MultiWorkerMirroredStrategy from `TF_CONFIG`).
  """
  if name == "multi_worker":
    # Must come before anything initialises the TF runtime (even listing devices).
    if "TF_CONFIG" not in os.environ:
      raise TrainingError("train.strategy=multi_worker needs the TF_CONFIG environment variable "
                          "(cluster and task of this worker). Received: TF_CONFIG unset")
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_logical_devices("GPU")
  if name == "auto":
    name = "mirrored" if len(gpus) > 1 else "default"
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
  raise TrainingError(f"Expected train.strategy in auto, default, one_device, mirrored, "
                      f"multi_worker. Received: {name!r}")


def describe_strategy(strategy, requested):
  """One line: which strategy trains, on how many replicas, and a warning where `mirrored`
  was asked for and found a single device (no data parallelism)."""
  replicas = strategy.num_replicas_in_sync
  try:
    devices = strategy.extended.worker_devices
  except (AttributeError, RuntimeError):  # the default strategy has no device list
    devices = ()
  line = (f"train: {type(strategy).__name__.lstrip('_')} ({requested}), {replicas} "
          f"replica{'s' if replicas != 1 else ''}"
          + (f" on {', '.join(d.rsplit('/', 1)[-1].lower() for d in devices)}" if devices else ""))
  if requested in ("mirrored", "multi_worker") and replicas == 1:
    line += (": one replica, so no data parallelism (MirroredStrategy needs several GPUs, or "
             "the CPU split into logical devices)")
  return line


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) without oneDNN's bfloat16 convolutions and matrix
# products: TensorFlow still sends bfloat16 layers to oneDNN, whose primitive cannot be made;
# measured with TF 2.21: an eager call raises, a compiled train step aborts the process.
NO_BFLOAT16_ISA_CAPS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
# The least an x86 CPU needs for oneDNN's bfloat16 kernels (its `avx512_core`); a CPU without
# them dispatches as those caps do.
AVX512_CORE_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq")


def check_precision(precision, cpu_flags=None, environ=None, gpus=None):
  """Refuses a bfloat16 network where TensorFlow cannot compute it; notes where it is unmeasured.

  Args:
    precision: `train.precision` (or a loaded model's `network_dtype`).
    cpu_flags: the CPU's flags (default: /proc/cpuinfo's first processor).
    environ: the environment (default `os.environ`).
    gpus: whether a GPU computes (default: TensorFlow's logical GPU devices).

  Returns:
    A note to print ("" when there is nothing to say).

  Raises:
    ConfigError: mixed_bfloat16 computed by oneDNN where it has no bfloat16 kernels: under an
      ONEDNN_MAX_CPU_ISA without them, or on an x86 CPU without AVX-512.
  """
  if precision == "float32":
    return ""
  if gpus is None:
    gpus = bool(tf.config.list_logical_devices("GPU"))
  if gpus:
    return ""
  if cpu_flags is None:
    cpu_flags = _backend.cpu_flags()
  onednn = _backend.onednn_enabled(environ, cpu_flags)  # None: TensorFlow's own answer
  environ = os.environ if environ is None else environ
  cap = environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
  if onednn and cap in NO_BFLOAT16_ISA_CAPS:
    raise ConfigError(
        f"train.precision: {precision} computes the networks in bfloat16 with oneDNN, which "
        f"has no bfloat16 kernels under ONEDNN_MAX_CPU_ISA={cap} (TensorFlow would abort in "
        "the first step: 'could not create a primitive descriptor'). Expected train.precision: "
        "float32 with this cap, or ONEDNN_MAX_CPU_ISA unset or AVX512_CORE and above. "
        f"Received: ONEDNN_MAX_CPU_ISA={environ['ONEDNN_MAX_CPU_ISA']}")
  missing = [f for f in AVX512_CORE_FLAGS if f not in cpu_flags]
  if onednn and "sse2" in cpu_flags and missing:  # an x86 CPU below oneDNN's avx512_core
    raise ConfigError(
        f"train.precision: {precision} computes the networks in bfloat16 with oneDNN, whose "
        "bfloat16 kernels need AVX-512 (avx512f, avx512bw, avx512vl, avx512dq); on this CPU "
        "it dispatches as under ONEDNN_MAX_CPU_ISA=AVX2, where TensorFlow aborts in the first "
        "step ('could not create a primitive descriptor'). Expected train.precision: float32 "
        "on this CPU (TF_ENABLE_ONEDNN_OPTS=0 would leave bfloat16 to Eigen's kernels instead: "
        f"not measured). Received: a CPU without {', '.join(missing)} "
        f"({artifacts.cpu_description()})")
  if not any(f in cpu_flags for f in ("avx512_bf16", "amx_bf16")):
    return (f"note: {precision} on a CPU without bfloat16 instructions (avx512_bf16, "
            "amx_bf16): on AVX-512 without them oneDNN converts every bfloat16 tensor to "
            "float32 and back, and the dSprites conv VAE trained at 0.47-0.66x float32's "
            "speed (benchmarks/README.md); train.precision: float32 is likely faster here")
  return ""


def is_chief(strategy):
  """Whether this process writes logs, checkpoints and artifacts."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not getattr(resolver, "task_type", None):
    return True
  return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                           and resolver.task_id == 0)


def _without_merge_call(strategy):
  """True for the strategies whose optimizer update has no cross-replica merge_call (the
  default and one-device ones), so it may run inside an XLA-compiled function; a mirrored
  strategy's all-reduce (even over one device) may not."""
  return (isinstance(strategy, tf.distribute.OneDeviceStrategy)
          or type(strategy).__name__ == "_DefaultDistributionStrategy")


def learning_rate_schedule(config, steps_per_epoch):
  """The learning rate as a constant or a Keras schedule over optimiser steps."""
  total = config.epochs * steps_per_epoch
  if config.lr_schedule == "cosine":
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)
  if config.lr_schedule == "exponential":
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=max(1, int(config.lr_decay_epochs * steps_per_epoch)),
        decay_rate=config.lr_decay_rate)
  return config.learning_rate


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


class Trainer:
  """Runs epochs of distributed training with checkpoints, evaluation and early stopping.

  Args:
    model: a kerasvae model built inside `strategy.scope()`.
    optimizer: a Keras optimizer built inside `strategy.scope()`.
    strategy: the tf.distribute strategy.
    config: the `TrainConfig`.
    work_dir: the train step's directory: `checkpoints/` and `logs/` go there.
    dataset_fn: `input_context -> tf.data.Dataset` of training batches (dicts
      with "image"), repeated, with the per-replica batch size.
    steps_per_epoch: optimiser steps in an epoch.
    evaluate_fn: `() -> dict` of eval metrics (with "objective", the model's validation
      objective, for early stopping; without it "elbo"), or None.
    epoch_end_fn: `(epoch, train_writer, eval_writer) -> None`, for images; or None.
      Called after every epoch, and with epoch 0 before a training that starts from
      scratch (the initial model; this also compiles its functions outside the epochs).
    jit_compile: XLA-compile the per-replica gradient computation.
    preprocess_fn: `batch -> batch with "image"`, run on each per-replica batch inside the
      compiled gradient computation (`reader.finish_fn` for batches of stored pixels), or
      None when the batches hold "image".
  """

  def __init__(self, model, optimizer, strategy, config, work_dir, dataset_fn, steps_per_epoch,
               evaluate_fn=None, epoch_end_fn=None, jit_compile=True, preprocess_fn=None):
    self.model = model
    self.optimizer = optimizer
    self.strategy = strategy
    self.config = config
    self.work_dir = work_dir
    self.steps_per_epoch = int(steps_per_epoch)
    self.evaluate_fn = evaluate_fn
    self.jit_compile = bool(jit_compile)
    self.epoch_end_fn = epoch_end_fn
    self.preprocess_fn = preprocess_fn
    self.chief = is_chief(strategy)
    self.interrupted = None  # the signal that stopped the last `train`, if any
    self._scheduled_names = ()  # the model's `scheduled_values`, logged every epoch
    self.global_batch = config.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
      # The best validation objective so far (named as before it was the ELBO, so older
      # checkpoints resume).
      self.best_eval_elbo = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
      self.evals_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
    # The resumption checkpoint maps names to variables directly: saving it then skips the
    # traversal of the Keras object graph, 24 of the 40 ms a checkpoint took (MNIST MLP VAE,
    # 2 CPU cores), and it is written after every epoch. The order of `variables` is fixed by
    # the model's config, which also fixes the run directory.
    # The model's own objectives beside the main loss (an adversary), each with its optimizer.
    self.objectives = []
    with strategy.scope():
      for key, variables, make_optimizer in model.extra_objectives():
        extra = make_optimizer()
        extra.build(variables)
        self.objectives.append((key, list(variables), extra))
    state = {f"model_{i}": v for i, v in enumerate(model.variables)}
    state.update({f"optimizer_{i}": v for i, v in enumerate(optimizer.variables)})
    for key, _, extra in self.objectives:
      state.update({f"{key}_optimizer_{i}": v for i, v in enumerate(extra.variables)})
    state.update(epoch=self.epoch, best_eval_elbo=self.best_eval_elbo,
                 evals_since_best=self.evals_since_best)
    self._state = state
    self.checkpoint = tf.train.Checkpoint(**state)  # restores what `manager` wrote
    checkpoint_dir = os.path.join(work_dir, CHECKPOINT_DIR)
    if not self.chief:  # other workers must save too (collectives), but somewhere private
      checkpoint_dir = os.path.join(work_dir, f".worker-{strategy.cluster_resolver.task_id}")
    # The history of the epochs a checkpoint holds, written before it: a resumed training
    # keeps the epochs before the resume (restore keeps those up to the restored epoch).
    self.history_path = os.path.join(checkpoint_dir, HISTORY_FILE)
    self.history = []
    # Workers of a multi-worker run save together (collectives): synchronously, and on the
    # epoch interval alone, never on each one's clock.
    self._multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    self.manager = CheckpointWriter(state, checkpoint_dir, config.keep_checkpoints,
                                    asynchronous=not self._multi_worker)
    self.best_prefix = os.path.join(work_dir, BEST_DIR, "model")
    self.best_checkpoint = tf.train.Checkpoint(model=model)
    self.dataset = strategy.distribute_datasets_from_function(dataset_fn)
    self._train_fn = self._make_train_fn()
    log_dir = os.path.join(work_dir, "logs")
    if self.chief:
      self.train_writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
      # Keras' names for the two runs (kerasvae.summaries describes the layout).
      self.eval_writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
    else:
      self.train_writer = self.eval_writer = tf.summary.create_noop_writer()

  def _make_train_fn(self):
    model, optimizer, strategy = self.model, self.optimizer, self.strategy
    global_batch = float(self.global_batch)
    # (loss key, variables, optimizer) of every objective; the main loss trains the variables
    # no other objective claims.
    objectives = [("loss", model.main_trainable_variables, optimizer)] + self.objectives

    # Without replicas there is no all-reduce, so the Adam update joins the compiled step:
    # outside XLA it is ~40 small kernels per step, and the MLP VAE's step on 2 CPU cores ran
    # at 0.7x the speed of a fully compiled one (benchmarks/train_throughput.py).
    fused_update = self.jit_compile and _without_merge_call(strategy)
    preprocess = self.preprocess_fn
    logged = self._logged_terms = []  # names of the entries of `sums`, set when traced

    # Every random draw of a step (the posterior sample, code noise, a permutation) comes from
    # a stateless seed of (train.seed, step, replica): the stateful generators keep their state
    # in the process (XLA's too), so a second training in one process (a study's next trial)
    # drew other noise than the same training alone.
    base_seed = tf.constant([self.config.seed, 0x5EED], tf.int32)

    @tf.function(jit_compile=self.jit_compile)
    @_backend.once_per_model
    def gradients(batch, step):
      # Made here, the float image fuses into the first layer, and the reader's threads, which
      # share the cores with this step, do less.
      x = (preprocess(batch) if preprocess else batch)["image"]
      replica = tf.distribute.get_replica_context().replica_id_in_sync_group
      seed = tf.random.experimental.stateless_fold_in(
          tf.random.experimental.stateless_fold_in(base_seed, tf.cast(step, tf.int32)),
          tf.cast(replica, tf.int32))
      with tf.GradientTape(persistent=len(objectives) > 1) as tape:
        terms = model.loss_terms(x, training=True, step=step, seed=seed)
        losses = [tf.reduce_sum(terms[key]) / global_batch for key, _, _ in objectives]
      grads = [tape.gradient(loss, variables)
               for loss, (_, variables, _) in zip(losses, objectives)]
      del tape
      # One [T] output, not T scalars: at batch 1024 a dict of five scalar outputs made the
      # MNIST MLP VAE's compiled step 7 % slower (benchmarks/README.md).
      per_example = sorted(k for k, v in terms.items() if v.shape.rank == 1)
      logged.extend(k for k in [*LOGGED_TERMS, *per_example] if k in per_example
                    and k not in logged)
      sums = tf.reduce_sum(tf.stack([terms[k] for k in logged]), axis=1)  # [T]
      if fused_update:
        apply(grads)
        return None, sums
      return grads, sums

    def apply(grads):
      for (_, variables, objective_optimizer), objective_grads in zip(objectives, grads):
        objective_optimizer.apply_gradients(zip(objective_grads, variables))

    def replica_step(batch):
      grads, sums = gradients(batch, tf.convert_to_tensor(optimizer.iterations))
      if not fused_update:
        apply(grads)
      return sums

    @tf.function
    @_backend.once_per_model
    def train_fn(iterator, num_steps):
      totals = None
      for _ in tf.range(num_steps):
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)  # [T]
        totals = reduced if totals is None else totals + reduced
      return totals

    return train_fn

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
        tf.train.Checkpoint(**self._state).restore(prefix).assert_existing_objects_matched()
      except (tf.errors.OpError, ValueError, AssertionError) as error:
        damaged.append((prefix, error))
        continue
      epoch = int(self.epoch.numpy())
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

  def save_checkpoint(self, epochs_done, snapshot=False):
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

  def _progress(self, epoch):
    """Keras' bar over the epoch's steps on a terminal (not under CI); else None: one line
    per epoch, printed at its end."""
    if self.config.progress and self.chief and progress.interactive():
      print(f"epoch {epoch + 1}/{self.config.epochs}", flush=True)
      return keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=LOGGED_TERMS,
                                 unit_name="step")
    return None

  def _learning_rate(self):
    lr = self.optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)

  def train(self):
    """Trains until `config.epochs` or early stopping. Returns the history (a list of dicts).

    SIGINT (Ctrl-C) or SIGTERM stops training at the next chunk of steps and saves the state
    after the last finished epoch (a copy taken at each epoch's end, so a signal mid-epoch
    saves nothing half-done), then raises `TrainingInterrupted`, which says how to resume. A
    second signal stops at once. A signal after the last epoch's steps lets training finish;
    `interrupted` then names the signal, for the caller to stop after writing its outputs.
    """
    self.interrupted = None
    with self._stop_on_signals():
      try:
        return self._train()
      finally:
        self.manager.wait()  # the last checkpoint is on disk before anything reads it

  @contextlib.contextmanager
  def _stop_on_signals(self):
    """Turns the first SIGINT/SIGTERM into `self.interrupted` (checked between steps); a second
    one raises `TrainingInterrupted` at once. Python delivers signals to the main thread only,
    so elsewhere (a training run in a thread) the handlers stay as they are."""
    if not self.chief or threading.current_thread() is not threading.main_thread():
      yield
      return
    previous = {}

    def restore():
      for number, handler in previous.items():
        signal.signal(number, handler)
      previous.clear()

    def handler(number, frame):  # pylint: disable=unused-argument
      name = signal.Signals(number).name
      if self.interrupted is not None:
        restore()  # a third signal acts as if kerasvae were not there
        raise TrainingInterrupted(
            f"{name} again: stopped at once, without saving; the same command resumes from "
            f"the last complete checkpoint in {self.manager.manager.directory}", number)
      self.interrupted = number
      # os.write, not print: a handler may run while the main thread is inside print.
      os.write(sys.stderr.fileno(), (f"\ntrain: {name}: stopping after the current steps and "
                                     "saving a checkpoint (again to stop at once)\n").encode())

    for number in (signal.SIGINT, signal.SIGTERM):
      previous[number] = signal.signal(number, handler)
    try:
      yield
    finally:
      restore()

  def _stop_if_interrupted(self):
    """After a signal: saves the last finished epoch's state and raises TrainingInterrupted."""
    if self.interrupted is None:
      return
    number, name = self.interrupted, signal.Signals(self.interrupted).name
    epochs_done = int(self.epoch.numpy())
    if self._multi_worker:  # a checkpoint takes every worker; this one cannot save alone
      raise TrainingInterrupted(
          f"{name}: stopped; multi-worker training saves only on its epoch interval, so the "
          f"same command resumes from the last complete checkpoint in "
          f"{self.manager.manager.directory}", number)
    if epochs_done > self._saved_epoch and self._snapshot_epoch == epochs_done:
      self.save_checkpoint(epochs_done, snapshot=True)
      self._saved_epoch = epochs_done
    latest = self.manager.latest_checkpoint  # waits for the write
    if not latest:
      raise TrainingInterrupted(
          f"{name} during epoch 1: no epoch had finished, so nothing was saved; the same "
          "command trains from epoch 1 again", number)
    saved = int(latest.rsplit("-", 1)[1])
    raise TrainingInterrupted(
        f"{name}: the last finished epoch is saved in {latest} ({saved} of "
        f"{self.config.epochs} epochs done); run the same command again to resume from epoch "
        f"{saved + 1}", number)

  def _train(self):
    started_run = time.time()
    start_epoch = self.restore()
    # Wall-clock of the training so far, over every run that resumed it: a record's "elapsed"
    # includes its epoch's evaluation and the checkpoints before it (older histories have
    # only the epochs' own "seconds").
    elapsed_before = (self.history[-1].get("elapsed", sum(r["seconds"] for r in self.history))
                      if self.history else 0.0)
    # The epochs in the newest checkpoint, and in the copy a signal would save.
    self._saved_epoch, self._snapshot_epoch = start_epoch, None
    if start_epoch == 0 and self.chief and self.epoch_end_fn is not None:
      self.epoch_end_fn(0, self.train_writer, self.eval_writer)
    history = self.history
    self._last_checkpoint = time.monotonic()
    iterator = iter(self.dataset)
    for epoch in range(start_epoch, self.config.epochs):
      self._stop_if_interrupted()
      started = time.time()
      progbar = self._progress(epoch)
      totals, done = {}, 0
      # Run `steps_per_execution` steps per call, then check the loss and update the bar.
      while done < self.steps_per_epoch:
        n = min(self.config.steps_per_execution, self.steps_per_epoch - done)
        chunk = self._train_fn(iterator, tf.constant(n)).numpy()
        chunk = {k: float(v) for k, v in zip(self._logged_terms, chunk)}
        if not math.isfinite(chunk["loss"]):
          latest = self.manager.latest_checkpoint
          kept = (f"the last good checkpoint is {latest}" if latest else
                  "no checkpoint was saved before it, so nothing is kept")
          raise TrainingError(
              f"The training loss became {chunk['loss']} at epoch {epoch + 1}, step "
              f"{int(self.optimizer.iterations.numpy())}. Training stopped; {kept}. Lower "
              "train.learning_rate or check the data for NaN/inf values.")
        for k, v in chunk.items():
          totals[k] = totals.get(k, 0.0) + v
        done += n
        self._stop_if_interrupted()
        if progbar is not None:
          seen = done * self.global_batch
          progbar.update(done, [(k, totals[k] / seen) for k in LOGGED_TERMS if k in totals])
      examples = self.steps_per_epoch * self.global_batch
      record = {f"train/{k}": v / examples for k, v in totals.items()}
      record["epoch"] = epoch + 1
      record["learning_rate"] = self._learning_rate()
      scheduled = self.model.scheduled_values(self.optimizer.iterations)  # e.g. kl_weight
      self._scheduled_names = tuple(scheduled)
      record.update({name: float(value) for name, value in scheduled.items()})
      record["seconds"] = time.time() - started
      record["examples_per_second"] = examples / record["seconds"]
      stop = False
      if self.evaluate_fn is not None and ((epoch + 1) % self.config.eval_every_epochs == 0
                                           or epoch + 1 == self.config.epochs):
        evaluation = self.evaluate_fn()
        record.update({f"validation/{k}": v for k, v in evaluation.items()})
        stop = self._early_stopping(evaluation)
      self.epoch.assign(epoch + 1)
      record["elapsed"] = elapsed_before + time.time() - started_run
      history.append(record)
      if self._checkpoint_due(epoch + 1) or stop or epoch + 1 == self.config.epochs:
        self.save_checkpoint(epoch + 1)
        self._last_checkpoint = time.monotonic()
        self._saved_epoch = self._snapshot_epoch = epoch + 1
      elif self.manager.asynchronous:
        # A copy of this epoch's state (about a millisecond) for a signal to save later.
        self.manager.snapshot()
        self._snapshot_epoch = epoch + 1
      self._write_scalars(record)
      if self.chief and self.epoch_end_fn is not None:
        self.epoch_end_fn(epoch + 1, self.train_writer, self.eval_writer)
      if self.chief:
        summary = ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                            if k.startswith(("train/loss", "validation/elbo",
                                             "validation/objective")))
        print(f"epoch {epoch + 1}/{self.config.epochs}: {summary} "
              f"({record['seconds']:.1f}s, {record['examples_per_second']:.0f} ex/s)",
              flush=True)
      if stop:
        logger.info("Early stopping after epoch %d", epoch + 1)
        break
    if self.config.early_stopping_patience and os.path.exists(self.best_prefix + ".index"):
      self.best_checkpoint.read(self.best_prefix).expect_partial()
    self.train_writer.flush()
    self.eval_writer.flush()
    return history

  def _checkpoint_due(self, epochs_done):
    """Whether `epochs_done` is a checkpoint epoch and `checkpoint_min_seconds` have passed.

    On epochs of a fraction of a second (MNIST at batch 1024: 8 steps) a checkpoint after each
    one writes the weights and Adam's moments several times a second, on a thread whose CPU
    comes out of the training steps. Multi-worker runs decide on the interval alone.
    """
    if epochs_done % self.config.checkpoint_every_epochs:
      return False
    if self._multi_worker:
      return True
    return time.monotonic() - self._last_checkpoint >= self.config.checkpoint_min_seconds

  def _early_stopping(self, evaluation):
    """Keeps the best weights by the model's validation objective (its own training loss,
    negated: `LatentVariableModel.validation_objective`); True when patience has run out."""
    if not self.config.early_stopping_patience:
      return False
    # An evaluate_fn without the objective (a caller of Trainer's own): the validation ELBO,
    # or an autoencoder's negative reconstruction loss.
    score = evaluation.get("objective",
                           evaluation.get("elbo", -evaluation.get("reconstruction", np.nan)))
    if score > float(self.best_eval_elbo.numpy()):
      self.best_eval_elbo.assign(score)
      self.evals_since_best.assign(0)
      if self.chief:
        self.best_checkpoint.write(self.best_prefix)
      return False
    self.evals_since_best.assign_add(1)
    return int(self.evals_since_best.numpy()) >= self.config.early_stopping_patience

  def _write_scalars(self, record):
    """One epoch's scalars: train terms, learning rate, the model's scheduled values (the KL
    weight), speed; eval metrics with
    the KL of each latent dimension as `kl_per_dim/z<i>`."""
    train = {key[len("train/"):]: value for key, value in record.items()
             if key.startswith("train/")}
    train.update({key: record[key] for key in ("learning_rate", *self._scheduled_names,
                                               "examples_per_second") if key in record})
    evaluation = {}
    for key, value in record.items():
      if key.startswith("validation/"):
        name = key[len("validation/"):]
        if isinstance(value, (list, tuple)):
          evaluation.update({f"{name}/z{i}": v for i, v in enumerate(value)})
        else:
          evaluation[name] = value
    as_tensors = lambda d: {k: tf.constant(v, tf.float32) for k, v in d.items()}  # noqa: E731
    self._summary_fn(tf.constant(record["epoch"], tf.int64), as_tensors(train),
                     as_tensors(evaluation))

  @tf.function
  @_backend.once_per_model
  def _summary_fn(self, step, train, evaluation):
    # Traced once per set of names: eagerly, each scalar is a separately dispatched op,
    # and the ~40 of an epoch took 15 ms, 4% of an MNIST epoch on 2 CPU cores.
    for writer, values in ((self.train_writer, train), (self.eval_writer, evaluation)):
      with writer.as_default(step=step):
        for name, value in values.items():
          tf.summary.scalar(name, value)


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
