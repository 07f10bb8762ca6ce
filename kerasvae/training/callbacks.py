"""What the training loop does besides stepping, as small objects it calls: Keras' callbacks.

The loop (`kerasvae.training.loop.Trainer`) calls every callback's hooks in its list's order:

  on_train_begin(trainer, start_epoch)   before the first epoch of this run (0: from scratch)
  on_evaluation(trainer, evaluation)     after an epoch's evaluation; True stops the training
                                         (the epoch is still recorded and checkpointed)
  on_epoch_end(trainer, epoch, record)   after the epoch's record is in the history and its
                                         checkpoint saved
  on_train_end(trainer)                  after the last epoch

`EarlyStopping` keeps the best weights and stops when patience runs out, `TensorBoardScalars`
writes each epoch's record to the two TensorBoard runs (through `kerasvae.summaries`), and
`EpochEndFunction` calls a step's own per-epoch function (the pictures).
"""

import os

import numpy as np
import tensorflow as tf

from kerasvae import summaries


class Callback:
  """A callback of the training loop; every hook does nothing unless overridden."""

  def on_train_begin(self, trainer, start_epoch):
    """Called before the first epoch this run trains (`start_epoch`: the epochs restored)."""

  def on_evaluation(self, trainer, evaluation):
    """Called with an epoch's evaluation (`{metric: value}`); returns True to stop training."""
    del trainer, evaluation
    return False

  def on_epoch_end(self, trainer, epoch, record):
    """Called after epoch `epoch` (counted from 1) with its history record."""

  def on_train_end(self, trainer):
    """Called once the training loop has ended (not after an error or an interruption)."""


class EarlyStopping(Callback):
  """Keeps the best weights by the model's validation objective; stops when patience runs out.

  The score is the evaluation's `objective` (the model's own training loss, negated:
  `LatentVariableModel.validation_objective`); an evaluation without it (a caller of
  Trainer's own) is scored by its ELBO, or an autoencoder's negative reconstruction loss.
  The best weights are written to `best_prefix` whenever the score improves and read back
  when training ends.

  Args:
    model: the model whose weights are kept.
    patience: evaluations without improvement before stopping; 0 never stops (and keeps
      nothing).
    best_prefix: the checkpoint prefix of the best weights.
    chief: whether this process writes the best weights.
    strategy: the tf.distribute strategy (its scope holds the counters).

  Attributes:
    best: the best score so far (a float64 variable, part of the resumption checkpoint).
    evals_since_best: evaluations since the best (an int64 variable, checkpointed too).
  """

  def __init__(self, model, patience, best_prefix, chief=True, strategy=None):
    self.patience = int(patience)
    self.best_prefix = best_prefix
    self.chief = chief
    with (strategy or tf.distribute.get_strategy()).scope():
      self.best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
      self.evals_since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
    self.checkpoint = tf.train.Checkpoint(model=model)

  def state(self):
    """{name: variable} for the resumption checkpoint; the best score keeps the name it had
    when it was the ELBO, so older checkpoints resume."""
    return {"best_eval_elbo": self.best, "evals_since_best": self.evals_since_best}

  def on_evaluation(self, trainer, evaluation):
    if not self.patience:
      return False
    score = evaluation.get("objective",
                           evaluation.get("elbo", -evaluation.get("reconstruction", np.nan)))
    if score > float(self.best.numpy()):
      self.best.assign(score)
      self.evals_since_best.assign(0)
      if self.chief:
        self.checkpoint.write(self.best_prefix)
      return False
    self.evals_since_best.assign_add(1)
    return int(self.evals_since_best.numpy()) >= self.patience

  def on_train_end(self, trainer):
    if self.patience and os.path.exists(self.best_prefix + ".index"):
      self.checkpoint.read(self.best_prefix).expect_partial()


class TensorBoardScalars(Callback):
  """Writes each epoch's record to the training's TensorBoard runs (`kerasvae.summaries`).

  The train run gets the train terms, the learning rate, the model's scheduled values (the
  KL weight: `trainer.scheduled_names`) and the speed; the validation run the evaluation,
  with the KL of each latent dimension as `kl_per_dim/z<i>`.

  Args:
    logs_dir: the train step's `logs/`.
    chief: whether this process writes (other workers get writers that write nothing).

  Attributes:
    train_writer, eval_writer: the runs' summary writers (for `EpochEndFunction`).
  """

  def __init__(self, logs_dir, chief=True):
    self.train_writer, self.eval_writer = summaries.training_writers(logs_dir, chief)
    self._write = summaries.epoch_scalars_fn(self.train_writer, self.eval_writer)

  def on_epoch_end(self, trainer, epoch, record):
    self._write(record, ("learning_rate", *trainer.scheduled_names, "examples_per_second"))

  def on_train_end(self, trainer):
    self.train_writer.flush()
    self.eval_writer.flush()


class EpochEndFunction(Callback):
  """Calls `fn(epoch, train_writer, eval_writer)` after every epoch on the chief, and with epoch
  0 before a training that starts from scratch (the initial model; this also compiles its
  functions outside the epochs).

  Args:
    fn: the function (the train step's pictures).
    writers: the `TensorBoardScalars` whose writers `fn` gets.
    chief: whether this process calls `fn`.
  """

  def __init__(self, fn, writers, chief=True):
    self.fn = fn
    self.writers = writers
    self.chief = chief

  def on_train_begin(self, trainer, start_epoch):
    if start_epoch == 0 and self.chief:
      self.fn(0, self.writers.train_writer, self.writers.eval_writer)

  def on_epoch_end(self, trainer, epoch, record):
    if self.chief:
      self.fn(epoch, self.writers.train_writer, self.writers.eval_writer)
