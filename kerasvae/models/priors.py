"""Priors p(z): a standard Gaussian, a trainable Gaussian mixture and the VampPrior.

A prior is a Keras layer that owns its variables and returns a
`tfd.Distribution` over z (event shape [latent_dim]) from `distribution()`.
It says whether its KL to a diagonal-Gaussian posterior is analytic; when it
is not, the KL term is the single-sample Monte Carlo estimate
log q(z|x) - log p(z) on the z drawn for the reconstruction term. The models
only call `prior.kl(...)`, `prior.log_prob(...)` and `prior.sample(...)` and
never branch on the prior's type.

References:
  [1]: Kingma & Welling. Auto-Encoding Variational Bayes. ICLR 2014.
  [2]: Tomczak & Welling. VAE with a VampPrior. AISTATS 2018.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from kerasvae.models import distributions

tfd = tfp.distributions


def _check_latent_dim(latent_dim):
  if not isinstance(latent_dim, (int, np.integer)) or isinstance(latent_dim, bool) or latent_dim < 1:
    raise ValueError(f"Expected latent_dim to be an integer >= 1. Received: latent_dim={latent_dim}")
  return int(latent_dim)


def _check_num_components(num_components):
  if (not isinstance(num_components, (int, np.integer)) or isinstance(num_components, bool)
      or num_components < 1):
    raise ValueError("Expected num_components to be an integer >= 1. "
                     f"Received: num_components={num_components}")
  return int(num_components)


def mixture_log_prob(z, means, log_vars, log_weights):
  """log sum_c w_c N(z; mu_c, diag(exp(log_var_c))) of a diagonal-Gaussian mixture, by matmuls.

  The Mahalanobis term of every (sample, component) pair is expanded so that
  the [N, C, D] difference tensor is never formed:

    sum_d (z_d - mu_cd)^2 / s_cd = z^2 · (1/s_c) - 2 z · (mu_c / s_c) + mu_c^2 · (1/s_c),

  two [N, D] x [D, C] matrix products and a [C] constant, then a logsumexp
  over the C components. For the IWAE bound (N = K·B samples, C = 500
  pseudo-inputs of a VampPrior) this is several times faster than
  broadcasting (`benchmarks/iwae_speed.py --priors`). The three terms are
  large and cancel for a z near a narrow component (z^2/s ~ 1e4 for s = 1e-3),
  which costs float32 up to 1e-3 nats, so the quadratic form is accumulated in
  float64: the result then matches the direct float64 computation to float32
  precision (tested).

  Args:
    z: [..., D] points.
    means: [C, D] component means.
    log_vars: [C, D] component log-variances.
    log_weights: [C] log mixture weights (normalised: they logsumexp to 0).

  Returns:
    [...] log-densities.
  """
  depth = tf.shape(z)[-1]
  flat = tf.cast(tf.reshape(z, [-1, depth]), tf.float64)  # [N, D]
  precisions = tf.exp(-tf.cast(log_vars, tf.float64))  # [C, D]
  means64 = tf.cast(means, tf.float64)
  quadratic = tf.cast(  # [N, C]
      tf.matmul(tf.square(flat), precisions, transpose_b=True)
      - 2.0 * tf.matmul(flat, means64 * precisions, transpose_b=True)
      + tf.reduce_sum(tf.square(means64) * precisions, axis=-1), z.dtype)  # [C]
  log_norm = -0.5 * (tf.cast(depth, z.dtype) * distributions.LOG_2PI
                     + tf.reduce_sum(log_vars, axis=-1))  # [C]
  log_components = log_weights + log_norm - 0.5 * quadratic  # [N, C]
  return tf.reshape(tf.reduce_logsumexp(log_components, axis=-1), tf.shape(z)[:-1])


class Prior(keras.layers.Layer):
  """Base class of priors p(z) over a `latent_dim`-dimensional code.

  Args:
    latent_dim: dimension of z.

  Subclasses implement `distribution(encoder=None)`; `encoder` is the
  model's function `x -> (mean, log_var)`, needed by priors defined through
  the encoder (the VampPrior) and ignored by the others.
  """

  analytic_kl = False

  def __init__(self, latent_dim, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = _check_latent_dim(latent_dim)

  def distribution(self, encoder=None):
    raise NotImplementedError

  def log_prob(self, z, encoder=None):
    """log p(z) for z [..., D] → [...]."""
    return self.distribution(encoder).log_prob(z)

  def kl(self, mean, log_var, z, encoder=None):
    """The KL term of the ELBO for posterior N(mean, exp(log_var)) and its sample z.

    Args:
      mean: [B, D] posterior means.
      log_var: [B, D] posterior log-variances.
      z: [B, D] a reparameterised sample from the posterior.
      encoder: the model's `x -> (mean, log_var)` function.

    Returns:
      [B] the KL (analytic) or its one-sample estimate log q(z|x) - log p(z).
    """
    log_q = distributions.diagonal_gaussian_log_prob(z, mean, log_var)  # [B]
    return log_q - self.log_prob(z, encoder)

  def sample(self, num_samples, seed=None, encoder=None):
    """Draws [num_samples, D] codes; a stateless `seed` of shape [2] makes it reproducible."""
    return self.distribution(encoder).sample(num_samples, seed=seed)

  def call(self, z, encoder=None):
    return self.log_prob(z, encoder)

  def get_config(self):
    config = super().get_config()
    config["latent_dim"] = self.latent_dim
    return config


@keras.saving.register_keras_serializable(package="kerasvae")
class StandardGaussianPrior(Prior):
  """p(z) = N(0, I), the prior of the original VAE [1]. Its KL is analytic.

  Example:
    >>> prior = StandardGaussianPrior(latent_dim=2)
    >>> prior.distribution().sample(3).shape
    TensorShape([3, 2])
  """

  analytic_kl = True

  def distribution(self, encoder=None):
    return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))

  def log_prob(self, z, encoder=None):
    # Written out: the same value as distribution().log_prob(z), without building a distribution.
    return -0.5 * tf.reduce_sum(distributions.LOG_2PI + tf.square(z), axis=-1)

  def kl(self, mean, log_var, z, encoder=None):
    return distributions.kl_diagonal_gaussian_to_standard(mean, log_var)

  def sample(self, num_samples, seed=None, encoder=None):
    shape = [num_samples, self.latent_dim]
    if seed is None:
      return tf.random.normal(shape)
    return tf.random.stateless_normal(shape, seed=seed)


@keras.saving.register_keras_serializable(package="kerasvae")
class GaussianMixturePrior(Prior):
  """A trainable mixture of K diagonal Gaussians: p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)).

  The weights (softmax of logits), means and scales (softplus) are trained
  with the model. Means start from N(0, 1) draws so the components are
  distinct; scales start at 1.

  Args:
    latent_dim: dimension of z.
    num_components: K, the number of components.
    seed: the integer seed of the means' initialisation.
  """

  def __init__(self, latent_dim, num_components=10, seed=None, **kwargs):
    super().__init__(latent_dim, **kwargs)
    self.num_components = _check_num_components(num_components)
    self.seed = seed
    k, d = self.num_components, self.latent_dim
    self.logits = self.add_weight(shape=(k,), initializer="zeros", name="logits")
    self.means = self.add_weight(
        shape=(k, d), initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed),
        name="means")
    # softplus(0.5413) = 1.0: components start as unit Gaussians.
    self.raw_scales = self.add_weight(
        shape=(k, d), initializer=keras.initializers.Constant(math.log(math.e - 1.0)),
        name="raw_scales")

  def distribution(self, encoder=None):
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=self.logits),
        components_distribution=tfd.MultivariateNormalDiag(
            loc=self.means, scale_diag=tf.nn.softplus(self.raw_scales) + 1e-6))

  def log_prob(self, z, encoder=None):
    scales = tf.nn.softplus(self.raw_scales) + 1e-6  # [K, D], as in distribution()
    return mixture_log_prob(z, self.means, 2.0 * tf.math.log(scales),
                            tf.nn.log_softmax(self.logits))

  def get_config(self):
    config = super().get_config()
    config.update(num_components=self.num_components, seed=self.seed)
    return config


@keras.saving.register_keras_serializable(package="kerasvae")
class VampPrior(Prior):
  """The VampPrior [2]: p(z) = 1/K sum_k q(z | u_k) with K trainable pseudo-inputs u_k.

  The pseudo-inputs live in data space ([K, H, W, C]) and are mapped through
  the model's encoder, so the prior adapts to the posterior. As in the
  reference code, pseudo-inputs are clipped to the data range [0, 1] (a
  hard-tanh) before encoding. Use `initialize_from_data` to start them from
  training examples.

  Args:
    latent_dim: dimension of z.
    data_shape: the image shape (H, W, C) of the pseudo-inputs.
    num_components: K, the number of pseudo-inputs.
    init_mean, init_stddev: the pseudo-inputs start as N(init_mean, init_stddev^2)
      draws (the reference code uses 0.05 and 0.01 on MNIST).
    seed: the integer seed of that initialisation.
  """

  def __init__(self, latent_dim, data_shape, num_components=500, init_mean=0.05,
               init_stddev=0.01, seed=None, **kwargs):
    super().__init__(latent_dim, **kwargs)
    from kerasvae.models.networks import check_image_shape
    self.data_shape = check_image_shape(data_shape)
    self.num_components = _check_num_components(num_components)
    self.init_mean = float(init_mean)
    self.init_stddev = float(init_stddev)
    self.seed = seed
    self.pseudo_inputs = self.add_weight(
        shape=(self.num_components,) + self.data_shape,
        initializer=keras.initializers.RandomNormal(self.init_mean, self.init_stddev, seed=seed),
        name="pseudo_inputs")

  def initialize_from_data(self, images, seed=0):
    """Sets the pseudo-inputs to K images drawn without replacement from `images` [N, H, W, C]."""
    images = np.asarray(images, dtype="float32")
    if images.shape[1:] != self.data_shape or len(images) < self.num_components:
      raise ValueError(
          f"Expected at least num_components={self.num_components} images of shape "
          f"{self.data_shape}. Received: images.shape={images.shape}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), size=self.num_components, replace=False)
    self.pseudo_inputs.assign(images[chosen])

  def component_params(self, encoder):
    if encoder is None:
      raise ValueError("The VampPrior is defined through the encoder: call it with "
                       "encoder=<the model's x -> (mean, log_var) function>. Received: encoder=None")
    return encoder(tf.clip_by_value(self.pseudo_inputs, 0.0, 1.0))  # [K, D], [K, D]

  def distribution(self, encoder=None):
    mean, log_var = self.component_params(encoder)
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=tf.zeros([self.num_components])),
        components_distribution=distributions.diagonal_gaussian(mean, log_var))

  def log_prob(self, z, encoder=None):
    # log 1/K sum_k N(z; mu_k, sigma_k) as matrix products (see mixture_log_prob).
    mean, log_var = self.component_params(encoder)  # [K, D]
    log_weights = tf.fill([self.num_components], -math.log(self.num_components))
    return mixture_log_prob(z, mean, log_var, tf.cast(log_weights, z.dtype))

  def get_config(self):
    config = super().get_config()
    config.update(data_shape=list(self.data_shape), num_components=self.num_components,
                  init_mean=self.init_mean, init_stddev=self.init_stddev, seed=self.seed)
    return config


PRIORS = {
    "gaussian": StandardGaussianPrior,
    "gmm": GaussianMixturePrior,
    "vamp": VampPrior,
}


def make_prior(spec, latent_dim, data_shape):
  """Builds a prior from a registry name, a `{"name": ..., **kwargs}` dict, or returns an instance.

  Args:
    spec: `"gaussian"`, `"gmm"`, `"vamp"`, a dict with `name` and keyword
      arguments (`num_components`, ...), a serialized Keras config, or a `Prior`.
    latent_dim: the model's latent dimension.
    data_shape: the model's image shape, for priors in data space.
  """
  if isinstance(spec, Prior):
    if spec.latent_dim != latent_dim:
      raise ValueError(f"Expected a prior with latent_dim={latent_dim}. "
                       f"Received: prior.latent_dim={spec.latent_dim}")
    return spec
  if isinstance(spec, dict) and "class_name" in spec:
    return make_prior(keras.saving.deserialize_keras_object(spec), latent_dim, data_shape)
  kwargs = {}
  if isinstance(spec, dict):
    kwargs = dict(spec)
    spec = kwargs.pop("name", None)
  if spec not in PRIORS:
    raise ValueError(f"Expected prior to be one of {sorted(PRIORS)}. Received: prior={spec!r}")
  cls = PRIORS[spec]
  if cls is VampPrior:
    kwargs.setdefault("data_shape", data_shape)
  return cls(latent_dim=latent_dim, **kwargs)
