"""The mathematics of posteriors, priors and likelihoods against independent computations."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from kerasvae.models import distributions
from kerasvae.models import likelihoods
from kerasvae.models import priors

tfd = tfp.distributions


def test_analytic_kl_matches_monte_carlo_and_tfp():
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(4, 3))
  log_var = rng.normal(scale=0.5, size=(4, 3))
  analytic = distributions.kl_diagonal_gaussian_to_standard(mean, log_var).numpy()
  # Monte Carlo in float64: E_q[log q(z) - log p(z)] with 400k draws.
  std = np.exp(0.5 * log_var)
  z = mean + std * rng.normal(size=(400_000, 4, 3))
  log_q = scipy.stats.norm.logpdf(z, mean, std).sum(-1)
  log_p = scipy.stats.norm.logpdf(z).sum(-1)
  mc = (log_q - log_p).mean(0)
  np.testing.assert_allclose(analytic, mc, atol=0.02)
  q = distributions.diagonal_gaussian(mean, log_var)
  p = tfd.MultivariateNormalDiag(loc=tf.zeros(3, tf.float64))
  np.testing.assert_allclose(analytic, tfd.kl_divergence(q, p).numpy(), rtol=1e-10)
  np.testing.assert_allclose(analytic, distributions.kl_per_dimension(mean, log_var).numpy().sum(-1))


def test_fused_gaussian_log_prob_matches_scipy():
  rng = np.random.default_rng(1)
  z, mean, log_var = rng.normal(size=(3, 5, 4))
  expected = scipy.stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(-1)
  np.testing.assert_allclose(distributions.diagonal_gaussian_log_prob(z, mean, log_var), expected,
                             rtol=1e-10)


def test_standard_prior_kl_is_analytic_and_log_prob_matches_scipy():
  prior = priors.StandardGaussianPrior(latent_dim=3)
  assert prior.analytic_kl
  z = np.random.default_rng(2).normal(size=(6, 3)).astype("float32")
  np.testing.assert_allclose(prior.log_prob(z), scipy.stats.norm.logpdf(z).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(prior.log_prob(z), prior.distribution().log_prob(z), rtol=1e-5)


def test_mixture_prior_log_prob_equals_handwritten_logsumexp():
  prior = priors.GaussianMixturePrior(latent_dim=2, num_components=3, seed=0)
  rng = np.random.default_rng(3)
  prior.logits.assign(rng.normal(size=3).astype("float32"))
  prior.raw_scales.assign(rng.normal(size=(3, 2)).astype("float32"))
  z = rng.normal(size=(7, 2))
  weights = scipy.special.log_softmax(prior.logits.numpy().astype("float64"))
  means = prior.means.numpy().astype("float64")
  scales = np.log1p(np.exp(prior.raw_scales.numpy().astype("float64")))
  # log p(z) = logsumexp_k [log pi_k + sum_d log N(z_d; mu_kd, s_kd)]
  per_component = scipy.stats.norm.logpdf(z[:, None, :], means, scales).sum(-1) + weights
  expected = scipy.special.logsumexp(per_component, axis=1)
  np.testing.assert_allclose(prior.log_prob(z.astype("float32")), expected, rtol=1e-4)
  assert not prior.analytic_kl


def _direct_mixture_log_prob(z, means, log_vars, log_weights):
  """The [..., C, D] broadcast in float64: what mixture_log_prob computes by matmuls."""
  z = np.asarray(z, np.float64)[..., None, :]
  per_component = -0.5 * np.sum(math.log(2 * math.pi) + log_vars
                                + (z - means) ** 2 * np.exp(-log_vars), axis=-1)
  return scipy.special.logsumexp(per_component + log_weights, axis=-1)


# float32 inputs are rounded before the computation (about 3e-6 nats here); a quadratic form
# summed in float32 would be off by up to 5e-4 nats on these points.
@pytest.mark.parametrize("dtype,atol", [("float64", 1e-10), ("float32", 2e-5)])
def test_mixture_log_prob_by_matmuls_equals_the_direct_computation(dtype, atol):
  # IWAE shapes: [S, B, D] samples, C components with variances from 1e-3 to 7 and means
  # away from the origin, where the expanded square cancels most.
  rng = np.random.default_rng(7)
  samples, batch, depth, components = 6, 5, 8, 50
  means = rng.normal(scale=2.0, size=(components, depth))
  log_vars = rng.uniform(math.log(1e-3), 2.0, size=(components, depth))
  log_weights = scipy.special.log_softmax(rng.normal(size=components))
  near = means[rng.integers(components, size=(samples, batch))]  # some z close to a component
  z = near + rng.normal(scale=0.05, size=(samples, batch, depth))
  z[:3] = rng.normal(scale=2.0, size=(3, batch, depth))
  expected = _direct_mixture_log_prob(z, means, log_vars, log_weights)  # [S, B]
  cast = lambda a: tf.constant(a, dtype)  # noqa: E731
  got = priors.mixture_log_prob(cast(z), cast(means), cast(log_vars), cast(log_weights)).numpy()
  assert got.shape == (samples, batch) and got.dtype == np.dtype(dtype)
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=atol)


def test_mixture_priors_log_prob_on_iwae_shaped_samples():
  rng = np.random.default_rng(8)
  gmm = priors.GaussianMixturePrior(latent_dim=4, num_components=6, seed=0)
  gmm.raw_scales.assign(rng.normal(size=(6, 4)).astype("float32"))
  scales = np.log1p(np.exp(gmm.raw_scales.numpy().astype("float64"))) + 1e-6
  z = rng.normal(size=(3, 2, 4)).astype("float32")
  expected = _direct_mixture_log_prob(z, gmm.means.numpy(), 2 * np.log(scales),
                                      scipy.special.log_softmax(gmm.logits.numpy()))
  np.testing.assert_allclose(gmm.log_prob(z), expected, rtol=1e-5)
  np.testing.assert_allclose(gmm.log_prob(z), gmm.distribution().log_prob(z), rtol=1e-5)


def test_vamp_prior_with_one_pseudo_input_is_that_posterior():
  prior = priors.VampPrior(latent_dim=2, data_shape=(2, 2, 1), num_components=1, seed=0)
  prior.pseudo_inputs.assign(np.full((1, 2, 2, 1), 0.3, "float32"))

  def encoder(x):  # a fixed linear "encoder": mean = sum(x) * [1, -2], log_var = [0.1, -0.3]
    s = tf.reduce_sum(x, axis=[1, 2, 3])[:, None]
    return s * tf.constant([1.0, -2.0]), tf.zeros_like(s) + tf.constant([0.1, -0.3])

  z = np.random.default_rng(4).normal(size=(5, 2)).astype("float32")
  expected = scipy.stats.norm.logpdf(z, [1.2, -2.4], np.exp(0.5 * np.array([0.1, -0.3]))).sum(-1)
  np.testing.assert_allclose(prior.log_prob(z, encoder), expected, rtol=1e-5)
  np.testing.assert_allclose(prior.distribution(encoder).log_prob(z), expected, rtol=1e-5)
  with pytest.raises(ValueError, match="encoder"):
    prior.log_prob(z)


def test_vamp_prior_is_uniform_mixture_of_pseudo_input_posteriors():
  prior = priors.VampPrior(latent_dim=2, data_shape=(1, 1, 1), num_components=3, seed=0)
  prior.pseudo_inputs.assign(np.array([0.1, 0.5, 0.9], "float32").reshape(3, 1, 1, 1))

  def encoder(x):
    v = tf.reshape(x, [-1, 1])
    return tf.concat([v, -v], -1), tf.concat([v, v], -1) - 1.0

  z = np.random.default_rng(5).normal(size=(4, 2))
  u = np.array([0.1, 0.5, 0.9])
  means = np.stack([u, -u], -1)
  stds = np.exp(0.5 * (np.stack([u, u], -1) - 1.0))
  comp = scipy.stats.norm.logpdf(z[:, None, :], means, stds).sum(-1)
  expected = scipy.special.logsumexp(comp, axis=1) - math.log(3)
  np.testing.assert_allclose(prior.log_prob(z.astype("float32"), encoder), expected, rtol=1e-5)


def test_bernoulli_nll_is_binary_cross_entropy():
  rng = np.random.default_rng(6)
  logits = rng.normal(size=(3, 4, 4, 1)).astype("float32")
  x = rng.uniform(size=(3, 4, 4, 1)).astype("float32")
  p = scipy.special.expit(logits.astype("float64"))
  expected = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum((1, 2, 3))
  lik = likelihoods.BernoulliLikelihood()
  np.testing.assert_allclose(lik.negative_log_likelihood(x, logits), expected, rtol=1e-5)
  binary = (x > 0.5).astype("float32")
  np.testing.assert_allclose(lik.negative_log_likelihood(binary, logits),
                             -lik.distribution(logits).log_prob(binary), rtol=1e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "identity"])
def test_gaussian_nll_is_scaled_squared_error_plus_normaliser(activation):
  rng = np.random.default_rng(7)
  params = rng.normal(size=(2, 3, 3, 1)).astype("float32")
  x = rng.uniform(size=(2, 3, 3, 1)).astype("float32")
  lik = likelihoods.GaussianLikelihood(scale=0.2, mean_activation=activation)
  mu = scipy.special.expit(params) if activation == "sigmoid" else params
  expected = -scipy.stats.norm.logpdf(x, mu, 0.2).sum((1, 2, 3))
  np.testing.assert_allclose(lik.negative_log_likelihood(x, params), expected, rtol=1e-5)
  np.testing.assert_allclose(-lik.distribution(params).log_prob(x), expected, rtol=1e-5)
  assert not lik.log_scale.trainable
  assert likelihoods.GaussianLikelihood(learn_scale=True).log_scale.trainable


def test_continuous_bernoulli_matches_its_normalised_density():
  rng = np.random.default_rng(8)
  logits = rng.normal(size=(2, 2, 2, 1))
  x = rng.uniform(0.01, 0.99, size=(2, 2, 2, 1))
  lam = scipy.special.expit(logits)
  # C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda)  (Loaiza-Ganem & Cunningham, 2019, eq. 7)
  log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
  expected = -(x * np.log(lam) + (1 - x) * np.log1p(-lam) + log_c).sum((1, 2, 3))
  lik = likelihoods.ContinuousBernoulliLikelihood()
  np.testing.assert_allclose(lik.negative_log_likelihood(x.astype("float32"),
                                                         logits.astype("float32")),
                             expected, rtol=1e-4)
  # Its mean is not lambda: lambda/(2 lambda - 1) + 1/(2 artanh(1 - 2 lambda)).
  expected_mean = lam / (2 * lam - 1) + 1 / (2 * np.arctanh(1 - 2 * lam))
  np.testing.assert_allclose(lik.mean(logits.astype("float32")), expected_mean, rtol=1e-4)
