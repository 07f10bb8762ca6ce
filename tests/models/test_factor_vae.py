"""FactorVAE: the permutation of the codes, the TC estimate and D's cross-entropy against numpy,
and which objective trains which variables (tests/models/test_kinds_on_the_contract.py trains
it through the loop, moving both optimizers)."""

import keras
import numpy as np
import tensorflow as tf

from kerasvae.models import factor_vae


def _tiny(**kwargs):
  keras.utils.set_random_seed(0)
  return factor_vae.FactorVAE((4, 4, 1), 3, hidden_units=(8,), discriminator_units=5,
                              discriminator_layers=2, **kwargs)


def test_permute_dims_keeps_each_marginal_and_breaks_the_dependence():
  rng = np.random.default_rng(0)
  n = 4000
  a = rng.normal(size=n)
  # Three columns that move together: a copy and a nonlinear function of the first.
  z = np.stack([a, a, a ** 2 + 0.1 * rng.normal(size=n)], 1).astype("float32")  # [N, 3]
  permuted = factor_vae.permute_dims(tf.constant(z), seed=tf.constant([1, 2])).numpy()
  # Every column holds the same values: each marginal is kept exactly.
  np.testing.assert_array_equal(np.sort(permuted, 0), np.sort(z, 0))
  # The columns were permuted independently: they no longer move together, linearly or not.
  corr = np.corrcoef(permuted.T)
  bound = 4 / np.sqrt(n)  # four standard errors of a correlation of independent columns
  assert abs(corr[0, 1]) < bound and abs(corr[0, 2]) < bound and abs(corr[1, 2]) < bound, corr
  assert abs(np.corrcoef(permuted[:, 0] ** 2, permuted[:, 2])[0, 1]) < bound
  assert np.corrcoef(z[:, 0] ** 2, z[:, 2])[0, 1] > 0.99  # what was there before
  # Few rows keep their place, and the permutations of the copies differ.
  assert np.mean(permuted[:, 0] == z[:, 0]) < 0.01
  assert np.mean(permuted[:, 0] == permuted[:, 1]) < 0.01
  # A seed fixes the permutations.
  np.testing.assert_array_equal(
      factor_vae.permute_dims(tf.constant(z), seed=tf.constant([1, 2])), permuted)


def _numpy_discriminator(model, z):
  """D's logit in float64 from its weights: dense layers with leaky ReLUs of slope 0.2."""
  h = np.asarray(z, np.float64)
  dense = [layer for layer in model.discriminator.layers if isinstance(layer, keras.layers.Dense)]
  for i, layer in enumerate(dense):
    kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
    h = h @ kernel + bias
    if i < len(dense) - 1:
      h = np.where(h > 0, h, 0.2 * h)
  return h[:, 0]


def test_the_tc_estimate_and_the_discriminators_cross_entropy_against_numpy():
  model = _tiny(gamma=7.0, kl_weight=2.0)
  rng = np.random.default_rng(1)
  # Fixed weights large enough that D's probabilities are far from 1/2.
  model.discriminator.set_weights([rng.normal(scale=1.5, size=w.shape).astype("float32")
                                   for w in model.discriminator.get_weights()])
  x = rng.uniform(size=(6, 4, 4, 1)).astype("float32")
  terms = {k: v.numpy() for k, v in model.loss_terms(x, training=True, seed=11).items()}
  codes, permuted = terms["codes"].astype(np.float64), terms["permuted_codes"]
  np.testing.assert_array_equal(np.sort(permuted, 0), np.sort(terms["codes"], 0))

  def probability(z):  # D(z) = σ(logit)
    return 1.0 / (1.0 + np.exp(-_numpy_discriminator(model, z)))

  d_real, d_permuted = probability(codes), probability(permuted)
  assert np.all(np.abs(d_real - 0.5) > 1e-3)
  np.testing.assert_allclose(terms["total_correlation"],  # log D/(1 − D)
                             np.log(d_real) - np.log(1 - d_real), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(terms["discriminator_loss"],
                             -0.5 * (np.log(d_real) + np.log(1 - d_permuted)),
                             rtol=1e-4, atol=1e-4)
  # The codes D saw are the ones the reconstruction decoded, from q(z|x).
  logits = model.decode(tf.constant(terms["codes"])).numpy().reshape(6, -1).astype(np.float64)
  flat = x.reshape(6, -1).astype(np.float64)
  reconstruction = np.sum(np.logaddexp(0, logits) - flat * logits, -1)  # Bernoulli −log p
  mean, log_var = terms["mean"].astype(np.float64), terms["log_var"].astype(np.float64)
  kl = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, -1)
  np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-5)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
  # loss = reconstruction + β·KL + γ·TC
  tc = np.log(d_real) - np.log(1 - d_real)
  np.testing.assert_allclose(terms["loss"], reconstruction + 2.0 * kl + 7.0 * tc, rtol=1e-4)


def test_the_vae_loss_never_trains_d_and_ds_loss_never_trains_the_encoder():
  model = _tiny()
  x = np.random.default_rng(2).uniform(size=(6, 4, 4, 1)).astype("float32")
  with tf.GradientTape(persistent=True) as tape:
    terms = model.loss_terms(x, training=True, seed=3)
    loss, d_loss = tf.reduce_sum(terms["loss"]), tf.reduce_sum(terms["discriminator_loss"])
    tc = tf.reduce_sum(terms["total_correlation"])
  encoder, d = model.encoder.trainable_variables, model.discriminator.trainable_variables
  # The codes reach D's loss behind a stop-gradient: no gradient (or zeros, from the one pass
  # of D over [z; z; z̃]) for the encoder.
  assert all(g is None or not np.any(g) for g in tape.gradient(d_loss, encoder))
  assert all(g is not None for g in tape.gradient(d_loss, d))
  assert all(np.any(g) for g in tape.gradient(tc, encoder))  # the TC term reaches q(z|x)
  # The main loss's gradient reaches D, but the main optimizer never holds D's variables ...
  d_ids = {id(v) for v in d}
  assert not d_ids & {id(v) for v in model.main_trainable_variables}
  assert len(model.main_trainable_variables) + len(d) == len(model.trainable_variables)
  # ... which only their own objective, with disentanglement_lib's Adam, trains.
  [(key, variables, make_optimizer)] = model.extra_objectives()
  assert key == "discriminator_loss" and {id(v) for v in variables} == d_ids
  adam = make_optimizer()
  assert (float(adam.learning_rate), adam.beta_1, adam.beta_2, adam.epsilon) == (
      np.float32(1e-4), 0.5, 0.9, 1e-8)
