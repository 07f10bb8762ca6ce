"""The disentangling VAE kinds: their regularisers against numpy, and each kind through the
contract (built from its block, saved and loaded, trained by the loop, exported)."""

import math

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import serving
from kerasvae.config import ConfigError
from kerasvae.models import beta_tcvae
from kerasvae.models import dip_vae
from kerasvae.steps import common
from kerasvae.steps import configs
from kerasvae.training import LOGGED_TERMS
from tests.pipeline_helpers import tiny_trainer

# Each kind with settings that exercise its dataset-size or variant-specific paths.
KIND_BLOCKS = {
    "beta_tcvae": {"tc_weight": 4.0, "estimator": "mss"},
    "dip_vae_i": {"lambda_od": 5.0},
    "dip_vae_ii": {"lambda_od": 2.0, "lambda_d_factor": 3.0},
}


def _batch(b, d, seed):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(b, d))
  log_var = rng.uniform(-1.5, 0.5, size=(b, d))
  z = mean + np.exp(0.5 * log_var) * rng.normal(size=(b, d))
  return z, mean, log_var


# -- β-TCVAE ------------------------------------------------------------------


def _numpy_log_aggregate(z, mean, log_var, weights):
  """log Σ_j w_ij q(z_i|x_j) and Σ_d log Σ_j w_ij q(z_id|x_j), one example at a time."""
  b, d = z.shape
  joint, product = np.empty(b), np.empty(b)
  for i in range(b):
    dens = scipy.stats.norm.pdf(z[i], mean, np.exp(0.5 * log_var))  # [B (posterior j), D]
    joint[i] = np.log(np.sum(weights[i] * np.prod(dens, axis=1)))
    product[i] = np.sum(np.log(np.sum(weights[i][:, None] * dens, axis=0)))
  return joint, product


def _mss_weights(b, n):
  """Chen et al.'s stratified weights, row by row: the example's own posterior 1/N; of the
  others, the next example (i + 1 mod B) stands for the remaining (N − B + 1)/(B − 1) images,
  each other for N/(B − 1)."""
  weights = np.empty((b, b))
  for i in range(b):
    for j in range(b):
      if j == i:
        weights[i, j] = 1 / n
      elif j == (i + 1) % b:
        weights[i, j] = (n - b + 1) / (n * (b - 1))
      else:
        weights[i, j] = 1 / (b - 1)
  return weights


def test_tc_estimators_match_numpy_on_a_small_batch():
  b, d, n = 6, 3, 50
  z, mean, log_var = _batch(b, d, seed=0)
  tensors = [tf.constant(v) for v in (z, mean, log_var)]
  # MWS: the paper's formula, log Σ_j q(z_i|x_j) − log(NB) for the joint and for each latent,
  # is ours (weights 1/B, summing to 1) plus the constant (D − 1)·log N.
  dens = [scipy.stats.norm.pdf(z[i], mean, np.exp(0.5 * log_var)) for i in range(b)]  # [B, D]
  paper_mws = np.array([np.log(np.sum(np.prod(dd, 1))) - math.log(n * b)
                        - np.sum(np.log(np.sum(dd, 0)) - math.log(n * b)) for dd in dens])
  ours = beta_tcvae.kl_decomposition(*tensors, "mws")
  np.testing.assert_allclose(ours["tc"], paper_mws - (d - 1) * math.log(n), rtol=1e-10)
  joint, product = _numpy_log_aggregate(z, mean, log_var, np.full((b, b), 1 / b))
  np.testing.assert_allclose(ours["tc"], joint - product, rtol=1e-10)
  # MSS.
  weights = _mss_weights(b, n)
  np.testing.assert_allclose(weights.sum(1), 1.0)
  np.testing.assert_allclose(np.exp(beta_tcvae.log_importance_weights(b, "mss", n, tf.float64)),
                             weights, rtol=1e-12)
  ours = beta_tcvae.kl_decomposition(*tensors, "mss", n)
  joint, product = _numpy_log_aggregate(z, mean, log_var, weights)
  np.testing.assert_allclose(ours["tc"], joint - product, rtol=1e-10)
  # The three parts add up to the one-sample KL, log q(z|x) − log N(z; 0, I).
  one_sample_kl = (scipy.stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(1)
                   - scipy.stats.norm.logpdf(z).sum(1))
  np.testing.assert_allclose(ours["mutual_information"] + ours["tc"] + ours["dimension_wise_kl"],
                             one_sample_kl, rtol=1e-10)


