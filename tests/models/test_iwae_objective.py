"""The IWAE kind's training loss: a numpy logsumexp of the importance weights on fixed draws,
and k = 1 is the negative one-sample ELBO (tests/models/test_kinds_on_the_contract.py trains,
round-trips and exports it)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasvae.models import iwae


def _log_normal(v, mean, log_var):
  return np.sum(-0.5 * (np.log(2 * np.pi) + log_var + (v - mean) ** 2 / np.exp(log_var)), -1)


def test_the_loss_is_a_logsumexp_of_the_importance_weights():
  """−loss = logsumexp_i(log p(x|z_i) + log p(z_i) − log q(z_i|x)) − log k, in float64 numpy on
  the k draws of the seed, for a Gaussian-prior Bernoulli IWAE."""
  keras.utils.set_random_seed(0)
  k, batch, d = 7, 3, 2
  model = iwae.IWAE((4, 4, 1), d, hidden_units=(8,), num_samples=k)
  x = np.random.default_rng(1).uniform(size=(batch, 4, 4, 1)).astype("float32")
  eps = tf.random.stateless_normal([k, batch, d], seed=[5, 0]).numpy()  # the draws of seed 5
  mean, log_var = (t.numpy().astype(np.float64) for t in model.posterior_params(x))
  z = mean + np.exp(0.5 * log_var) * eps  # [k, B, D]: every example its own draws
  logits = model.decode(tf.constant(z.reshape(-1, d), tf.float32)).numpy()
  logits = logits.reshape(k, batch, -1).astype(np.float64)
  flat = x.reshape(batch, -1).astype(np.float64)
  log_px_z = np.sum(flat * logits - np.logaddexp(0, logits), -1)  # [k, B], Bernoulli
  log_w = log_px_z + _log_normal(z, 0.0, 0.0) - _log_normal(z, mean, log_var)  # [k, B]
  expected = np.logaddexp.reduce(log_w, 0) - np.log(k)  # [B]
  terms = model.loss_terms(x, training=True, seed=5)
  np.testing.assert_allclose(terms["loss"], -expected, rtol=1e-5)
  np.testing.assert_allclose(terms["iwae_bound"], expected, rtol=1e-5)
  # The logged one-sample terms are the first draw's: −log p(x|z_1) and the analytic KL.
  np.testing.assert_allclose(terms["reconstruction"], -log_px_z[0], rtol=1e-5)
  kl = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, -1)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
  # The bound lies above the mean of its one-sample ELBOs (Jensen), here on fixed draws.
  assert np.all(expected >= log_w.mean(0))


@pytest.mark.parametrize("prior", [{"name": "gmm", "num_components": 3}, "gaussian"])
def test_one_sample_is_the_negative_one_sample_elbo(prior):
  keras.utils.set_random_seed(2)
  model = iwae.IWAE((4, 4, 1), 2, hidden_units=(8,), num_samples=1, prior=prior)
  x = np.random.default_rng(3).uniform(size=(4, 4, 4, 1)).astype("float32")
  terms = model.loss_terms(x, training=True, seed=9)
  elbo = model.elbo(x, seed=9)  # the VAE's one-sample ELBO on the same draw
  np.testing.assert_allclose(terms["reconstruction"], elbo["reconstruction"], rtol=1e-6)
  if prior == "gaussian":
    # The VAE's KL is analytic here; the bound's is log q(z_1|x) − log p(z_1) at the draw.
    mean, log_var = (t.numpy().astype(np.float64) for t in model.posterior_params(x))
    z = mean + np.exp(0.5 * log_var) * tf.random.stateless_normal([4, 2], seed=[9, 0]).numpy()
    kl = _log_normal(z, mean, log_var) - _log_normal(z, 0.0, 0.0)
    np.testing.assert_allclose(terms["loss"], elbo["reconstruction"].numpy() + kl, rtol=1e-5)
  else:  # the mixture's KL is that one-sample estimate too: the losses are the same numbers
    np.testing.assert_allclose(terms["loss"], -elbo["elbo"], rtol=1e-5)


def test_num_samples_and_the_kl_weight_are_checked():
  with pytest.raises(ValueError, match=r"Expected num_samples to be an integer >= 1\. "
                     r"Received: num_samples=0"):
    iwae.IWAE((4, 4, 1), 2, num_samples=0)
  with pytest.raises(ValueError, match="Expected no kl_weight"):
    iwae.IWAE((4, 4, 1), 2, kl_weight=2.0)
