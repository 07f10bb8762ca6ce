"""DIP-VAE: a VAE whose aggregate posterior's covariance is pushed towards the prior's identity [1].

A disentangled code has independent dimensions under the aggregate posterior q(z) =
E_p(x)[q(z|x)]; DIP-VAE ("disentangled inferred prior") asks q(z) to match the prior N(0, I) in its
second moments, adding to the β = 1 ELBO loss the penalty

  λ_od Σ_{i≠j} Cov[·]_ij² + λ_d Σ_i (Cov[·]_ii − 1)²,     λ_d = lambda_d_factor · λ_od,

on the covariance, over the minibatch, of

  DIP-VAE-I:   the posterior means, Cov_p(x)[μ(x)]                       [1, eq. 6]
  DIP-VAE-II:  z under q(z), E_p(x)[Σ(x)] + Cov_p(x)[μ(x)]               [1, eq. 7]

(Σ(x) = diag σ²(x), the posterior's covariance). The covariance is the batch's (divided by B,
as disentanglement_lib [2]); the penalty is one number per batch, added to every example's loss,
so the loop's sum over the global batch divided by its size adds it once per replica's batch.

References:
  [1]: Kumar, Sattigeri & Balakrishnan. Variational Inference of Disentangled Latent Concepts
       from Unlabeled Observations. ICLR 2018.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
       Disentangled Representations. ICML 2019 (disentanglement_lib, `methods/unsupervised/vae.py`).
"""

import keras
import tensorflow as tf

from kerasvae.models import priors as priors_lib
from kerasvae.models.autoencoders import VAE
from kerasvae.models.autoencoders import check_number


def covariance_of_means(mean):
  """Cov_p(x)[μ(x)] over the batch: E[μ μᵀ] − E[μ] E[μ]ᵀ, divided by B. [B, D] → [D, D]."""
  centred = mean - tf.reduce_mean(mean, axis=0, keepdims=True)  # [B, D]
  return tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(mean)[0], mean.dtype)


def covariance_penalty(covariance, lambda_od, lambda_d):
  """λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²: how far `covariance` [D, D] is from I. A scalar."""
  diagonal = tf.linalg.diag_part(covariance)  # [D]
  off_diagonal = covariance - tf.linalg.diag(diagonal)  # [D, D]
  return (lambda_od * tf.reduce_sum(tf.square(off_diagonal))
          + lambda_d * tf.reduce_sum(tf.square(diagonal - 1.0)))


class DIPVAE(VAE):
  """The DIP-VAE loss; the variants differ only in the covariance they penalise (`covariance`).

  The loss per example is

    loss = -E_q[log p(x|z)] + α·KL(q(z|x) ‖ p(z)) + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)²,

  with α = `kl_weight` (1 in [1] and disentanglement_lib; a KL warm-up ramps it) and C the
  variant's covariance on the batch. `elbo` and the IWAE bound are the VAE's. The prior is
  N(0, I), whose covariance the penalty matches.

  Args:
    lambda_od: λ_od ≥ 0, the weight of the off-diagonal entries.
    lambda_d_factor: λ_d / λ_od ≥ 0, so that λ_d = lambda_d_factor · lambda_od.
    Other arguments: see `VAE` (its `prior` must be "gaussian").
  """

  def __init__(self, input_shape, latent_dim, lambda_od=10.0, lambda_d_factor=10.0, **kwargs):
    super().__init__(input_shape, latent_dim, **kwargs)
    if not isinstance(self.prior, priors_lib.StandardGaussianPrior):
      raise ValueError("Expected prior='gaussian': the DIP penalty matches the covariance of "
                       "q(z) to the identity, the covariance of N(0, I). Received: "
                       f"prior={type(self.prior).__name__}")
    self.lambda_od = check_number(lambda_od, "lambda_od")
    self.lambda_d_factor = check_number(lambda_d_factor, "lambda_d_factor")

  @property
  def lambda_d(self):
    """λ_d = lambda_d_factor · λ_od."""
    return self.lambda_d_factor * self.lambda_od

  @staticmethod
  def settings_arguments(settings, steps_per_epoch=1):
    """The constructor arguments of a DIP-VAE settings block."""
    return dict(VAE.settings_arguments(settings, steps_per_epoch), lambda_od=settings.lambda_od,
                lambda_d_factor=settings.lambda_d_factor)

  def covariance(self, mean, log_var):
    """The covariance the variant penalises, from the batch's posteriors [B, D] → [D, D]."""
    raise NotImplementedError

  def dip_regularizer(self, mean, log_var):
    """The penalty on the batch's posteriors (means and log-variances [B, D]): a scalar."""
    return covariance_penalty(self.covariance(mean, log_var), self.lambda_od, self.lambda_d)

  def loss_terms(self, x, training=False, step=None, seed=None):
    terms = super().loss_terms(x, training=training, step=step, seed=seed)  # rec + α·KL
    penalty = self.dip_regularizer(terms["mean"], terms["log_var"])  # []
    penalty = tf.fill(tf.shape(terms["loss"]), penalty)  # [B]: every example carries it
    terms.update(loss=terms["loss"] + penalty, dip_regularizer=penalty)
    return terms

  def get_config(self):
    config = super().get_config()
    config.update(lambda_od=self.lambda_od, lambda_d_factor=self.lambda_d_factor)
    return config


# -- DIP-VAE-I ------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerasvae")
class DIPVAEI(DIPVAE):
  """DIP-VAE-I [1]: penalises the covariance of the posterior means, Cov_p(x)[μ(x)].

  disentanglement_lib's study uses λ_od ∈ {1, 2, 5, 10, 20, 50} and λ_d = 10·λ_od.

  Example:
    >>> model = DIPVAEI((64, 64, 1), latent_dim=10, lambda_od=10.0, lambda_d_factor=10.0)
    >>> terms = model.loss_terms(images)  # loss, reconstruction, kl, dip_regularizer, ...
  """

  def covariance(self, mean, log_var):
    del log_var
    return covariance_of_means(mean)  # [D, D]


# -- DIP-VAE-II -----------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerasvae")
class DIPVAEII(DIPVAE):
  """DIP-VAE-II [1]: penalises the covariance of z under q(z), E_p(x)[Σ(x)] + Cov_p(x)[μ(x)].

  The posterior variances count too, so a code cannot meet the penalty with means of unit
  variance and noise on top. disentanglement_lib's study uses λ_od ∈ {1, 2, 5, 10, 20, 50} and
  λ_d = λ_od (`lambda_d_factor` 1, this class's default).

  Example:
    >>> model = DIPVAEII((64, 64, 1), latent_dim=10, lambda_od=10.0)
  """

  def __init__(self, input_shape, latent_dim, lambda_d_factor=1.0, **kwargs):
    super().__init__(input_shape, latent_dim, lambda_d_factor=lambda_d_factor, **kwargs)

  def covariance(self, mean, log_var):
    mean_variance = tf.reduce_mean(tf.exp(log_var), axis=0)  # [D]: E_p(x)[Σ(x)]'s diagonal
    return tf.linalg.diag(mean_variance) + covariance_of_means(mean)  # [D, D]
