"""The distributed training loop: epochs of compiled steps, evaluation, checkpoints and signals.

Keras' `model.fit` fails under the multi-worker strategy (keras-team/keras
issue 20585), so training is a custom loop (`Trainer`): it runs the compiled step
(`kerasvae.training.step`) `steps_per_execution` steps at a time, evaluates, saves the
resumption checkpoint (`kerasvae.training.checkpoints`) and calls its callbacks
(`kerasvae.training.callbacks`: early stopping, TensorBoard scalars, the step's pictures).
"""

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time

import keras
import tensorflow as tf

from kerasvae import progress
from kerasvae.training import callbacks as callbacks_lib
from kerasvae.training.checkpoints import BEST_DIR
from kerasvae.training.checkpoints import Resumption
from kerasvae.training.devices import is_chief
from kerasvae.training.errors import TrainingError
from kerasvae.training.errors import TrainingInterrupted
from kerasvae.training.step import LOGGED_TERMS
from kerasvae.training.step import make_train_fn

logger = logging.getLogger("kerasvae.training")


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
    self.scheduled_names = ()  # the model's `scheduled_values`, logged every epoch
    self.global_batch = config.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.early_stopping = callbacks_lib.EarlyStopping(
        model, config.early_stopping_patience, os.path.join(work_dir, BEST_DIR, "model"),
        chief=self.chief, strategy=strategy)
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
    state.update(epoch=self.epoch, **self.early_stopping.state())
    self._state = state
    self.resumption = Resumption(state, work_dir, strategy, config.keep_checkpoints, self.chief)
    self.checkpoint = self.resumption.checkpoint  # restores what `manager` wrote
    self.manager = self.resumption.manager
    self._multi_worker = self.resumption.multi_worker
    self.dataset = strategy.distribute_datasets_from_function(dataset_fn)
    # (loss key, variables, optimizer) of every objective; the main loss trains the variables
    # no other objective claims.
    self._train_fn, self._logged_terms = make_train_fn(
        model, strategy, [("loss", model.main_trainable_variables, optimizer)] + self.objectives,
        self.global_batch, config.seed, jit_compile=self.jit_compile,
        preprocess_fn=preprocess_fn)
    # Keras' names for the two runs (kerasvae.summaries describes the layout).
    self.tensorboard = callbacks_lib.TensorBoardScalars(os.path.join(work_dir, "logs"),
                                                        chief=self.chief)
    self.train_writer = self.tensorboard.train_writer
    self.eval_writer = self.tensorboard.eval_writer
    self.callbacks = [self.early_stopping, self.tensorboard]
    if epoch_end_fn is not None:
      self.callbacks.append(callbacks_lib.EpochEndFunction(epoch_end_fn, self.tensorboard,
                                                           chief=self.chief))

  @property
  def history(self):
    """The records of the epochs done (a list of dicts), restored ones first."""
    return self.resumption.history

  @property
  def history_path(self):
    return self.resumption.history_path

  def restore(self):
    """Restores the newest intact checkpoint, if any (`Resumption.restore`). Returns the epoch
    to start from."""
    return self.resumption.restore()

  def save_checkpoint(self, epochs_done, snapshot=False):
    """Saves the history so far, then the checkpoint of `epochs_done` epochs (`Resumption.save`)."""
    self.resumption.save(epochs_done, snapshot=snapshot)

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
    for callback in self.callbacks:
      callback.on_train_begin(self, start_epoch)
    history = self.history
    self._last_checkpoint = time.monotonic()
    iterator = iter(self.dataset)
    for epoch in range(start_epoch, self.config.epochs):
      self._stop_if_interrupted()
      record = self._train_epoch(epoch, iterator)
      stop = False
      if self.evaluate_fn is not None and ((epoch + 1) % self.config.eval_every_epochs == 0
                                           or epoch + 1 == self.config.epochs):
        evaluation = self.evaluate_fn()
        record.update({f"validation/{k}": v for k, v in evaluation.items()})
        stop = any([callback.on_evaluation(self, evaluation) for callback in self.callbacks])
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
      for callback in self.callbacks:
        callback.on_epoch_end(self, epoch + 1, record)
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
    for callback in self.callbacks:
      callback.on_train_end(self)
    return history

  def _train_epoch(self, epoch, iterator):
    """Trains epoch `epoch` (counted from 0); returns its record without the evaluation."""
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
    self.scheduled_names = tuple(scheduled)
    record.update({name: float(value) for name, value in scheduled.items()})
    record["seconds"] = time.time() - started
    record["examples_per_second"] = examples / record["seconds"]
    return record

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
