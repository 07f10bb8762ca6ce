"""FactorVAE: a VAE whose aggregate posterior is pushed towards independent dimensions by a
discriminator that estimates its total correlation [1].

The loss per example is the VAE's plus γ times a density-ratio estimate of the total
correlation TC(z) = KL(q(z) ‖ q̄(z)) of the aggregate posterior q(z) = E_x q(z|x) with the
product of its marginals q̄(z) = Π_j q(z_j):

    loss = −log p(x|z) + β·KL(q(z|x) ‖ p(z)) + γ·log D(z) / (1 − D(z)),   z ~ q(z|x),

where the discriminator D(z) is the probability that z came from q(z) rather than q̄(z). At
its optimum D = q / (q + q̄), so log D/(1 − D) = log q(z)/q̄(z), whose mean under q(z) is the
TC. β = `kl_weight` is 1 in [1]. Samples of q̄ are the batch's codes with every dimension
permuted independently across the batch (`permute_dims`): each column keeps its marginal, the
dependence between the columns is broken.

D is a second objective with its own optimizer (`extra_objectives`): it minimises the
cross-entropy of telling the codes z from the permuted codes z̃ (per example; the ½ makes its
batch mean the mean over the 2B codes D sees),

    discriminator_loss = −½ [log D(z) + log(1 − D(z̃))].

The VAE's loss does not train D: D's variables are left out of the main optimizer's
(`main_trainable_variables`), so the TC term's gradient reaches the encoder through z but never
moves D. D's loss does not train the encoder: it sees the codes behind a stop-gradient. In [1]
and [2] the two optimizers likewise update only their own variables.

As disentanglement_lib [2]: the codes permuted are the batch's own (Algorithm 1 of [1] permutes
the codes of a second batch), D is 6 dense layers of 1000 units with leaky ReLUs of slope 0.2,
trained by Adam with learning rate 1e-4, β1 = 0.5, β2 = 0.9, ε = 1e-8, and its study sweeps
γ ∈ {10, 20, 30, 40, 50, 100}. D outputs one logit l = log D/(1 − D); [2]'s two softmax logits
enter only through their difference, the same function.

References:
  [1]: Kim & Mnih. Disentangling by Factorising. ICML 2018.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
       Disentangled Representations. ICML 2019 (disentanglement_lib,
       methods/unsupervised/vae.py, config/unsupervised_study_v1).
"""

import functools

import keras
import numpy as np
import tensorflow as tf

from kerasvae.models import autoencoders
from kerasvae.models import distributions

# The discriminator's Adam, as [2]'s study configures it; its learning rate is a setting.
DISCRIMINATOR_ADAM = dict(beta_1=0.5, beta_2=0.9, epsilon=1e-8)
LEAKY_RELU_SLOPE = 0.2  # tf.nn.leaky_relu's default, which [2]'s discriminator uses


def permute_dims(z, seed=None):
  """Permutes every dimension of the codes independently across the batch [1].

  If the rows of z are draws of q(z), the rows of the result are draws of Π_j q(z_j): column j
  holds the same values as z[:, j] in another order, and the columns no longer move together.

  Args:
    z: codes [B, D].
    seed: a stateless seed [2] (the same seed gives the same permutations), or None for fresh
      ones.

  Returns:
    [B, D]: column j is a random permutation of column j of z.
  """
  shape = tf.shape(z)
  noise = (tf.random.uniform(shape) if seed is None
           else tf.random.stateless_uniform(shape, seed=seed))  # [B, D]
  order = tf.argsort(noise, axis=0)  # [B, D]: one permutation of 0..B-1 per column
  permuted = tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1)  # [D, B]
  return tf.transpose(permuted)


def make_discriminator(latent_dim, units, layers):
  """The MLP D: codes [B, latent_dim] → logits [B, 1] of "drawn from q(z), not q̄(z)"."""
  stack = [keras.Input((latent_dim,), name="codes")]
  for i in range(layers):
    stack += [keras.layers.Dense(units, name=f"dense_{i}"),
              keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, name=f"leaky_relu_{i}")]
  stack.append(keras.layers.Dense(1, name="logit"))
  return keras.Sequential(stack, name="discriminator")


def _check_positive_int(value, name):
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
    raise ValueError(f"Expected {name} to be an integer >= 1. Received: {name}={value!r}")
  return int(value)


