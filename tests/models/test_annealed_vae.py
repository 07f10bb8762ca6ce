"""AnnealedVAE: the loss against numpy along the capacity's ramp, and the ramp's settings
(tests/models/test_kinds_on_the_contract.py trains it through the loop, which logs C)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasvae import config as config_lib
from kerasvae.config import ConfigError
from kerasvae.models import annealed_vae
from kerasvae.steps import common
from kerasvae.steps import configs


def test_the_loss_against_numpy_along_the_capacitys_ramp():
  keras.utils.set_random_seed(0)
  model = annealed_vae.AnnealedVAE((4, 4, 1), 3, hidden_units=(8,), gamma=50.0,
                                   max_capacity=4.0, capacity_steps=100)
  x = np.random.default_rng(1).uniform(size=(6, 4, 4, 1)).astype("float32")
  mean, log_var = (t.numpy().astype(np.float64) for t in model.posterior_params(x))
  eps = tf.random.stateless_normal([6, 3], seed=[7, 0]).numpy()  # the draw of seed 7
  z = mean + np.exp(0.5 * log_var) * eps  # [B, D]
  logits = model.decode(tf.constant(z, tf.float32)).numpy().reshape(6, -1).astype(np.float64)
  flat = x.reshape(6, -1).astype(np.float64)
  reconstruction = np.sum(np.logaddexp(0, logits) - flat * logits, -1)  # Bernoulli −log p
  kl = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, -1)  # [B], to N(0, I)
  signs = set()
  for step, capacity in [(0, 0.0), (25, 1.0), (50, 2.0), (100, 4.0), (400, 4.0), (None, 4.0)]:
    terms = model.loss_terms(x, training=True, step=step, seed=7)
    penalty = 50.0 * abs(kl.mean() - capacity)  # γ·|KL̄ − C|, the batch's mean KL
    np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], reconstruction + penalty, rtol=1e-5)
    np.testing.assert_allclose(terms["weighted_kl"], np.full(6, penalty), rtol=1e-5)
    assert float(terms["capacity"]) == pytest.approx(capacity)
    assert float(model.scheduled_values(step)["capacity"]) == pytest.approx(capacity)
    signs.add(np.sign(kl.mean() - capacity))
  assert signs == {-1.0, 1.0}  # the ramp passes the KL: both sides of |KL̄ − C| are checked


def _model_config(block):
  return config_lib.from_dict(configs.ModelConfig, {"kind": "annealed_vae", "latent_dim": 2,
                                                    "annealed_vae": block}, where="model")


def test_the_ramp_is_given_in_steps_or_in_epochs():
  def ramp(block, steps_per_epoch=4):
    return common.build_model(_model_config(block), (4, 4, 1),
                              steps_per_epoch=steps_per_epoch).capacity_steps

  assert ramp({}) == 100_000  # disentanglement_lib's
  assert ramp({"capacity_steps": 30}) == 30
  assert ramp({"capacity_epochs": 2.5}) == 10
  with pytest.raises(ConfigError, match=r"model\.annealed_vae\.capacity_epochs: expected the "
                     r"capacity's ramp in steps or in epochs, not both"):
    _model_config({"capacity_steps": 30, "capacity_epochs": 2.5})
  # γ and the capacity replace the VAE's KL weight: none is accepted.
  with pytest.raises(ConfigError, match=r"model\.annealed_vae: unknown key 'kl_weight'"):
    _model_config({"kl_weight": 4.0})
  with pytest.raises(ValueError, match="Expected no kl_weight"):
    annealed_vae.AnnealedVAE((4, 4, 1), 2, kl_weight=4.0)
