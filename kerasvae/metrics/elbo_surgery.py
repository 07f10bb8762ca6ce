"""ELBO surgery: the average KL term split into I(x; z) and the marginal KL (Hoffman & Johnson).

With the data distribution taken as uniform over N examples x_1..x_N and the
aggregate posterior q(z) = (1/N) Σ_n q(z | x_n), the KL term of the ELBO,
averaged over the data, splits exactly into two non-negative parts [1]:

    (1/N) Σ_n KL(q(z|x_n) ‖ p(z)) = I_q(x; z) + KL(q(z) ‖ p(z)),

    I_q(x; z)      = E_n E_{q(z|x_n)} [log q(z|x_n) − log q(z)]   (0 ≤ I ≤ log N)
    KL(q(z)‖p(z))  = E_{q(z)} [log q(z) − log p(z)]

The first is the information the code carries about which example it came from;
the second is how far the aggregate posterior is from the prior (what a learned
prior such as the VampPrior can reduce). Both are estimated here by Monte Carlo
over z ~ q(z|x_n), with log q(z) computed exactly over the N examples (the
empirical data distribution), as in [1] and [2].

References:
  [1]: Hoffman & Johnson. ELBO surgery: yet another way to carve up the variational
       evidence lower bound. NIPS 2016 Workshop on Advances in Approximate Bayesian Inference.
  [2]: Tomczak & Welling. VAE with a VampPrior. AISTATS 2018.
"""

import numpy as np
from scipy.special import logsumexp

LOG_2PI = float(np.log(2.0 * np.pi))


def diagonal_gaussian_log_prob(z, mean, log_var):
  """log N(z_i; mean_n, diag(exp(log_var_n))) for every pair: z [M, D], mean [N, D] → [M, N]."""
  z = np.asarray(z, np.float64)[:, None, :]  # [M, 1, D]
  mean = np.asarray(mean, np.float64)[None, :, :]  # [1, N, D]
  log_var = np.asarray(log_var, np.float64)[None, :, :]
  return -0.5 * np.sum(LOG_2PI + log_var + np.square(z - mean) * np.exp(-log_var), axis=-1)


def elbo_surgery(mean, log_var, log_prior, num_samples=1, seed=0, batch_size=256):
  """I(x; z), the marginal KL(q(z)‖p(z)) and their sum, the average KL, in nats.

  Args:
    mean: [N, D] posterior means of the N examples.
    log_var: [N, D] posterior log-variances.
    log_prior: a function z [M, D] (float64 numpy) → log p(z) [M].
    num_samples: draws of z per example.
    seed: seed of the draws (the same seed gives the same estimate).
    batch_size: codes whose log q(z) is computed at once (memory: batch × N × D floats).

  Returns:
    A dict with `mutual_information_xz` (I(x; z)), `marginal_kl`, `average_kl` (their sum, a Monte Carlo
    estimate of the ELBO's KL term averaged over the examples), `mutual_information_bound`
    (log N, the largest I(x; z) N examples allow) and `surgery_examples` (N).
  """
  mean = np.asarray(mean, np.float64)
  log_var = np.asarray(log_var, np.float64)
  if mean.ndim != 2 or mean.shape != log_var.shape or len(mean) < 2:
    raise ValueError("Expected posterior means and log-variances of the same shape [N, D] with "
                     f"N >= 2. Received: mean {mean.shape}, log_var {log_var.shape}")
  n = len(mean)
  rng = np.random.default_rng(seed)
  source = np.repeat(np.arange(n), num_samples)  # [M] the example each z is drawn for
  z = mean[source] + np.exp(0.5 * log_var[source]) * rng.standard_normal(
      (len(source), mean.shape[1]))  # [M, D]
  information, marginal = [], []
  for start in range(0, len(z), batch_size):
    batch, owner = z[start:start + batch_size], source[start:start + batch_size]
    log_q_all = diagonal_gaussian_log_prob(batch, mean, log_var)  # [b, N]
    log_q_own = log_q_all[np.arange(len(batch)), owner]  # [b] log q(z|x_own)
    log_q_marginal = logsumexp(log_q_all, axis=1) - np.log(n)  # [b] log q(z)
    information.append(log_q_own - log_q_marginal)
    marginal.append(log_q_marginal - np.asarray(log_prior(batch), np.float64))
  mutual_information = float(np.mean(np.concatenate(information)))
  marginal_kl = float(np.mean(np.concatenate(marginal)))
  return {"mutual_information_xz": mutual_information, "marginal_kl": marginal_kl,
          "average_kl": mutual_information + marginal_kl,
          "mutual_information_bound": float(np.log(n)), "surgery_examples": int(n)}


def model_elbo_surgery(model, mean, log_var, num_samples=1, seed=0):
  """`elbo_surgery` with a VAE's own prior (`model.prior.log_prob`); the posteriors given."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def log_prior(z):
    return model.prior.log_prob(tf.constant(z, tf.float32),
                                encoder=model.posterior_params).numpy()

  return elbo_surgery(mean, log_var, log_prior, num_samples=num_samples, seed=seed)
