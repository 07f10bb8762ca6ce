"""The compiled training step: a replica's gradients and update, run `steps_per_execution` times.

The loss of a replica step is the sum over its examples divided by the GLOBAL batch size
(gradients are summed across replicas, so this gives the global mean). The gradient
computation is XLA-compiled; under a mirrored strategy the update runs outside XLA so that the
cross-replica all-reduce can happen, under the default and one-device strategies it is
compiled into the same step.
"""

import keras
import tensorflow as tf

from kerasvae import _backend
from kerasvae.training.devices import without_merge_call

# The per-example terms of `loss_terms` shown first; every other per-example term a model kind
# returns (a [B] tensor: a total correlation, an adversary's loss) is logged after them.
LOGGED_TERMS = ("loss", "reconstruction", "kl", "weighted_kl", "elbo")


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



def make_train_fn(model, strategy, objectives, global_batch, seed, jit_compile=True,
                  preprocess_fn=None):
  """The compiled function `(iterator, num_steps) -> [T] sums` that trains `num_steps` steps.

  Args:
    model: the kerasvae model (its `loss_terms`).
    strategy: the tf.distribute strategy the model was built under.
    objectives: `(loss key, variables, optimizer)` of every objective, the main loss first
      (it trains the variables no other objective claims).
    global_batch: examples in a step over every replica.
    seed: `train.seed`.
    jit_compile: XLA-compile the per-replica gradient computation.
    preprocess_fn: `batch -> batch with "image"` run inside the compiled computation, or None.

  Returns:
    `(train_fn, logged)`: `train_fn` returns the sums over the steps' examples of the
    per-example terms named by `logged` (filled in when `train_fn` is first traced:
    `LOGGED_TERMS` first, then the model kind's other per-example terms).
  """
  optimizer = objectives[0][2]
  global_batch = float(global_batch)

  # Without replicas there is no all-reduce, so the Adam update joins the compiled step:
  # outside XLA it is ~40 small kernels per step, and the MLP VAE's step on 2 CPU cores ran
  # at 0.7x the speed of a fully compiled one (benchmarks/train_throughput.py).
  fused_update = jit_compile and without_merge_call(strategy)
  logged = []  # names of the entries of `sums`, set when traced

  # Every random draw of a step (the posterior sample, code noise, a permutation) comes from
  # a stateless seed of (train.seed, step, replica): the stateful generators keep their state
  # in the process (XLA's too), so a second training in one process (a study's next trial)
  # drew other noise than the same training alone.
  base_seed = tf.constant([seed, 0x5EED], tf.int32)

  @tf.function(jit_compile=jit_compile)
  @_backend.once_per_model
  def gradients(batch, step):
    # Made here, the float image fuses into the first layer, and the reader's threads, which
    # share the cores with this step, do less.
    x = (preprocess_fn(batch) if preprocess_fn else batch)["image"]
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

  return train_fn, logged