def _gaussian_tc(cov):
  """TC of N(0, cov): Σ_d ½ log cov_dd − ½ log det cov."""
  return 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_tc_estimates_approach_the_tc_of_a_known_gaussian_as_the_batch_grows(rho):
  """Codes μ ~ N(0, C) with posteriors N(μ, 0.1·I): q(z) = N(0, C + 0.1·I), whose TC is known
  (0.55 nats for ρ = 0.9, zero for independent latents). N is a million: the data is endless."""
  cov = np.array([[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 1.0]])
  true_tc = _gaussian_tc(cov + 0.1 * np.eye(3))
  rng = np.random.default_rng(1)
  errors = {}
  for b in (32, 2048):
    mean = rng.multivariate_normal(np.zeros(3), cov, size=b)
    log_var = np.full((b, 3), math.log(0.1))
    z = mean + math.sqrt(0.1) * rng.normal(size=(b, 3))
    for estimator in beta_tcvae.ESTIMATORS:
      tc = beta_tcvae.kl_decomposition(tf.constant(z), tf.constant(mean), tf.constant(log_var),
                                       estimator, 10**6)["tc"]
      errors[estimator, b] = abs(float(tf.reduce_mean(tc)) - true_tc)
  for estimator in beta_tcvae.ESTIMATORS:
    assert errors[estimator, 2048] < 0.06, errors
    assert errors[estimator, 2048] < 0.5 * errors[estimator, 32], errors


def test_beta_tcvae_loss_is_the_vae_loss_plus_beta_minus_one_tc():
  keras.utils.set_random_seed(0)
  model = beta_tcvae.BetaTCVAE((4, 4, 1), 3, hidden_units=(8,), tc_weight=6.0)
  x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1)).astype("float32")
  terms = model.loss_terms(x)
  np.testing.assert_allclose(terms["loss"],
                             terms["reconstruction"] + terms["kl"] + 5.0 * terms["tc"], rtol=1e-5)
  # The extra terms are [B] like the logged ones; the loop logs only LOGGED_TERMS.
  assert all(terms[k].shape == (8,) for k in ("tc", "mutual_information", "dimension_wise_kl"))
  assert "tc" not in LOGGED_TERMS


@pytest.mark.parametrize("block,message", [
    ({"prior": "gmm"}, r"model\.beta_tcvae\.prior: expected 'gaussian'.*factorised prior "
     r"N\(0, I\)\. Received: prior='gmm'"),
    ({"estimator": "exact"}, r"model\.beta_tcvae\.estimator: expected one of \['mws', 'mss'\]"),
    ({"tc_weight": -1.0}, r"model\.beta_tcvae\.tc_weight: expected a value in \[0.0, inf\]"),
])
def test_beta_tcvae_settings_are_checked(block, message):
  with pytest.raises(ConfigError, match=message):
    config_lib.from_dict(configs.ModelConfig, {"kind": "beta_tcvae", "beta_tcvae": block},
                         where="model")


def test_beta_tcvae_refuses_mss_without_the_dataset_size():
  with pytest.raises(ValueError, match=r"dataset_size.*estimator='mss'.*Received: "
                     r"dataset_size=None"):
    beta_tcvae.BetaTCVAE((4, 4, 1), 2, estimator="mss")
  with pytest.raises(ValueError, match="prior='gaussian'"):
    beta_tcvae.BetaTCVAE((4, 4, 1), 2, prior="gmm")


