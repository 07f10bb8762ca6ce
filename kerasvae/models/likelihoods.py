"""Decoder likelihoods p(x|z): Bernoulli, Gaussian (fixed or learned scale), continuous Bernoulli.

A likelihood turns the decoder's unconstrained output [B, H, W, C] into a
`tfd.Distribution` over images (event shape [H, W, C]) and computes the
reconstruction term, the negative log-likelihood -log p(x|z) in nats summed
over pixels, per example. Maximising it is maximum likelihood, which for the
Bernoulli is the binary cross-entropy and for the Gaussian a scaled squared
error plus the log-normaliser.

References:
  [1]: Loaiza-Ganem & Cunningham. The continuous Bernoulli: fixing a pervasive
       error in variational autoencoders. NeurIPS 2019.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from kerasvae.models.distributions import LOG_2PI

tfd = tfp.distributions

_PIXEL_AXES = (-3, -2, -1)


class Likelihood(keras.layers.Layer):
  """Base class: `distribution(params)`, `mean(params)` and `negative_log_likelihood(x, params)`."""

  # The values a pixel may take, (low, high), checked where images enter a model
  # (`autoencoders.as_images`); None: any real number.
  data_range = (0.0, 1.0)

  def distribution(self, params):
    raise NotImplementedError

  def mean(self, params):
    """The mean image E[x|z], in [0, 1] for image data."""
    return self.distribution(params).mean()

  def negative_log_likelihood(self, x, params):
    """-log p(x|z) summed over pixels: [B, H, W, C] x2 → [B] nats."""
    return -self.distribution(params).log_prob(x)

  def call(self, params):
    return self.mean(params)


@keras.saving.register_keras_serializable(package="kerasvae")
class BernoulliLikelihood(Likelihood):
  """Independent Bernoulli pixels with logits from the decoder.

  -log p(x|z) = sum_pixels BCE(x, sigmoid(logits)), computed with the fused,
  numerically stable `tf.nn.sigmoid_cross_entropy_with_logits` (equal to the
  `tfd.Bernoulli` log-probability, tested). For grey-level x in [0, 1] this is
  the cross-entropy of the usual MNIST VAEs, not a normalised density.
  """

  def distribution(self, params):
    return tfd.Independent(tfd.Bernoulli(logits=params, dtype=params.dtype),
                           reinterpreted_batch_ndims=3)

  def mean(self, params):
    return tf.sigmoid(params)

  def negative_log_likelihood(self, x, params):
    return tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=params), axis=_PIXEL_AXES)


@keras.saving.register_keras_serializable(package="kerasvae")
class GaussianLikelihood(Likelihood):
  """Independent Gaussian pixels: x ~ N(mu, scale^2), mu = sigmoid(params) by default.

  Args:
    scale: the standard deviation. Fixed unless `learn_scale`, in which case it
      is the starting value of a trainable scalar (kept positive through its log).
    learn_scale: train the scale with the model.
    mean_activation: `"sigmoid"` (means in [0, 1], for images) or
      `"identity"` (unbounded data, e.g. standardised pixels).

  -log p(x|z) = sum_pixels (x - mu)^2 / (2 scale^2) + log scale + log(2 pi) / 2.
  """

  MEAN_ACTIVATIONS = {"sigmoid": tf.sigmoid, "identity": tf.identity}

  data_range = None  # real-valued pixels: any float

  def __init__(self, scale=0.1, learn_scale=False, mean_activation="sigmoid", **kwargs):
    super().__init__(**kwargs)
    if mean_activation not in self.MEAN_ACTIVATIONS:
      raise ValueError(f"Expected mean_activation to be one of {sorted(self.MEAN_ACTIVATIONS)}. "
                       f"Received: mean_activation={mean_activation!r}")
    self.mean_activation = mean_activation
    if not isinstance(scale, (int, float)) or scale <= 0:
      raise ValueError(f"Expected scale to be a positive number. Received: scale={scale}")
    self.scale = float(scale)
    self.learn_scale = bool(learn_scale)
    self.log_scale = self.add_weight(
        shape=(), initializer=keras.initializers.Constant(math.log(self.scale)),
        trainable=self.learn_scale, name="log_scale")

  def distribution(self, params):
    scale = tf.exp(self.log_scale) * tf.ones_like(params)
    return tfd.Independent(tfd.Normal(self.mean(params), scale), reinterpreted_batch_ndims=3)

  def mean(self, params):
    return self.MEAN_ACTIVATIONS[self.mean_activation](params)

  def negative_log_likelihood(self, x, params):
    log_scale = tf.cast(self.log_scale, params.dtype)
    squared = tf.square(x - self.mean(params)) * tf.exp(-2.0 * log_scale)
    return tf.reduce_sum(0.5 * squared + log_scale + 0.5 * LOG_2PI, axis=_PIXEL_AXES)

  def get_config(self):
    config = super().get_config()
    config.update(scale=self.scale, learn_scale=self.learn_scale,
                  mean_activation=self.mean_activation)
    return config


@keras.saving.register_keras_serializable(package="kerasvae")
class ContinuousBernoulliLikelihood(Likelihood):
  """The continuous Bernoulli [1]: a proper density on [0, 1] for grey-level pixels.

  log p(x|lambda) = x log lambda + (1 - x) log(1 - lambda) + log C(lambda), the
  Bernoulli cross-entropy corrected by the log-normaliser C(lambda). Its mean is
  not lambda; `mean` returns the true mean.
  """

  def distribution(self, params):
    return tfd.Independent(tfd.ContinuousBernoulli(logits=params), reinterpreted_batch_ndims=3)

  def mean(self, params):
    return tfd.ContinuousBernoulli(logits=params).mean()


LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "gaussian": GaussianLikelihood,
    "continuous_bernoulli": ContinuousBernoulliLikelihood,
}


def make_likelihood(spec):
  """Builds a likelihood from a registry name, a `{"name": ..., **kwargs}` dict or an instance."""
  if isinstance(spec, Likelihood):
    return spec
  if isinstance(spec, dict) and "class_name" in spec:
    return keras.saving.deserialize_keras_object(spec)
  kwargs = {}
  if isinstance(spec, dict):
    kwargs = dict(spec)
    spec = kwargs.pop("name", None)
  if spec not in LIKELIHOODS:
    raise ValueError(f"Expected likelihood to be one of {sorted(LIKELIHOODS)}. "
                     f"Received: likelihood={spec!r}")
  return LIKELIHOODS[spec](**kwargs)