@keras.saving.register_keras_serializable(package="kerasvae")
class FactorVAE(autoencoders.VAE):
  """A VAE with a total-correlation penalty estimated by a code discriminator [1].

  Per example, loss = reconstruction + β·KL + γ·log D(z)/(1 − D(z)) (see the module
  docstring); `loss_terms` also returns the discriminator's `discriminator_loss`, which the
  training loop minimises with D's own Adam (`extra_objectives`). The reported ELBO is the
  VAE's (β = 1, no TC term), so a FactorVAE compares with a VAE.

  Args:
    gamma: γ ≥ 0, the weight of the TC estimate (γ = 0 is a β-VAE beside an idle D).
    discriminator_units: the width of D's hidden layers (1000 in [1, 2]).
    discriminator_layers: D's hidden layers (6 in [1, 2]).
    discriminator_learning_rate: the learning rate of D's Adam (1e-4 in [2]).
    Other arguments: see `VAE` (`kl_weight` is β, 1 in [1]).

  Example:
    >>> model = FactorVAE((64, 64, 1), latent_dim=10, gamma=40.0)
    >>> terms = model.loss_terms(images, training=True)
    >>> terms["total_correlation"], terms["discriminator_loss"]  # [B] each
  """

  def __init__(self, input_shape, latent_dim, gamma=10.0, discriminator_units=1000,
               discriminator_layers=6, discriminator_learning_rate=1e-4, **kwargs):
    super().__init__(input_shape, latent_dim, **kwargs)
    self.gamma = autoencoders.check_number(gamma, "gamma")
    self.discriminator_units = _check_positive_int(discriminator_units, "discriminator_units")
    self.discriminator_layers = _check_positive_int(discriminator_layers, "discriminator_layers")
    self.discriminator_learning_rate = autoencoders.check_number(
        discriminator_learning_rate, "discriminator_learning_rate", positive=True)
    self.discriminator = make_discriminator(self.latent_dim, self.discriminator_units,
                                            self.discriminator_layers)

  @staticmethod
  def settings_arguments(settings, steps_per_epoch=1):
    """The constructor arguments of a `kinds.FactorVAESettings` block: the VAE's and D's."""
    return dict(autoencoders.VAE.settings_arguments(settings, steps_per_epoch),
                gamma=settings.gamma, discriminator_units=settings.discriminator_units,
                discriminator_layers=settings.discriminator_layers,
                discriminator_learning_rate=settings.discriminator_learning_rate)

  def extra_objectives(self):
    return [("discriminator_loss", self.discriminator.trainable_variables,
             functools.partial(keras.optimizers.Adam, self.discriminator_learning_rate,
                               **DISCRIMINATOR_ADAM))]

  def discriminator_terms(self, codes, permuted_codes):
    """The TC estimate and D's cross-entropy per example.

    Args:
      codes: z ~ q(z|x) [B, D]; the TC estimate is differentiable in them.
      permuted_codes: `permute_dims` of the codes [B, D].

    Returns:
      (total_correlation [B], discriminator_loss [B]): log D(z)/(1 − D(z)) = D's logit at z,
      and −½ [log D(z) + log(1 − D(z̃))] with z behind a stop-gradient.
    """
    batch = tf.shape(codes)[0]
    # One pass over [z; stop_gradient(z); z̃]: the TC term's gradient reaches the encoder
    # through the first rows, D's loss sees the codes as data.
    inputs = tf.concat([codes, tf.stop_gradient(codes), tf.stop_gradient(permuted_codes)], 0)
    logits = self.discriminator(inputs)[:, 0]  # [3B]
    total_correlation = logits[:batch]  # [B]
    real, permuted = logits[batch:2 * batch], logits[2 * batch:]  # [B] each
    # −log σ(l) = softplus(−l), −log(1 − σ(l)) = softplus(l)
    discriminator_loss = 0.5 * (tf.nn.softplus(-real) + tf.nn.softplus(permuted))
    return total_correlation, discriminator_loss

  def loss_terms(self, x, training=False, step=None, seed=None):
    """The VAE's terms plus `total_correlation`, `discriminator_loss`, `codes` and
    `permuted_codes` ([B] or [B, D] each); `seed` (an integer or a [2] tensor) fixes the code
    draw and the permutations, None draws fresh ones."""
    seed = distributions.stateless_seed(seed)
    if seed is None:  # one seed for the draw of z that elbo_terms decodes and D sees
      seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
    draw_seed, permutation_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    terms = self.elbo_terms(x, training=training, seed=draw_seed)
    codes = distributions.reparameterized_sample(terms["mean"], terms["log_var"],
                                                 seed=draw_seed)  # [B, D], elbo_terms' z
    permuted_codes = permute_dims(tf.stop_gradient(codes), seed=permutation_seed)  # [B, D]
    total_correlation, discriminator_loss = self.discriminator_terms(codes, permuted_codes)
    beta = self.kl_weight_at(step)
    weighted_kl = beta * terms["kl"]
    terms.update(loss=terms["reconstruction"] + weighted_kl + self.gamma * total_correlation,
                 weighted_kl=weighted_kl, kl_weight=beta, total_correlation=total_correlation,
                 discriminator_loss=discriminator_loss, codes=codes,
                 permuted_codes=permuted_codes)
    return terms

  def train_step(self, data):
    # Keras' fit would minimise the main loss over every trainable variable, D's included, and
    # never step D's own objective.
    raise NotImplementedError(
        "FactorVAE trains with kerasvae.training.Trainer (kerasvae train), which steps the "
        "discriminator with its own optimizer (extra_objectives); Keras' fit would train the "
        "discriminator on the VAE's loss.")

  def get_config(self):
    config = super().get_config()
    config.update(gamma=self.gamma, discriminator_units=self.discriminator_units,
                  discriminator_layers=self.discriminator_layers,
                  discriminator_learning_rate=self.discriminator_learning_rate)
    return config
