"""β-TCVAE: a VAE whose objective weighs the total correlation of the aggregate posterior [1].

With the aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) over the N training images, the KL term of
the ELBO, averaged over the data, splits into three parts [1, eq. 2]:

  E_p(x)[KL(q(z|x) ‖ p(z))] = I_q(x; z)                     index-code mutual information
                            + KL(q(z) ‖ Π_j q(z_j))         total correlation (TC)
                            + Σ_j KL(q(z_j) ‖ p(z_j))       dimension-wise KL

(for a factorised prior p(z) = Π_j p(z_j)). β-TCVAE weighs the TC by β = `tc_weight` and the other
two by 1: the loss is reconstruction + KL + (β − 1)·TC, disentanglement_lib's form [2], with the
KL in closed form and the TC estimated on the minibatch.

Estimating q(z) on a minibatch. For each example i of a batch of B, z_i ~ q(z|x_i) and

  q(z_i) ≈ Σ_j w_ij q(z_i|x_j),      q(z_id) ≈ Σ_j w_ij q(z_id|x_j)   (each latent d),

so TC_i = log q(z_i) − Σ_d log q(z_id), and E_i[TC_i] estimates the TC. Two weightings [1, app. C]:

  mws  minibatch-weighted sampling: w_ij = 1/B. The paper writes 1/(NB): its weights sum to 1/N,
       which makes every log-density low by about log N and the TC high by the constant
       (D − 1)·log N (no effect on the gradients; disentanglement_lib drops every constant).
       With 1/B a batch of the whole data set gives q(z_i) exactly, so the estimate converges
       to the TC as the batch grows; it needs no N.
  mss  minibatch stratified sampling: the example's own posterior weighs 1/N; of the B − 1
       others, B − 2 stand for N/(B − 1) images each of the data set's other N − 1 (weight
       1/(B − 1)) and one, here the next example (i + 1 mod B), for the remaining
       (N − B + 1)/(B − 1) (weight (N − B + 1)/(N(B − 1))). Each row sums to 1, and E[q̂(z_i)]
       = q(z_i) over batches drawn without replacement. The reference code [3] builds this matrix
       with a stride that puts 1/N in the first column instead of on the diagonal
       (rtqichen/beta-tcvae pull request #1); this follows the paper.

References:
  [1]: Chen, Li, Grosse & Duvenaud. Isolating Sources of Disentanglement in Variational
       Autoencoders. NeurIPS 2018 (Appendix C: the MWS and MSS estimators).
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
       Disentangled Representations. ICML 2019 (disentanglement_lib, `methods/unsupervised/vae.py`).
  [3]: github.com/rtqichen/beta-tcvae, `vae_quant.py` and `elbo_decomposition.py`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from kerasvae.models import autoencoders
from kerasvae.models import distributions
from kerasvae.models import priors as priors_lib
from kerasvae.models.autoencoders import VAE

ESTIMATORS = ("mws", "mss")


def pairwise_log_density(z, mean, log_var):
  """log q(z_id | x_j) of every sample i under every posterior j, per latent d.

  Args:
    z: samples [B, D], z_i ~ q(z|x_i).
    mean, log_var: the posteriors' parameters [B, D] each.

  Returns:
    [B, B, D], indexed [i (sample), j (posterior), d].
  """
  diff = z[:, None, :] - mean[None, :, :]  # [B, B, D]
  return -0.5 * (distributions.LOG_2PI + log_var[None] + tf.square(diff) * tf.exp(-log_var[None]))


def log_importance_weights(batch_size, estimator, dataset_size=None, dtype=tf.float32):
  """The log-weights log w_ij of q(z_i | x_j) in the estimate q(z_i) ≈ Σ_j w_ij q(z_i | x_j).

  Args:
    batch_size: B, an integer or a scalar integer tensor.
    estimator: "mws" (w_ij = 1/B) or "mss" (see the module docstring).
    dataset_size: N, the training-split size ("mss" only). A batch larger than N counts N as B.
    dtype: of the result.

  Returns:
    [B, B] log-weights; every row's weights sum to 1.
  """
  b = tf.cast(batch_size, dtype)
  if estimator == "mws":
    return -tf.math.log(b) * tf.ones(tf.stack([batch_size, batch_size]), dtype)
  if estimator != "mss":
    raise ValueError(f"Expected estimator to be one of {list(ESTIMATORS)}. "
                     f"Received: estimator={estimator!r}")
  n = tf.maximum(tf.cast(dataset_size, dtype), b)
  others = tf.maximum(b - 1.0, 1.0)  # B − 1 (a batch of one has no others)
  own = tf.eye(batch_size, dtype=dtype)  # [B, B]
  next_one = tf.roll(own, shift=1, axis=1) * (1.0 - own)  # (i, i + 1 mod B)
  rest = 1.0 - own - next_one
  weights = own / n + next_one * (n - b + 1.0) / (n * others) + rest / others  # [B, B], > 0
  return tf.math.log(weights)


def aggregate_log_densities(z, mean, log_var, estimator, dataset_size=None):
  """Minibatch estimates of the aggregate posterior's log-densities at each sample.

  Args:
    z: samples [B, D], z_i ~ q(z|x_i).
    mean, log_var: the posteriors' parameters [B, D] each.
    estimator: "mws" or "mss" (`log_importance_weights`).
    dataset_size: N ("mss").

  Returns:
    (log q(z_i) [B], Σ_d log q(z_id) [B]).
  """
  log_q = pairwise_log_density(z, mean, log_var)  # [B, B, D]
  log_w = log_importance_weights(tf.shape(z)[0], estimator, dataset_size, z.dtype)  # [B, B]
  log_joint = tf.reduce_logsumexp(log_w + tf.reduce_sum(log_q, axis=2), axis=1)  # [B]
  log_marginals = tf.reduce_logsumexp(log_w[:, :, None] + log_q, axis=1)  # [B, D]
  return log_joint, tf.reduce_sum(log_marginals, axis=1)


def kl_decomposition(z, mean, log_var, estimator, dataset_size=None):
  """The three parts of KL(q(z|x) ‖ N(0, I)) at each sample [1, eq. 2], estimated on the batch.

  Returns:
    A dict of [B] tensors whose batch means estimate the parts: `mutual_information`
    (log q(z_i|x_i) − log q(z_i)), `tc` (log q(z_i) − Σ_d log q(z_id)) and `dimension_wise_kl`
    (Σ_d log q(z_id) − log N(z_i; 0, I)). Each example's three parts sum to its one-sample
    estimate of the KL, log q(z_i|x_i) − log N(z_i; 0, I).
  """
  log_joint, log_product = aggregate_log_densities(z, mean, log_var, estimator, dataset_size)
  log_posterior = distributions.diagonal_gaussian_log_prob(z, mean, log_var)  # [B]
  log_prior = -0.5 * tf.reduce_sum(distributions.LOG_2PI + tf.square(z), axis=-1)  # [B]
  return {"mutual_information": log_posterior - log_joint, "tc": log_joint - log_product,
          "dimension_wise_kl": log_product - log_prior}


@keras.saving.register_keras_serializable(package="kerasvae")
class BetaTCVAE(VAE):
  """β-TCVAE [1]: the VAE loss plus (β − 1) times a minibatch estimate of the total correlation.

  The loss per example is

    loss = -E_q[log p(x|z)] + α·KL(q(z|x) ‖ p(z)) + (β − α)·TC,

  i.e. α·(MI + dimension-wise KL) + β·TC, with β = `tc_weight` and α = `kl_weight` (1 in [1]
  and disentanglement_lib: reconstruction + KL + (β − 1)·TC; a KL warm-up ramps α). The TC of an
  example is estimated from its own draw z ~ q(z|x) against the batch's posteriors
  (`kl_decomposition`). `elbo` and the IWAE bound are the VAE's: β-TCVAE changes the training
  objective, not the model. The prior is N(0, I): the decomposition needs a factorised prior.

  Args:
    tc_weight: β ≥ 0 (1 is the VAE).
    estimator: "mws" (minibatch-weighted sampling) or "mss" (minibatch stratified sampling).
    dataset_size: N, the number of training images (needed by "mss").
    Other arguments: see `VAE` (its `prior` must be "gaussian").

  Example:
    >>> model = BetaTCVAE((64, 64, 1), latent_dim=10, tc_weight=6.0, estimator="mss",
    ...                   dataset_size=737_280)
    >>> terms = model.loss_terms(images)  # loss, reconstruction, kl, tc, mutual_information, ...
  """

  def __init__(self, input_shape, latent_dim, tc_weight=6.0, estimator="mws", dataset_size=None,
               **kwargs):
    super().__init__(input_shape, latent_dim, **kwargs)
    if not isinstance(self.prior, priors_lib.StandardGaussianPrior):
      raise ValueError("Expected prior='gaussian': the total correlation's decomposition of the "
                       "KL assumes the factorised prior N(0, I). Received: "
                       f"prior={type(self.prior).__name__}")
    if (not isinstance(tc_weight, (int, float, np.number)) or isinstance(tc_weight, bool)
        or not math.isfinite(tc_weight) or tc_weight < 0):
      raise ValueError(f"Expected tc_weight to be a number >= 0. Received: tc_weight={tc_weight}")
    if estimator not in ESTIMATORS:
      raise ValueError(f"Expected estimator to be one of {list(ESTIMATORS)}. "
                       f"Received: estimator={estimator!r}")
    if dataset_size is not None and (not isinstance(dataset_size, (int, np.integer))
                                     or isinstance(dataset_size, bool) or dataset_size < 1):
      raise ValueError("Expected dataset_size to be an integer >= 1 or None. "
                       f"Received: dataset_size={dataset_size!r}")
    if estimator == "mss" and dataset_size is None:
      raise ValueError("Expected dataset_size (N, the number of training images) with "
                       "estimator='mss': its weights depend on it. Received: dataset_size=None")
    self.tc_weight = float(tc_weight)
    self.estimator = estimator
    self.dataset_size = None if dataset_size is None else int(dataset_size)

  @staticmethod
  def settings_arguments(settings, steps_per_epoch=1):
    """The constructor arguments of a `BetaTCVAESettings` block (N comes from the data)."""
    return dict(VAE.settings_arguments(settings, steps_per_epoch), tc_weight=settings.tc_weight,
                estimator=settings.estimator)

  @classmethod
  def from_settings(cls, settings, network, data=None):
    steps_per_epoch = data.steps_per_epoch if data is not None else 1
    dataset_size = data.num_train_examples if data is not None else None
    return cls(**network, **cls.settings_arguments(settings, steps_per_epoch),
               dataset_size=dataset_size)

  def loss_terms(self, x, training=False, step=None, seed=None):
    elbo_seed = tc_seed = None
    if seed is not None:  # one stateless seed each for the ELBO's z and the TC's z
      elbo_seed, tc_seed = tf.unstack(tf.random.experimental.stateless_split(
          distributions.stateless_seed(seed), 2))
    terms = super().loss_terms(x, training=training, step=step, seed=elbo_seed)  # rec + α·KL
    mean, log_var = terms["mean"], terms["log_var"]  # [B, D] each
    z = distributions.reparameterized_sample(mean, log_var, seed=tc_seed)  # [B, D]
    parts = kl_decomposition(z, mean, log_var, self.estimator, self.dataset_size)  # [B] each
    tc_extra = (self.tc_weight - terms["kl_weight"]) * parts["tc"]  # [B]
    terms.update(parts, loss=terms["loss"] + tc_extra)
    return terms

  def get_config(self):
    config = super().get_config()
    config.update(tc_weight=self.tc_weight, estimator=self.estimator,
                  dataset_size=self.dataset_size)
    return config
