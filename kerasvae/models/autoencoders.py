"""The models: `VAE` (with β / kl_weight and KL warm-up), `Autoencoder` and `NoisyAutoencoder`.

All share `LatentVariableModel`: encode, decode, reconstruct, sample(n, seed)
and per-example loss terms; the VAE adds the per-example ELBO with its
reconstruction and KL parts and the importance-weighted log-likelihood bound.
They differ only where they really differ: how a code is drawn and what
regularises it.

References:
  [1]: Kingma & Welling. Auto-Encoding Variational Bayes. ICLR 2014.
  [2]: Higgins et al. beta-VAE: Learning Basic Visual Concepts with a
       Constrained Variational Framework. ICLR 2017.
  [3]: Burda, Grosse & Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from kerasvae.models import distributions
from kerasvae.models import importance_sampling
from kerasvae.models import likelihoods as likelihoods_lib
from kerasvae.models import networks
from kerasvae.models import priors as priors_lib


def images_of(data):
  """The image tensor of a batch: a tensor, an (x, ...) tuple or a dict with "image"."""
  if isinstance(data, dict):
    return data["image"]
  if isinstance(data, (tuple, list)):
    return data[0]
  return data


def as_images(x, image_shape, name="x", data_range=(0.0, 1.0)):
  """Images as the models compute on them: float32 [N, H, W, C] in [0, 1].

  Accepts data as users hold it: [N, H, W] for one-channel images or [N, H, W, C], uint8
  (scaled by 1/255), bool, or float in [0, 1] (cast to float32). Anything else is refused with
  one line naming the expected shape, dtype and range. The range is checked where the values
  are known (NumPy arrays and eager tensors, not inside a traced `tf.function`).

  Args:
    x: a NumPy array, a tensor or nested lists.
    image_shape: the model's (H, W, C).
    name: the argument's name, for the message.
    data_range: the (low, high) float values the likelihood takes, or None for any real
      number (a Gaussian likelihood's pixels).

  Returns:
    A float32 NumPy array for NumPy (or list) input, else a float32 tensor; `x` itself when it
    already is float32 [N, H, W, C].
  """
  height, width, channels = image_shape
  low_bound, high_bound = data_range or (-np.inf, np.inf)
  expected = (f"Expected {name} of shape [N, {height}, {width}, {channels}]"
              + (f" or [N, {height}, {width}]" if channels == 1 else "")
              + ", dtype uint8 (0-255, scaled by 1/255) or float"
              + (f" with values in [{low_bound:g}, {high_bound:g}]" if data_range else ""))
  if not tf.is_tensor(x) and not isinstance(x, np.ndarray):
    try:
      x = np.asarray(x)
    except ValueError as e:  # ragged nested lists
      raise ValueError(f"{expected}. Received: {name} that is not an array ({e})") from None
  shape = tuple(x.shape)
  dims = [None if d is None else int(d) for d in shape]
  fits = lambda got, want: all(g is None or g == w for g, w in zip(got, want))  # noqa: E731
  if not ((len(dims) == 4 and fits(dims[1:], image_shape))
          or (len(dims) == 3 and channels == 1 and fits(dims[1:], image_shape[:2]))):
    raise ValueError(f"{expected}. Received: {name}.shape={shape}")
  dtype = tf.as_dtype(x.dtype)
  if not (dtype == tf.uint8 or dtype == tf.bool or dtype.is_floating):
    raise ValueError(f"{expected}. Received: {name}.dtype={dtype.name}")
  if dtype == tf.float32 and len(dims) == 4:
    converted = x
  elif isinstance(x, np.ndarray):
    converted = x.astype(np.float32) / (255.0 if dtype == tf.uint8 else 1.0)
  else:
    converted = tf.cast(x, tf.float32) / (255.0 if dtype == tf.uint8 else 1.0)
  if len(dims) == 3:
    converted = converted[..., None]
  if dtype.is_floating and (isinstance(x, np.ndarray) or tf.executing_eagerly()) and np.prod(
      dims) > 0:
    low, high = (float(np.min(x)), float(np.max(x))) if isinstance(x, np.ndarray) else (
        float(tf.reduce_min(x)), float(tf.reduce_max(x)))
    if not (low >= low_bound and high <= high_bound):  # also refuses NaN
      hint = " (uint8-range values in a float array: divide by 255)" if data_range == (
          0.0, 1.0) and 1.0 < high <= 255.0 and low >= 0.0 else ""
      raise ValueError(f"{expected}. Received: {name} values in [{low:g}, {high:g}]{hint}")
  return converted


def check_number(value, name, low=0.0, positive=False):
  """`value` as a float: a finite number >= `low` (> `low` when `positive`); else a ValueError
  naming `name`. The model kinds check their weights and rates with it."""
  if (not isinstance(value, (int, float, np.number)) or isinstance(value, bool)
      or not math.isfinite(value) or value < low or (positive and value == low)):
    raise ValueError(f"Expected {name} to be a finite number {'>' if positive else '>='} "
                     f"{low:g}. Received: {name}={value!r}")
  return float(value)


class LatentVariableModel(keras.Model):
  """The shared base of all models: an encoder, a decoder and a likelihood.

  Args:
    input_shape: the image shape (H, W, C).
    latent_dim: dimension of the code z.
    architecture: `"mlp"` or `"conv"` (see `networks.make_encoder`).
    hidden_units: MLP hidden widths, e.g. (400,) for 784-400-20-400-784.
    filters: conv channels per stride-2 layer.
    dense_units: conv dense-layer width.
    likelihood: `"bernoulli"`, `"gaussian"`, `"continuous_bernoulli"`, a dict
      `{"name": ..., **kwargs}` or a `Likelihood`.
    network_dtype: the Keras dtype policy of the encoder's and decoder's layers (see
      `networks.DTYPES`): `"float32"`, or `"mixed_bfloat16"` to compute them in bfloat16
      with float32 variables. Their outputs are float32 either way, so the posterior, the
      prior, the likelihood, the loss terms and the metrics compute in float32.

  Call arguments:
    x: images [B, H, W, C] or, for one channel, [B, H, W]: uint8 (scaled by 1/255) or float in
      [0, 1]. Every method that takes images (`encode`, `encode_mean`, `reconstruct`,
      `loss_terms`, the VAE's `posterior`, `elbo` and `iwae_log_likelihood`, and Keras' `fit`,
      `evaluate` and `predict`) accepts the same and refuses anything else with one line
      naming the expected shape, dtype and range (`as_images`).

  Returns (call):
    The reconstruction mean [B, H, W, C].
  """

  # What a model kind declares; the steps, the training loop, serving and the metrics read
  # these and never ask with hasattr (kerasvae/kinds.py registers the kinds).
  # A posterior q(z|x) (`posterior_params`), hence an ELBO, the IWAE bound, KL per latent and
  # the `log_likelihood` serving signature.
  has_posterior = False
  # The evaluate step's metrics this kind can never have (a threshold on one is skipped).
  not_applicable_metrics = ("elbo", "kl", "iwae_log_likelihood", "iwae_log_likelihood_stderr")
  # How many training images `prepare` and `finalize` want (0: the hook is not called).
  prepare_examples = 0
  finalize_examples = 0
  # What early stopping and the kept checkpoint select on: the model's own training objective
  # on the validation split (`validation_objective`), so a model is selected on what it trains
  # (a noisy autoencoder on its noisy loss, a β-VAE on its β-weighted bound), never on another
  # model's number. The `loss_terms` term it negates:
  selection_term = "loss"

  def __init__(self, input_shape, latent_dim, architecture="mlp", hidden_units=(400,),
               filters=(32, 64), dense_units=256, likelihood="bernoulli",
               network_dtype="float32", **kwargs):
    super().__init__(**kwargs)
    self.image_shape = networks.check_image_shape(input_shape)
    self.latent_dim = priors_lib._check_latent_dim(latent_dim)  # pylint: disable=protected-access
    if architecture not in networks.ARCHITECTURES:
      raise ValueError(f"Expected architecture to be one of {list(networks.ARCHITECTURES)}. "
                       f"Received: architecture={architecture!r}")
    self.architecture = architecture
    self.hidden_units = tuple(hidden_units)
    self.filters = tuple(filters)
    self.dense_units = int(dense_units)
    try:
      self.network_dtype = networks.check_dtype(network_dtype)
    except ValueError:
      raise ValueError(f"Expected network_dtype to be one of {list(networks.DTYPES)}. "
                       f"Received: network_dtype={network_dtype!r}") from None
    net_kwargs = dict(hidden_units=self.hidden_units, filters=self.filters,
                      dense_units=self.dense_units, dtype=self.network_dtype)
    self.encoder = networks.make_encoder(architecture, self.image_shape,
                                         self._encoder_units(), **net_kwargs)
    self.decoder = networks.make_decoder(architecture, self.image_shape, self.latent_dim,
                                         **net_kwargs)
    self.likelihood = likelihoods_lib.make_likelihood(likelihood)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
    self.kl_tracker = keras.metrics.Mean(name="kl")

  def _encoder_units(self):
    return self.latent_dim

  # -- The contract with the steps and the training loop --------------------

  @classmethod
  def from_settings(cls, settings, network, data=None):
    """Builds the model from its kind's settings block.

    Args:
      settings: the kind's settings dataclass (`kerasvae.kinds`), e.g. `VAESettings`.
      network: the arguments every kind shares: `input_shape`, `latent_dim`, `architecture`,
        `hidden_units`, `filters`, `dense_units`, and `network_dtype` when not float32.
      data: a `kinds.TrainingData` (steps per epoch, training-split size, batch size), for
        settings that depend on them; None: one step per epoch, sizes unknown.
    """
    raise NotImplementedError

  def prepare(self, train_images, seed=0):
    """Called once before the first training step with `prepare_examples` training images
    [N, H, W, C] (e.g. the VampPrior's pseudo-inputs start from data). A resumed training
    restores its checkpoint after this."""

  def finalize(self, train_images):
    """Called once after training with `finalize_examples` training images [N, H, W, C],
    before the model is saved (e.g. the autoencoder fits the code distribution it samples)."""

  def validation_objective(self, x, seed=None):
    """The per-example objective [B] early stopping maximises: minus the training loss
    (`selection_term` of `loss_terms`) at the end of its schedules (`step=None`: full KL
    weight, full capacity), with the training-time noise (a noisy autoencoder's code noise)
    drawn from the stateless `seed`, so repeated evaluations agree."""
    return -self.loss_terms(x, training=True, step=None, seed=seed)[self.selection_term]

  def scheduled_values(self, step):
    """The model's scheduled settings at an optimiser step, logged every epoch: {name: value}
    (e.g. the VAE's KL weight during warm-up)."""
    del step
    return {}

  def extra_objectives(self):
    """Objectives beside the main `loss`, each with its own optimizer (e.g. an adversary).

    Returns:
      A list of `(loss_key, variables, make_optimizer)`: `loss_terms` returns the per-example
      `loss_key` term [B], minimised over `variables` (excluded from the main loss's) by the
      optimizer `make_optimizer()` returns. The training loop builds, steps and checkpoints it.
    """
    return []

  @property
  def main_trainable_variables(self):
    """The trainable variables of the main `loss`: all but those of `extra_objectives`."""
    claimed = {id(v) for _, variables, _ in self.extra_objectives() for v in variables}
    return [v for v in self.trainable_variables if id(v) not in claimed]

  # -- The shared interface -------------------------------------------------

  def as_images(self, x, name="x"):
    """`x` as float32 [B, H, W, C] in [0, 1], or a one-line ValueError (see `as_images`)."""
    return as_images(x, self.image_shape, name=name, data_range=self.likelihood.data_range)

  def encode_mean(self, x, training=False):
    """The code used for reconstruction: the posterior mean (VAE) or the code (AE). [B, D]."""
    return self.encoder(self.as_images(x), training=training)

  def decode(self, z, training=False):
    """The decoder's likelihood parameters (logits or pre-sigmoid means): [B, H, W, C]."""
    return self.decoder(z, training=training)

  def decode_mean(self, z):
    """The mean image E[x|z]: [B, D] → [B, H, W, C]."""
    return self.likelihood.mean(self.decode(z))

  def reconstruct(self, x):
    """Decodes the encoder's mean code: [B, H, W, C] (or [B, H, W]) → [B, H, W, C]."""
    return self.decode_mean(self.encode_mean(x))

  def sample_latents(self, num_samples, seed=None):
    """Draws [num_samples, D] codes from the model's generative distribution over z."""
    raise NotImplementedError

  def sample(self, num_samples, seed=None):
    """Generates `num_samples` images (the decoder's means) from random codes.

    Args:
      num_samples: how many images.
      seed: an integer or a [2] integer tensor: the same seed gives the same
        images (stateless sampling). None draws fresh noise.

    Returns:
      [num_samples, H, W, C] images.
    """
    return self.decode_mean(self.sample_latents(num_samples, seed=distributions.stateless_seed(seed)))

  def loss_terms(self, x, training=False, step=None, seed=None):
    """Per-example terms of the training objective.

    Args:
      x: images [B, H, W, C].
      training: whether noise for training (the AE's code noise) is added.
      step: the optimiser step, for schedules such as the KL warm-up.
      seed: a stateless seed ([2] int32) for every random draw of the step (the training loop
        passes one derived from train.seed, the step and the replica, so a training is the
        same in any process, after any other); None draws fresh noise.

    Returns:
      A dict of [B] tensors: `loss` (what is minimised), `reconstruction`
      (-log p(x|z) in nats) and model-specific parts.
    """
    raise NotImplementedError

  def __call__(self, *args, **kwargs):
    # Checked here, before Keras' own __call__, whose error context would make the one-line
    # message about the images a multi-line one.
    if args and (isinstance(args[0], np.ndarray)
                 or (tf.is_tensor(args[0]) and tf.executing_eagerly())):
      args = (self.as_images(args[0]), *args[1:])
    return super().__call__(*args, **kwargs)

  def call(self, x, training=False):
    return self.reconstruct(x)

  # -- Keras training -------------------------------------------------------

  @property
  def metrics(self):
    return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

  def _update_trackers(self, terms):
    self.loss_tracker.update_state(terms["loss"])
    self.reconstruction_tracker.update_state(terms["reconstruction"])
    self.kl_tracker.update_state(terms.get("kl", tf.zeros_like(terms["loss"])))
    return {m.name: m.result() for m in self.metrics}

  def train_step(self, data):
    x = self.as_images(images_of(data))
    with tf.GradientTape() as tape:
      terms = self.loss_terms(x, training=True, step=self.optimizer.iterations)
      # Gradients are summed over replicas, so each replica's mean is divided by their count.
      replicas = tf.distribute.get_replica_context().num_replicas_in_sync
      loss = tf.reduce_mean(terms["loss"]) / replicas
    grads = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
    return self._update_trackers(terms)

  def test_step(self, data):
    return self._update_trackers(self.loss_terms(self.as_images(images_of(data)),
                                                 training=False))

  def _checked_inputs(self, x):
    """Keras' `fit`/`evaluate`/`predict` inputs with arrays of images converted (and checked)
    before Keras batches them: uint8 and [N, H, W] arrays as in every other method."""
    if isinstance(x, dict) and "image" in x:
      return {**x, "image": self.as_images(x["image"], name="x['image']")}
    if isinstance(x, np.ndarray) or (tf.is_tensor(x) and tf.executing_eagerly()):
      return self.as_images(x)
    return x  # a tf.data.Dataset or a generator: converted batch by batch in the step

  def fit(self, x=None, *args, validation_data=None, **kwargs):
    if isinstance(validation_data, (np.ndarray, dict)) or tf.is_tensor(validation_data):
      validation_data = self._checked_inputs(validation_data)
    elif isinstance(validation_data, tuple) and validation_data:
      validation_data = (self._checked_inputs(validation_data[0]), *validation_data[1:])
    return super().fit(self._checked_inputs(x), *args, validation_data=validation_data,
                       **kwargs)

  def evaluate(self, x=None, *args, **kwargs):
    return super().evaluate(self._checked_inputs(x), *args, **kwargs)

  def predict(self, x, *args, **kwargs):
    return super().predict(self._checked_inputs(x), *args, **kwargs)

  def get_config(self):
    config = super().get_config()
    config.update(
        input_shape=list(self.image_shape), latent_dim=self.latent_dim,
        architecture=self.architecture, hidden_units=list(self.hidden_units),
        filters=list(self.filters), dense_units=self.dense_units,
        likelihood=keras.saving.serialize_keras_object(self.likelihood),
        network_dtype=self.network_dtype)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["likelihood"] = likelihoods_lib.make_likelihood(config["likelihood"])
    return cls(**config)


@keras.saving.register_keras_serializable(package="kerasvae")
class VAE(LatentVariableModel):
  """A variational autoencoder with a diagonal-Gaussian posterior and a pluggable prior.

  The training loss per example is the negative β-ELBO

    loss = -E_q[log p(x|z)] + β · KL(q(z|x) || p(z)),

  with one reparameterised sample z ~ q(z|x) [1]; β = `kl_weight` (1.0 is the
  plain VAE, β > 1 the β-VAE [2]), ramped linearly from 0 over
  `kl_warmup_steps` optimiser steps when that is positive. The ELBO reported
  always uses β = 1.

  Args:
    prior: `"gaussian"` (N(0, I), analytic KL), `"gmm"`, `"vamp"`, a dict
      `{"name": ..., "num_components": ...}` or a `Prior`.
    kl_weight: β ≥ 0.
    kl_warmup_steps: steps of the linear KL warm-up (0: none).
    Other arguments: see `LatentVariableModel`.

  Example:
    >>> vae = VAE(input_shape=(28, 28, 1), latent_dim=20, prior="vamp")
    >>> terms = vae.elbo(images)       # {"elbo", "reconstruction", "kl"}: [B] each
    >>> log_px = vae.iwae_log_likelihood(images, num_samples=5000)
  """

  has_posterior = True
  not_applicable_metrics = ()

  def __init__(self, input_shape, latent_dim, prior="gaussian", kl_weight=1.0,
               kl_warmup_steps=0, **kwargs):
    super().__init__(input_shape, latent_dim, **kwargs)
    self.kl_weight = check_number(kl_weight, "kl_weight")
    if not isinstance(kl_warmup_steps, (int, np.integer)) or kl_warmup_steps < 0:
      raise ValueError("Expected kl_warmup_steps to be an integer >= 0. "
                       f"Received: kl_warmup_steps={kl_warmup_steps}")
    self.kl_warmup_steps = int(kl_warmup_steps)
    self.prior = priors_lib.make_prior(prior, self.latent_dim, self.image_shape)
    self.prior_from_data = False  # `prepare` starts a VampPrior's pseudo-inputs from images
    self.built = True

  def _encoder_units(self):
    return 2 * self.latent_dim

  @staticmethod
  def settings_arguments(settings, steps_per_epoch=1):
    """The constructor arguments a `VAESettings` block gives (subclasses' blocks extend it);
    `kl_warmup_epochs` becomes steps."""
    likelihood = {"name": settings.likelihood}
    if settings.likelihood == "gaussian":
      likelihood.update(scale=settings.gaussian_scale, learn_scale=settings.learn_scale)
    prior = {"name": settings.prior}
    if settings.prior != "gaussian":
      prior["num_components"] = settings.num_components
    return dict(prior=prior, likelihood=likelihood, kl_weight=settings.kl_weight,
                kl_warmup_steps=int(round(settings.kl_warmup_epochs * steps_per_epoch)))

  @classmethod
  def from_settings(cls, settings, network, data=None):
    steps_per_epoch = data.steps_per_epoch if data is not None else 1
    model = cls(**network, **cls.settings_arguments(settings, steps_per_epoch))
    if settings.prior == "vamp" and settings.vamp_init_from_data:
      model.prior_from_data = True
      model.prepare_examples = max(5000, settings.num_components)
    return model

  def prepare(self, train_images, seed=0):
    if self.prior_from_data:
      self.prior.initialize_from_data(train_images, seed=seed)

  def scheduled_values(self, step):
    return {"kl_weight": self.kl_weight_at(step)}

  def posterior_params(self, x, training=False):
    """q(z|x) parameters: x [B, H, W, C] → (mean [B, D], log_var [B, D])."""
    h = self.encoder(self.as_images(x), training=training)  # [B, 2D]
    mean, log_var = tf.split(h, 2, axis=-1)
    return mean, log_var

  def posterior(self, x):
    """q(z|x) as a `tfd.MultivariateNormalDiag` with batch shape [B]."""
    return distributions.diagonal_gaussian(*self.posterior_params(x))

  def encode(self, x):
    """(mean, log_var) of q(z|x)."""
    return self.posterior_params(x)

  def encode_mean(self, x, training=False):
    return self.posterior_params(x, training=training)[0]

  def sample_latents(self, num_samples, seed=None):
    return self.prior.sample(num_samples, seed=seed, encoder=self.posterior_params)

  def kl_weight_at(self, step):
    """β at an optimiser step: kl_weight · min(1, step / kl_warmup_steps)."""
    if self.kl_warmup_steps == 0 or step is None:
      return tf.constant(self.kl_weight)
    ramp = tf.cast(step, tf.float32) / float(self.kl_warmup_steps)
    return self.kl_weight * tf.minimum(1.0, ramp)

  def elbo_terms(self, x, training=False, seed=None):
    """One-sample ELBO terms per example: reconstruction, KL, ELBO = -(rec + KL). [B] each."""
    x = self.as_images(x)
    mean, log_var = self.posterior_params(x, training=training)  # [B, D] x2
    z = distributions.reparameterized_sample(mean, log_var, seed=distributions.stateless_seed(seed))  # [B, D]
    reconstruction = self.likelihood.negative_log_likelihood(x, self.decode(z, training=training))
    kl = self.prior.kl(mean, log_var, z, encoder=self.posterior_params)  # [B]
    return {"reconstruction": reconstruction, "kl": kl, "elbo": -(reconstruction + kl),
            "mean": mean, "log_var": log_var}

  def elbo(self, x, seed=None):
    """The per-example ELBO (nats) with its parts: {"elbo", "reconstruction", "kl"}, [B] each.

    Args:
      x: images [B, H, W, C].
      seed: an integer or a [2] integer tensor: the same seed draws the same z
        (stateless sampling). None draws fresh noise.
    """
    terms = self.elbo_terms(x, seed=seed)
    return {k: terms[k] for k in ("elbo", "reconstruction", "kl")}

  def loss_terms(self, x, training=False, step=None, seed=None):
    terms = self.elbo_terms(x, training=training, seed=seed)
    beta = self.kl_weight_at(step)
    weighted_kl = beta * terms["kl"]
    terms.update(loss=terms["reconstruction"] + weighted_kl, weighted_kl=weighted_kl,
                 kl_weight=beta)
    return terms

  def importance_log_weights(self, x, mean, log_var, eps):
    """log w_k = log p(x, z_k) - log q(z_k|x) at z_k = mean + exp(log_var / 2) * eps_k [3].

    Args:
      x: images [B, H, W, C].
      mean, log_var: the posterior parameters of x, [B, D] each.
      eps: standard normal draws [S, B, D], or [S, 1, D] to share each draw
        across the batch (common random numbers: an example's weights then do
        not depend on its position in the batch).

    Returns:
      [S, B] log importance weights.
    """
    num_samples, batch = tf.shape(eps)[0], tf.shape(x)[0]
    z = mean + tf.exp(0.5 * log_var) * eps  # [S, B, D]
    log_q = distributions.diagonal_gaussian_log_prob(z, mean, log_var)  # [S, B]
    log_pz = self.prior.log_prob(z, encoder=self.posterior_params)  # [S, B]
    params = self.decode(tf.reshape(z, [-1, self.latent_dim]))  # [S*B, H, W, C]
    x_rep = tf.tile(x, [num_samples, 1, 1, 1])  # [S*B, H, W, C], sample-major like z
    log_px = -self.likelihood.negative_log_likelihood(x_rep, params)  # [S*B]
    return tf.reshape(log_px, [num_samples, batch]) + log_pz - log_q

  def iwae_log_likelihood(self, x, num_samples=5000, chunk_size=None, seed=None, verbose=0):
    """The importance-weighted estimate of log p(x) with K = `num_samples` [3].

    log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): a lower bound that
    tightens as K grows (K = 1 is the ELBO). `kerasvae.models.importance_sampling` computes it,
    the same estimator as the evaluate step's and the `log_likelihood` serving signature's: the K draws
    come from `seed` and are shared by every image, so an image's estimate depends only on
    the image, K and the seed.

    Args:
      x: images [B, H, W, C].
      num_samples: K.
      chunk_size: samples per chunk (memory); by default about 4 million decoded pixels.
      seed: an integer or a [2] integer tensor: the same seed gives the same estimate. None
        draws fresh noise.
      verbose: 0 silent; 1 a Keras progress bar over the K samples with an ETA (K = 5000 on
        hundreds of images takes minutes on a CPU).

    Returns:
      [B] log-likelihood estimates in nats.
    """
    return importance_sampling.log_likelihood(self, self.as_images(x), num_samples=num_samples, seed=seed,
                               chunk_size=chunk_size, verbose=verbose)["log_likelihood"]

  def get_config(self):
    config = super().get_config()
    config.update(prior=keras.saving.serialize_keras_object(self.prior),
                  kl_weight=self.kl_weight, kl_warmup_steps=self.kl_warmup_steps)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["prior"] = keras.saving.deserialize_keras_object(config["prior"])
    return super().from_config(config)


@keras.saving.register_keras_serializable(package="kerasvae")
class Autoencoder(LatentVariableModel):
  """A deterministic autoencoder, the baseline a VAE is compared with.

  It has no prior: to generate, `sample` decodes random codes drawn from a
  distribution fitted to training codes with `fit_latent_sampler` (a Gaussian
  with the codes' mean and standard deviation, or uniform over their bounding
  box), which shows whether random points of an AE's code space decode to data.

  Args:
    reconstruction_loss: `"bce"` (binary cross-entropy summed over pixels) or
      `"mse"` (squared error summed over pixels); the decoder's mean is
      sigmoid(output) for both.
    latent_sampler: what `sample` draws codes from, `"gaussian"` or
      `"uniform_box"` (set by `fit_latent_sampler`).
    Other arguments: see `LatentVariableModel`.
  """

  RECONSTRUCTION_LOSSES = ("bce", "mse")
  LATENT_SAMPLERS = ("gaussian", "uniform_box")
  # The codes of up to 10,000 training images fit the distribution `sample` draws from.
  finalize_examples = 10_000

  def __init__(self, input_shape, latent_dim, reconstruction_loss="bce",
               latent_sampler="gaussian", **kwargs):
    if latent_sampler not in self.LATENT_SAMPLERS:
      raise ValueError(f"Expected latent_sampler to be one of {list(self.LATENT_SAMPLERS)}. "
                       f"Received: latent_sampler={latent_sampler!r}")
    if reconstruction_loss not in self.RECONSTRUCTION_LOSSES:
      raise ValueError(f"Expected reconstruction_loss to be one of {list(self.RECONSTRUCTION_LOSSES)}. "
                       f"Received: reconstruction_loss={reconstruction_loss!r}")
    kwargs.setdefault("likelihood", "bernoulli")
    super().__init__(input_shape, latent_dim, **kwargs)
    self.reconstruction_loss = reconstruction_loss
    d = self.latent_dim
    self.code_mean = self.add_weight(shape=(d,), initializer="zeros", trainable=False,
                                     name="code_mean")
    self.code_std = self.add_weight(shape=(d,), initializer="ones", trainable=False,
                                    name="code_std")
    self.code_low = self.add_weight(shape=(d,), initializer=keras.initializers.Constant(-1.0),
                                    trainable=False, name="code_low")
    self.code_high = self.add_weight(shape=(d,), initializer="ones", trainable=False,
                                     name="code_high")
    self.latent_sampler = latent_sampler
    self.built = True

  @classmethod
  def from_settings(cls, settings, network, data=None):
    del data
    return cls(**network, **dataclasses.asdict(settings))

  def finalize(self, train_images):
    self.fit_latent_sampler(self.encode_mean(tf.constant(train_images)).numpy())

  def encode(self, x):
    """The code [B, D] (and None: an autoencoder has no posterior variance)."""
    return self.encode_mean(x), None

  def fit_latent_sampler(self, codes, method="gaussian"):
    """Fits the code distribution `sample` draws from to codes [N, D] of training data."""
    if method not in self.LATENT_SAMPLERS:
      raise ValueError(f"Expected method to be one of {list(self.LATENT_SAMPLERS)}. "
                       f"Received: method={method!r}")
    codes = np.asarray(codes, dtype="float32")
    self.code_mean.assign(codes.mean(0))
    self.code_std.assign(codes.std(0) + 1e-6)
    self.code_low.assign(codes.min(0))
    self.code_high.assign(codes.max(0))
    self.latent_sampler = method

  def sample_latents(self, num_samples, seed=None):
    shape = [num_samples, self.latent_dim]
    if self.latent_sampler == "uniform_box":
      u = (tf.random.uniform(shape) if seed is None
           else tf.random.stateless_uniform(shape, seed=seed))
      return self.code_low + (self.code_high - self.code_low) * u
    eps = tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed=seed)
    return self.code_mean + self.code_std * eps

  def code_for_decoder(self, code, training, seed=None):
    """The code the decoder sees; the noisy autoencoder perturbs it during training (with the
    stateless `seed`, or fresh noise when None)."""
    del training, seed
    return code

  def loss_terms(self, x, training=False, step=None, seed=None):
    x = self.as_images(x)
    code = self.encode_mean(x, training=training)  # [B, D]
    params = self.decode(self.code_for_decoder(code, training, seed=seed), training=training)
    if self.reconstruction_loss == "bce":
      reconstruction = self.likelihood.negative_log_likelihood(x, params)
    else:
      reconstruction = tf.reduce_sum(tf.square(x - self.likelihood.mean(params)), axis=[1, 2, 3])
    return {"loss": reconstruction, "reconstruction": reconstruction, "mean": code}

  def get_config(self):
    config = super().get_config()
    config.update(reconstruction_loss=self.reconstruction_loss,
                  latent_sampler=self.latent_sampler)
    return config


@keras.saving.register_keras_serializable(package="kerasvae")
class NoisyAutoencoder(Autoencoder):
  """An autoencoder whose decoder sees a noisy code during training.

  z̃ = z + ε, ε ~ N(0, σ² I), where R = mean_i ||z_i||² is the mean squared
  distance of the batch's codes from the origin and `noise_scale` says how
  "variance noise_factor · R" is read:

    "total":          the noise's total variance E||ε||² = D σ² is
                      noise_factor · R, so σ² = noise_factor · R / D;
    "per_dimension":  every coordinate gets σ² = noise_factor · R, a total of
                      D · noise_factor · R.

  R sums the squares of all D coordinates, so only "total" compares like with
  like: noise energy over code energy is noise_factor whatever D is, and the
  mean signal-to-noise ratio per dimension, (R / D) / σ², is 1 / noise_factor
  (20 for 0.05). Read per dimension it is 1 / (noise_factor · D): 2 for 0.05
  with D = 10 and 0.4 with D = 50 (noise of half, or 2.5 times, a latent's mean
  square), not the small perturbation "add noise of variance 0.05·R" has in
  mind. Hence the default "total". With white noise of variance σ² and code energy R,
  the decoder can receive at most D/2 · log2(1 + R / (D σ²)) bits per code:
  22.0 bits for "total" and 7.9 bits for "per_dimension" at 0.05 with D = 10.
  `kerasvae study ae-vs-vae` trains both readings and sweeps noise_factor.

  R is not back-propagated (stop-gradient), and as the noise scales with R the
  encoder cannot improve the signal-to-noise ratio by growing its codes. The
  noise is added only when `training` is true.

  Args:
    noise_factor: the 0.05 in the variance 0.05 · R (>= 0).
    noise_scale: `"total"` (default) or `"per_dimension"`, the reading above.
    Other arguments: see `Autoencoder`.

  Example:
    >>> ae = NoisyAutoencoder((28, 28, 1), latent_dim=10, noise_factor=0.05,
    ...                       noise_scale="total")   # σ² = 0.005 · R per coordinate
  """

  NOISE_SCALES = ("total", "per_dimension")

  def __init__(self, input_shape, latent_dim, noise_factor=0.05, noise_scale="total", **kwargs):
    if noise_scale not in self.NOISE_SCALES:
      raise ValueError(f"Expected noise_scale to be one of {list(self.NOISE_SCALES)}. "
                       f"Received: noise_scale={noise_scale!r}")
    super().__init__(input_shape, latent_dim, **kwargs)
    self.noise_factor = check_number(noise_factor, "noise_factor")
    self.noise_scale = noise_scale

  @property
  def noise_variance_fraction(self):
    """σ² / R: the variance of each noise coordinate as a fraction of R."""
    if self.noise_scale == "total":
      return self.noise_factor / self.latent_dim
    return self.noise_factor

  def code_for_decoder(self, code, training, seed=None):
    if not training:
      return code
    radius_sq = tf.stop_gradient(tf.reduce_mean(tf.reduce_sum(tf.square(code), axis=-1)))  # R
    std = tf.sqrt(self.noise_variance_fraction * radius_sq)  # σ
    seed = distributions.stateless_seed(seed)
    eps = (tf.random.normal(tf.shape(code)) if seed is None
           else tf.random.stateless_normal(tf.shape(code), seed=seed))  # [B, D]
    return code + std * eps

  def get_config(self):
    config = super().get_config()
    config.update(noise_factor=self.noise_factor, noise_scale=self.noise_scale)
    return config

