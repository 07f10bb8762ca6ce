"""ELBO surgery: I(x; z) and KL(q(z) ‖ p(z)) against cases with known answers."""

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from kerasvae.metrics import elbo_surgery


def standard_normal_log_prob(z):
  return -0.5 * np.sum(np.log(2 * np.pi) + np.square(z), axis=-1)


def test_posteriors_equal_to_the_prior_carry_no_information():
  n, d = 50, 3
  out = elbo_surgery.elbo_surgery(np.zeros((n, d)), np.zeros((n, d)), standard_normal_log_prob,
                                  num_samples=4)
  assert out["mutual_information_xz"] == pytest.approx(0.0, abs=1e-12)
  assert out["marginal_kl"] == pytest.approx(0.0, abs=1e-12)
  assert out["mutual_information_bound"] == pytest.approx(np.log(n))


def test_separated_point_like_posteriors_reach_log_n():
  n, d = 64, 2
  mean = np.stack([np.arange(n) * 100.0, np.zeros(n)], axis=1)  # far apart, tiny variance
  out = elbo_surgery.elbo_surgery(mean, np.full((n, d), np.log(1e-4)), standard_normal_log_prob)
  assert out["mutual_information_xz"] == pytest.approx(np.log(n), abs=1e-9)


def test_average_kl_matches_the_analytic_kl_of_gaussian_posteriors():
  """I + marginal KL is a Monte Carlo estimate of the mean analytic KL(q(z|x) ‖ N(0, I))."""
  rng = np.random.default_rng(1)
  mean, log_var = rng.normal(size=(200, 4)), rng.normal(-1.0, 0.3, size=(200, 4))
  analytic = np.mean(0.5 * np.sum(np.exp(log_var) + np.square(mean) - 1.0 - log_var, axis=1))
  out = elbo_surgery.elbo_surgery(mean, log_var, standard_normal_log_prob, num_samples=200)
  assert out["average_kl"] == pytest.approx(analytic, rel=0.02)
  assert 0.0 < out["mutual_information_xz"] <= np.log(200)
  assert out["marginal_kl"] > 0.0


def test_one_dimensional_case_against_numerical_integration():
  """Two Gaussian posteriors in 1-D: I and the marginal KL by quadrature."""
  mean, sd = np.array([-1.0, 1.5]), np.array([0.7, 0.4])

  def q(z):  # the aggregate posterior
    return 0.5 * (norm.pdf(z, mean[0], sd[0]) + norm.pdf(z, mean[1], sd[1]))

  marginal_kl = integrate.quad(lambda z: q(z) * (np.log(q(z)) - norm.logpdf(z)), -12, 12)[0]
  information = sum(0.5 * integrate.quad(
      lambda z, i=i: norm.pdf(z, mean[i], sd[i]) * (norm.logpdf(z, mean[i], sd[i])
                                                    - np.log(q(z))), -12, 12)[0]
                    for i in range(2))
  out = elbo_surgery.elbo_surgery(mean[:, None], 2 * np.log(sd)[:, None],
                                  standard_normal_log_prob, num_samples=100000, seed=3)
  assert out["mutual_information_xz"] == pytest.approx(information, abs=0.01)
  assert out["marginal_kl"] == pytest.approx(marginal_kl, abs=0.01)


def test_pairwise_log_density_is_the_diagonal_gaussian():
  rng = np.random.default_rng(0)
  z, mean, log_var = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
  got = elbo_surgery.diagonal_gaussian_log_prob(z, mean, log_var)
  expected = np.array([[np.sum(norm.logpdf(z[m], mean[n], np.exp(0.5 * log_var[n])))
                        for n in range(4)] for m in range(3)])
  np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_bad_shapes_are_named():
  with pytest.raises(ValueError, match=r"Expected posterior means and log-variances"):
    elbo_surgery.elbo_surgery(np.zeros((3, 2)), np.zeros((3, 1)), standard_normal_log_prob)