# -- DIP-VAE -------------------------------------------------------------------

# A hand-made batch of posteriors: 5 examples, 3 latents.
DIP_MEANS = np.array([[1.0, 0.5, 0.0], [-1.0, 0.2, 0.3], [0.5, -0.5, 1.0], [-0.5, -0.2, -1.3],
                      [0.0, 0.9, 0.4]])
DIP_LOG_VARS = np.log(np.array([[0.1, 0.5, 1.0], [0.2, 0.4, 0.9], [0.3, 0.6, 1.2],
                                [0.1, 0.1, 0.5], [0.4, 0.5, 0.8]]))


def _numpy_penalty(cov, lambda_od, lambda_d):
  d = cov.shape[0]
  off = sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
  return lambda_od * off + lambda_d * sum((cov[i, i] - 1) ** 2 for i in range(d))


def _numpy_cov_of_means(mean):
  b, d = mean.shape
  centred = mean - mean.sum(0) / b
  return np.array([[sum(centred[n, i] * centred[n, j] for n in range(b)) / b for j in range(d)]
                   for i in range(d)])


def _dip(cls, **kwargs):
  return cls((4, 4, 1), 3, hidden_units=(8,), **kwargs)


def test_dip_vae_i_penalty_matches_numpy():
  model = _dip(dip_vae.DIPVAEI, lambda_od=2.0, lambda_d_factor=10.0)
  cov = _numpy_cov_of_means(DIP_MEANS)
  expected = _numpy_penalty(cov, 2.0, 20.0)
  got = model.dip_regularizer(tf.constant(DIP_MEANS), tf.constant(DIP_LOG_VARS))
  np.testing.assert_allclose(float(got), expected, rtol=1e-12)
  # Means whose batch covariance is exactly I cost nothing, whatever their variances.
  square = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
  assert float(dip_vae.covariance_penalty(dip_vae.covariance_of_means(tf.constant(square)),
                                          2.0, 20.0)) == 0.0


def test_dip_vae_ii_penalty_matches_numpy():
  model = _dip(dip_vae.DIPVAEII, lambda_od=2.0)
  assert model.lambda_d == 2.0  # lambda_d_factor 1 by default
  # Cov_q(z)[z] = E[Σ(x)] + Cov[μ(x)]: the mean posterior variance joins the diagonal.
  cov = _numpy_cov_of_means(DIP_MEANS) + np.diag(np.exp(DIP_LOG_VARS).mean(0))
  got = model.dip_regularizer(tf.constant(DIP_MEANS), tf.constant(DIP_LOG_VARS))
  np.testing.assert_allclose(float(got), _numpy_penalty(cov, 2.0, 2.0), rtol=1e-12)
  # Means of covariance I plus variances σ² cost λ_d Σ σ⁴ here, nothing to DIP-VAE-I.
  square = tf.constant([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], tf.float64)
  log_var = tf.math.log(tf.constant([[0.25, 0.5]] * 4, tf.float64))
  np.testing.assert_allclose(float(model.dip_regularizer(square, log_var)),
                             2.0 * (0.25**2 + 0.5**2), rtol=1e-12)
  assert float(_dip(dip_vae.DIPVAEI).dip_regularizer(square, log_var)) == 0.0


@pytest.mark.parametrize("cls", [dip_vae.DIPVAEI, dip_vae.DIPVAEII])
def test_dip_vae_loss_is_the_vae_loss_plus_the_penalty_of_its_batch(cls):
  keras.utils.set_random_seed(0)
  model = _dip(cls, lambda_od=3.0, lambda_d_factor=10.0)
  x = np.random.default_rng(0).uniform(size=(6, 4, 4, 1)).astype("float32")
  terms = model.loss_terms(x)
  mean, log_var = (terms[k].numpy().astype(np.float64) for k in ("mean", "log_var"))
  cov = _numpy_cov_of_means(mean)
  if cls is dip_vae.DIPVAEII:
    cov += np.diag(np.exp(log_var).mean(0))
  np.testing.assert_allclose(terms["loss"] - terms["reconstruction"] - terms["kl"],
                             _numpy_penalty(cov, 3.0, 30.0), rtol=1e-4)
  assert terms["dip_regularizer"].shape == (6,) and "dip_regularizer" not in LOGGED_TERMS


