"""The importance-weighted (IWAE) estimate of log p(x): one estimator for the model, the
evaluate step and the `log_likelihood` serving signature.

It lives with the models because they compute their `iwae_log_likelihood` with it (models sit
below metrics: `tests/test_layers.py`); the metrics reach it as `kerasvae.metrics.iwae`.

log p̂(x) = log (1/K) Σ_k w_k, w_k = p(x, z_k) / q(z_k|x), z_k = μ(x) + σ(x) ε_k [1],

a lower bound on log p(x) in expectation that tightens as K grows (K = 1 is the ELBO's
one-sample estimate). The draws ε [K, D] come from one stateless seed and are shared by
every image (common random numbers), so an image's value depends only on the image, K and
the seed: never on its position in the batch, the other images, the batch size or the
chunks the K samples are processed in. The same images, seed and K give the same number from
`VAE.iwae_log_likelihood`, `likelihood.iwae_metrics` (the evaluate step) and the exported
signature (`tests/metrics/test_iwae.py`).

The samples are processed in chunks that accumulate logsumexp(log w) and logsumexp(2 log w),
so memory does not grow with K: in a `tf.while_loop` inside a traced function (`estimate`,
what the serving signature runs), or chunk by chunk from Python with a progress bar
(`log_likelihood`, what the model and the evaluate step run). Both run `_accumulate`.

References:
  [1]: Burda, Grosse & Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from kerasvae import _backend
from kerasvae.models import distributions

# The seed when none is given to `estimate` (the serving signature's: the same request always
# gets the same answer). An integer seed n means the stateless seed (n, 0), so seed 0 is this.
DEFAULT_SEED = (0, 0)
MAX_NUM_SAMPLES = 100_000
# Decoded pixels per chunk of importance samples (~16 MB of float32 decoder output): a chunk
# holds max(1, CHUNK_PIXELS // (B * H * W * C)) samples of every image.
CHUNK_PIXELS = 2 ** 22
OUTPUTS = ("log_likelihood", "standard_error", "elbo", "reconstruction", "kl")


def seed_pair(seed):
  """A stateless seed [2] int32: an integer n is (n, 0), a pair or a [2] tensor is kept
  (`distributions.stateless_seed`); None draws a fresh random pair."""
  if seed is None:
    return tf.constant(np.random.default_rng().integers(0, 2 ** 31 - 1, size=2), tf.int32)
  return tf.cast(distributions.stateless_seed(seed), tf.int32)


def draws(num_samples, latent_dim, seed):
  """The standard-normal draws ε [K, 1, D] of a seed, shared by every image."""
  return tf.random.stateless_normal([num_samples, 1, latent_dim], seed=seed_pair(seed))


def chunk_size_for(model, batch, num_samples, chunk_pixels=CHUNK_PIXELS):
  """Samples per chunk: max(1, chunk_pixels // (B·H·W·C)), at most K."""
  pixels = int(np.prod(model.image_shape))
  return tf.minimum(tf.maximum(1, chunk_pixels // (tf.maximum(batch, 1) * pixels)), num_samples)


def _accumulate(model, images, mean, log_var, eps, lse_w, lse_w2):
  """Adds the log weights of the draws `eps` [c, 1, D] to the running logsumexps [B] of w
  and w²."""
  log_w = model.importance_log_weights(images, mean, log_var, eps)  # [c, B]
  lse_w = tf.reduce_logsumexp(tf.stack([lse_w, tf.reduce_logsumexp(log_w, 0)]), 0)  # [B]
  lse_w2 = tf.reduce_logsumexp(tf.stack([lse_w2, tf.reduce_logsumexp(2.0 * log_w, 0)]), 0)
  return lse_w, lse_w2


def _first_draw_terms(model, images, mean, log_var, eps):
  """The one-sample ELBO terms at the first draw ε_1: reconstruction = −log p(x|z_1), kl = the
  model's KL term (analytic for N(0, I), log q(z_1|x) − log p(z_1) otherwise)."""
  z_1 = mean + tf.exp(0.5 * log_var) * eps[0]  # [B, D]
  reconstruction = model.likelihood.negative_log_likelihood(images, model.decode(z_1))  # [B]
  kl = model.prior.kl(mean, log_var, z_1, encoder=model.posterior_params)  # [B]
  return reconstruction, kl


def _finish(num_samples, lse_w, lse_w2, reconstruction, kl):
  """The outputs from the accumulated logsumexps.

  The standard error is the delta-method estimate of the Monte Carlo error of log p̂:
  SE² = Var(w) / (K · mean(w)²) = (K Σw² / (Σw)² − 1) / (K − 1). It measures the spread over
  seeds, not the bound's bias (≈ Var(w) / (2K mean(w)²) below log p(x)); NaN for K = 1.
  """
  k = tf.cast(num_samples, tf.float32)
  k_over_ess = tf.exp(lse_w2 - 2.0 * lse_w + tf.math.log(k))  # K Σw² / (Σw)², in [1, K]
  standard_error = tf.sqrt(tf.maximum(k_over_ess - 1.0, 0.0) / (k - 1.0))
  return {"log_likelihood": lse_w - tf.math.log(k), "standard_error": standard_error,
          "elbo": -(reconstruction + kl), "reconstruction": reconstruction, "kl": kl}


def estimate(model, images, num_samples, seed=DEFAULT_SEED, chunk_pixels=CHUNK_PIXELS,
             chunk_size=None):
  """The IWAE estimate with its standard error and the one-sample ELBO terms, as graph ops.

  Traceable with a tensor `num_samples` (the serving signature's input), checked to lie in
  [1, MAX_NUM_SAMPLES].

  Args:
    model: a model with a posterior (`has_posterior`).
    images: [B, H, W, C] float32.
    num_samples: K, an int or a scalar int32 tensor.
    seed: the stateless seed (see `seed_pair`).
    chunk_pixels: decoded pixels per chunk, unless `chunk_size` gives the samples per chunk.

  Returns:
    A dict of [B] tensors named as `OUTPUTS`.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  num_samples = tf.convert_to_tensor(num_samples, tf.int32)
  checks = [
      tf.debugging.assert_greater_equal(
          num_samples, 1, message="Expected num_samples >= 1. Received: num_samples"),
      tf.debugging.assert_less_equal(
          num_samples, MAX_NUM_SAMPLES,
          message=f"Expected num_samples <= {MAX_NUM_SAMPLES}. Received: num_samples")]
  with tf.control_dependencies(checks):
    num_samples = tf.identity(num_samples)
  eps = draws(num_samples, model.latent_dim, seed)  # [K, 1, D]
  mean, log_var = model.posterior_params(images)  # [B, D] x2
  reconstruction, kl = _first_draw_terms(model, images, mean, log_var, eps)
  batch = tf.shape(images)[0]
  chunk = (tf.constant(chunk_size) if chunk_size is not None
           else chunk_size_for(model, batch, num_samples, chunk_pixels))

  def body(start, lse_w, lse_w2):
    lse_w, lse_w2 = _accumulate(model, images, mean, log_var, eps[start:start + chunk],
                                lse_w, lse_w2)
    return start + chunk, lse_w, lse_w2

  empty = tf.fill([batch], tf.constant(-np.inf, tf.float32))  # log 0
  _, lse_w, lse_w2 = tf.while_loop(lambda start, *_: start < num_samples, body,
                                   (tf.constant(0), empty, empty), parallel_iterations=1)
  return _finish(num_samples, lse_w, lse_w2, reconstruction, kl)


_CHUNK_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> its compiled `_accumulate`


def _chunk_function(model):
  fn = _CHUNK_FUNCTIONS.get(model)
  if fn is None:
    ref = weakref.ref(model)

    @_backend.once_per_model
    def chunk(images, mean, log_var, eps, lse_w, lse_w2):
      return _accumulate(ref(), images, mean, log_var, eps, lse_w, lse_w2)
    fn = _CHUNK_FUNCTIONS[model] = tf.function(chunk, reduce_retracing=True)
  return fn


def log_likelihood(model, images, num_samples=5000, seed=None, chunk_size=None, verbose=0):
  """`estimate` run eagerly chunk by chunk (each chunk compiled), with an optional progress bar.

  Args:
    model: a model with a posterior.
    images: [B, H, W, C].
    num_samples: K.
    seed: see `seed_pair`; None draws fresh noise.
    chunk_size: samples per chunk; by default `chunk_size_for` (CHUNK_PIXELS).
    verbose: 0 silent; 1 a Keras progress bar over the K samples.

  Returns:
    A dict of [B] tensors named as `OUTPUTS`, equal to `estimate`'s for the same seed (up to
    float rounding).
  """
  if not isinstance(num_samples, (int, np.integer)) or not 1 <= num_samples <= MAX_NUM_SAMPLES:
    raise ValueError(f"Expected num_samples to be an integer in [1, {MAX_NUM_SAMPLES}]. "
                     f"Received: num_samples={num_samples!r}")
  images = tf.convert_to_tensor(images, tf.float32)
  batch = int(images.shape[0])
  chunk = int(chunk_size or chunk_size_for(model, batch, num_samples))
  eps = draws(num_samples, model.latent_dim, seed)  # [K, 1, D]
  mean, log_var = model.posterior_params(images)
  reconstruction, kl = _first_draw_terms(model, images, mean, log_var, eps)
  lse_w = lse_w2 = tf.fill([batch], tf.constant(-np.inf, tf.float32))
  bar = keras.utils.Progbar(num_samples, unit_name="sample") if verbose else None
  fn = _chunk_function(model)
  for start in range(0, num_samples, chunk):
    lse_w, lse_w2 = fn(images, mean, log_var, eps[start:start + chunk], lse_w, lse_w2)
    if bar is not None:
      bar.update(min(start + chunk, num_samples))
  return _finish(num_samples, lse_w, lse_w2, reconstruction, kl)


def mean_bound(values):
  """The mean of per-example estimates [N] and its standard error over examples."""
  values = np.asarray(values, np.float64)
  stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
  return float(values.mean()), stderr
