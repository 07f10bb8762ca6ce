"""Small distribution helpers shared by posteriors, priors and losses."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

LOG_2PI = math.log(2.0 * math.pi)


def stateless_seed(seed):
  """A seed for `tf.random.stateless_*`: an integer n becomes [n, 0]; a [2] tensor or None is kept.

  Every `seed=` argument of the models takes either, so `sample(16, seed=7)` and
  `elbo(x, seed=7)` are reproducible the same way.
  """
  if seed is None or tf.is_tensor(seed):
    return seed
  if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
    return tf.constant([int(seed), 0], dtype=tf.int32)
  seed = np.asarray(seed)
  if seed.shape == (2,) and np.issubdtype(seed.dtype, np.integer):
    return tf.constant(seed, dtype=tf.int32)
  raise ValueError("Expected seed to be an integer, a pair of integers or a [2] integer tensor. "
                   f"Received: seed={seed!r}")


def diagonal_gaussian(mean, log_var):
  """The posterior q(z|x) = N(mean, diag(exp(log_var))) as a `tfd` distribution.

  Args:
    mean: [..., D] means.
    log_var: [..., D] log-variances.

  Returns:
    A `tfd.MultivariateNormalDiag` with batch shape [...] and event shape [D].
  """
  return tfd.MultivariateNormalDiag(loc=mean, scale_diag=tf.exp(0.5 * log_var))


def diagonal_gaussian_log_prob(z, mean, log_var):
  """log N(z; mean, diag(exp(log_var))) summed over the last axis, fused for speed.

  Equals `diagonal_gaussian(mean, log_var).log_prob(z)` (tested); written out
  because it sits on the training hot path and inside the IWAE loop.
  """
  return -0.5 * tf.reduce_sum(
      LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var), axis=-1)


def kl_diagonal_gaussian_to_standard(mean, log_var):
  """Closed-form KL(N(mean, diag(exp(log_var))) || N(0, I)), per example.

  KL = 1/2 * sum_d (exp(log_var_d) + mean_d^2 - 1 - log_var_d)
  (Kingma & Welling, 2014, Appendix B).

  Args:
    mean: [B, D].
    log_var: [B, D].

  Returns:
    [B] KL in nats.
  """
  return 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var, axis=-1)


def kl_per_dimension(mean, log_var):
  """The closed-form KL to N(0, I) of each latent dimension: [B, D]."""
  return 0.5 * (tf.exp(log_var) + tf.square(mean) - 1.0 - log_var)


def reparameterized_sample(mean, log_var, seed=None):
  """z = mean + exp(log_var / 2) * eps with eps ~ N(0, I) from `tf.random`.

  `tf.random` (not a Keras SeedGenerator) so that each replica of a
  MirroredStrategy draws its own noise. With a stateless `seed` (shape [2])
  the draw is reproducible.
  """
  shape = tf.shape(mean)
  if seed is None:
    eps = tf.random.normal(shape, dtype=mean.dtype)
  else:
    eps = tf.random.stateless_normal(shape, seed=seed, dtype=mean.dtype)
  return mean + tf.exp(0.5 * log_var) * eps