@pytest.mark.parametrize("kind", ["dip_vae_i", "dip_vae_ii"])
def test_dip_vae_settings_are_checked(kind):
  with pytest.raises(ConfigError, match=rf"model\.{kind}\.prior: expected 'gaussian'.*"
                     r"Received: prior='vamp'"):
    config_lib.from_dict(configs.ModelConfig, {"kind": kind, kind: {"prior": "vamp"}},
                         where="model")
  with pytest.raises(ConfigError, match=rf"model\.{kind}\.lambda_od: expected a value in"):
    config_lib.from_dict(configs.ModelConfig, {"kind": kind, kind: {"lambda_od": -1}},
                         where="model")
  model = common.build_model(config_lib.from_dict(
      configs.ModelConfig, {"kind": kind, "latent_dim": 2, kind: {"lambda_od": 5.0}}), (4, 4, 1))
  assert model.lambda_d == 5.0 * kinds.KINDS[kind].settings().lambda_d_factor


# -- Every kind through the contract --------------------------------------------


@pytest.mark.parametrize("kind", sorted(KIND_BLOCKS))
def test_kind_builds_saves_trains_and_exports(tmp_path, kind):
  keras.utils.set_random_seed(0)
  model_config = config_lib.from_dict(configs.ModelConfig, {
      "kind": kind, "latent_dim": 2, "hidden_units": [8], kind: KIND_BLOCKS[kind]}, where="model")
  data = np.random.default_rng(0).uniform(size=(16, 4, 4, 1)).astype("float32")
  model = common.build_model(model_config, (4, 4, 1), steps_per_epoch=2, num_train_examples=16,
                             batch_size=8)
  assert model.has_posterior
  # Trained by the loop (four steps: too few for the loss to fall reliably on noise images):
  # every logged term finite, the weights moved.
  before = [w.copy() for w in model.get_weights()]
  config = configs.TrainConfig(epochs=2, batch_size=8, progress=False)
  trainer = tiny_trainer(tmp_path / "train", config, data=data, model=model)
  history = trainer.train()
  assert int(trainer.optimizer.iterations.numpy()) == 4
  assert all(math.isfinite(v) for r in history for k, v in r.items() if k.startswith("train/"))
  assert not any(np.array_equal(a, b) for a, b in zip(before, model.get_weights()) if a.size > 1)
  # Saved and loaded by Keras.
  model.save(tmp_path / "model.keras")
  loaded = keras.saving.load_model(tmp_path / "model.keras")
  assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
  np.testing.assert_array_equal(loaded.reconstruct(data), model.reconstruct(data))
  np.testing.assert_allclose(loaded.elbo(data, seed=3)["elbo"], model.elbo(data, seed=3)["elbo"],
                             rtol=1e-6)
  # Exported with every signature (log_likelihood included) runnable after a plain load.
  path = serving.export_model(model, tmp_path / "saved_models", kind)
  served = tf.saved_model.load(str(path))
  contract = serving.signature_contract(model)
  assert "log_likelihood" in contract and sorted(served.signatures) == sorted(contract)
  inputs = {"images": tf.constant(data[:3]), "latents": tf.zeros([3, 2]),
            "num_samples": tf.constant(3), "seed": tf.constant(0)}
  for name, signature in contract.items():
    outputs = served.signatures[name](**{k: inputs[k] for k in signature["inputs"]})
    assert sorted(outputs) == sorted(signature["outputs"])
    assert all(np.all(np.isfinite(v.numpy())) for v in outputs.values()), name
