"""The model-kind contract: one registry, one settings block per kind, declared capabilities
instead of hasattr, extra objectives stepped by the training loop, one IWAE estimator."""

import ast
import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import models
from kerasvae import serving
from kerasvae.config import ConfigError
from kerasvae.metrics import iwae
from kerasvae.metrics import likelihood
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import tiny_trainer

PACKAGE = Path(__file__).resolve().parents[2] / "kerasvae"


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_kind_is_built_from_its_block_through_the_registry(kind):
  config = config_lib.from_dict(configs.ModelConfig, {"kind": kind, "latent_dim": 3,
                                                      "hidden_units": [16]}, where="model")
  assert isinstance(config.settings, kinds.KINDS[kind].settings)
  model = common.build_model(config, (8, 8, 1))
  cls = kinds.get(kind).model_class()
  assert type(model) is cls and models.MODELS[kind] is cls  # pylint: disable=unidiomatic-typecheck
  assert model.sample(2, seed=0).shape == (2, 8, 8, 1)
  # Every random draw of a training step comes from the seed the training loop passes.
  x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype("float32")
  seed = tf.constant([3, 4], tf.int32)
  first, again = (model.loss_terms(x, training=True, step=0, seed=seed)["loss"].numpy()
                  for _ in range(2))
  np.testing.assert_array_equal(first, again)
  # Only the chosen kind's block is part of the config (and of its fingerprint).
  assert set(config_lib.to_dict(config)) & set(kinds.KINDS) == {kind}


def test_a_block_of_another_kind_is_refused_by_name():
  with pytest.raises(ConfigError, match=r"^model\.noisy_autoencoder: expected no settings of "
                     r"model\.kind=noisy_autoencoder in a model of kind 'vae'.*noise_factor.*"
                     r"--set model\.noisy_autoencoder=null"):
    config_lib.from_dict(configs.ModelConfig, {"kind": "vae", "noisy_autoencoder": {
        "noise_factor": 0.1}}, where="model")
  # The same block on its own kind is read.
  noisy = config_lib.from_dict(configs.ModelConfig, {"kind": "noisy_autoencoder",
                                                     "noisy_autoencoder": {"noise_factor": 0.1}})
  assert noisy.settings.noise_factor == 0.1


@pytest.mark.parametrize("key,where", [("kl_weight", "model.vae.kl_weight"),
                                       ("noise_factor", "model.noisy_autoencoder.noise_factor"),
                                       ("reconstruction_loss",
                                        "model.autoencoder.reconstruction_loss or "
                                        "model.noisy_autoencoder.reconstruction_loss")])
def test_a_key_of_the_flat_layout_says_where_it_moved(key, where):
  with pytest.raises(ConfigError, match=f"unknown key '{key}': it moved into the block of its "
                     f"kind, {where}"):
    config_lib.from_dict(configs.ModelConfig, {key: 1.0}, where="model")


def test_an_unknown_key_in_a_block_lists_that_kinds_keys():
  with pytest.raises(ConfigError, match=r"model\.vae: unknown key 'noise_factor'.*Valid keys: "
                     r"gaussian_scale, kl_warmup_epochs, kl_weight"):
    config_lib.from_dict(configs.ModelConfig, {"vae": {"noise_factor": 0.1}}, where="model")


def _hasattr_on_a_model(path):
  """Calls `hasattr(model..., ...)` / `hasattr(self.model, ...)` in a source file."""
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr" and node.args:
      target = ast.unparse(node.args[0])
      if target in ("model", "self.model", "ref()") or target.endswith(".model"):
        found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
  return found


def test_steps_training_serving_and_metrics_never_ask_a_model_with_hasattr():
  files = ([PACKAGE / "serving.py"] + sorted((PACKAGE / "training").glob("*.py"))
           + sorted((PACKAGE / "steps").glob("*.py")) + sorted((PACKAGE / "metrics").glob("*.py")))
  assert [f for path in files for f in _hasattr_on_a_model(path)] == []


def test_the_declarations_of_the_kinds():
  assert models.VAE.has_posterior and not models.Autoencoder.has_posterior
  assert models.VAE.not_applicable_metrics == ()
  assert {"elbo", "kl", "iwae_log_likelihood"} <= set(models.Autoencoder.not_applicable_metrics)
  vamp = common.build_model(config_lib.from_dict(configs.ModelConfig, {"vae": {
      "prior": "vamp", "num_components": 7, "vamp_init_from_data": True}}), (4, 4, 1))
  assert vamp.prepare_examples == 5000  # max(5000, K) training images start the pseudo-inputs
  images = np.random.default_rng(0).uniform(size=(20, 4, 4, 1)).astype("float32")
  vamp.prepare(images, seed=1)
  # Every pseudo-input is now one of the training images.
  pseudo = vamp.prior.pseudo_inputs.numpy().reshape(7, 1, -1)
  assert np.all(np.any(np.all(pseudo == images.reshape(1, 20, -1), -1), -1))
  assert common.build_model(configs.ModelConfig(), (4, 4, 1)).prepare_examples == 0
  ae = common.build_model(configs.ModelConfig(kind="autoencoder"), (4, 4, 1))
  assert ae.finalize_examples > 0
  ae.finalize(images)
  codes = ae.encode_mean(images).numpy()
  np.testing.assert_allclose(ae.code_mean.numpy(), codes.mean(0), atol=1e-5)


@keras.saving.register_keras_serializable(package="kerasvae_tests")
class AdversarialAutoencoder(models.Autoencoder):
  """An autoencoder with an adversary that tells its codes from N(0, I) draws: a second
  objective with its own optimizer, as FactorVAE's discriminator."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.adversary = keras.Sequential([keras.Input((self.latent_dim,)), keras.layers.Dense(1)])

  def loss_terms(self, x, training=False, step=None, seed=None):
    terms = super().loss_terms(x, training=training, step=step, seed=seed)
    code = terms["mean"]
    fake = self.adversary(tf.stop_gradient(code))[:, 0]
    real = self.adversary(tf.random.stateless_normal(tf.shape(code), [1, 2]))[:, 0]
    terms["adversary_loss"] = (tf.nn.softplus(fake) + tf.nn.softplus(-real))  # [B]
    return terms

  def extra_objectives(self):
    return [("adversary_loss", self.adversary.trainable_variables,
             lambda: keras.optimizers.SGD(0.5))]


def test_the_training_loop_steps_each_objective_with_its_own_optimizer(tmp_path):
  config = configs.TrainConfig(epochs=2, batch_size=8, progress=False, checkpoint_min_seconds=0)
  model = AdversarialAutoencoder((4, 4, 1), 2, hidden_units=(8,))
  trainer = tiny_trainer(tmp_path / "b", config, model=model)
  adversary_before = [v.numpy().copy() for v in model.adversary.trainable_variables]
  history = trainer.train()
  assert "train/adversary_loss" in history[-1]  # logged beside the main terms
  # The adversary moved by its own optimizer (SGD: its iterations count the steps) ...
  [(_, _, sgd)] = trainer.objectives
  assert int(sgd.iterations.numpy()) == 4 and int(trainer.optimizer.iterations.numpy()) == 4
  assert not all(np.array_equal(a, b.numpy())
                 for a, b in zip(adversary_before, model.adversary.trainable_variables))
  # ... and the main optimizer never saw its variables.
  adversary_ids = {id(v) for v in model.adversary.trainable_variables}
  main = keras.optimizers.Adam()
  main.build([v for v in model.trainable_variables if id(v) not in adversary_ids])
  assert len(trainer.optimizer.variables) == len(main.variables)
  # The adversary's optimizer is part of the checkpoint a resumed training restores.
  state = trainer._state  # pylint: disable=protected-access
  assert any(name.startswith("adversary_loss_optimizer_") for name in state)


def test_a_training_is_the_same_after_another_in_the_same_process(tmp_path):
  """The noise of every step comes from (train.seed, step, replica), not from the process's
  random state: a study's second trial trains as it would alone (with XLA, whose generator
  kept its state across trainings, it did not)."""
  def history(work_dir):
    keras.utils.set_random_seed(0)
    model = models.VAE((4, 4, 1), 2, hidden_units=(8,))
    config = configs.TrainConfig(epochs=2, batch_size=8, progress=False)
    return [r["train/loss"] for r in tiny_trainer(work_dir, config, model=model,
                                                  jit_compile=True).train()]
  assert history(tmp_path / "a") == history(tmp_path / "b")


def _tiny_vae():
  keras.utils.set_random_seed(0)
  return models.VAE((6, 6, 1), 3, hidden_units=(16,), prior={"name": "gmm", "num_components": 3})


def test_one_iwae_estimator_gives_one_number_for_the_same_images_seed_and_k(tmp_path):
  model = _tiny_vae()
  x = np.random.default_rng(1).uniform(size=(7, 6, 6, 1)).astype("float32")
  k = 300
  from_model = model.iwae_log_likelihood(x, num_samples=k, seed=0).numpy()  # [7]
  # Alone, in another batch, in other chunks: an image's estimate is its own.
  alone = np.concatenate([model.iwae_log_likelihood(x[i:i + 1], num_samples=k, seed=0,
                                                    chunk_size=37).numpy() for i in range(7)])
  np.testing.assert_allclose(alone, from_model, atol=1e-4)
  # The evaluate step's mean, over batches of 3.
  metrics = likelihood.iwae_metrics(model, x, num_samples=k, batch_size=3, seed=0)
  assert metrics["iwae_log_likelihood"] == pytest.approx(float(from_model.mean()), abs=1e-4)
  # The graph-mode estimator and the exported signature (the default seed is seed 0's).
  graph = iwae.estimate(model, x, tf.constant(k))["log_likelihood"].numpy()
  np.testing.assert_allclose(graph, from_model, atol=1e-4)
  path = serving.export_model(model, tmp_path / "saved_models", "tiny")
  served = tf.saved_model.load(str(path)).signatures["log_likelihood"](
      images=tf.constant(x), num_samples=tf.constant(k))["log_likelihood"].numpy()
  np.testing.assert_allclose(served, from_model, atol=1e-4)
  # Another seed, another draw.
  assert not np.allclose(model.iwae_log_likelihood(x, num_samples=k, seed=1), from_model,
                         atol=1e-4)


def test_the_iwae_estimate_is_checked_against_numpy():
  """log p̂ = logsumexp_k(log p(x|z_k) + log p(z_k) − log q(z_k|x)) − log K with the shared
  draws of the seed, computed independently in numpy for a Gaussian-prior Bernoulli VAE."""
  keras.utils.set_random_seed(3)
  model = models.VAE((4, 4, 1), 2, hidden_units=(8,))
  x = np.random.default_rng(2).uniform(size=(3, 4, 4, 1)).astype("float32")
  k = 50
  eps = iwae.draws(k, 2, 5).numpy()[:, 0, :]  # [K, D]
  mean, log_var = (t.numpy().astype(np.float64) for t in model.posterior_params(x))
  z = mean[None] + np.exp(0.5 * log_var)[None] * eps[:, None]  # [K, B, D]
  logits = model.decode(tf.constant(z.reshape(-1, 2), tf.float32)).numpy().reshape(k, 3, -1)
  flat = x.reshape(3, -1).astype(np.float64)
  log_px_z = np.sum(flat * -np.logaddexp(0, -logits) + (1 - flat) * -np.logaddexp(0, logits), -1)

  def log_norm(v, m, lv):
    return np.sum(-0.5 * (np.log(2 * np.pi) + lv + (v - m) ** 2 / np.exp(lv)), -1)

  log_w = log_px_z + log_norm(z, 0.0, 0.0) - log_norm(z, mean[None], log_var[None])  # [K, B]
  expected = np.logaddexp.reduce(log_w, 0) - np.log(k)
  np.testing.assert_allclose(model.iwae_log_likelihood(x, num_samples=k, seed=5), expected,
                             atol=1e-3)


def test_settings_blocks_are_dataclasses_with_help():
  for kind in kinds.KINDS.values():
    for f in dataclasses.fields(kind.settings):
      assert f.metadata.get("help"), (kind.name, f.name)


def test_a_model_is_selected_on_its_own_training_objective():
  """Early stopping's `validation/objective` is minus the kind's training loss (issue 36): a
  β-VAE's β-weighted bound, not the β = 1 ELBO; a noisy autoencoder's noisy reconstruction,
  not the noise-free one."""
  x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype("float32")
  seed = tf.constant([5, 1], tf.int32)
  vae = models.VAE((8, 8, 1), 3, hidden_units=(16,), kl_weight=4.0, kl_warmup_steps=100)
  terms = vae.elbo_terms(x, seed=seed)
  # The full β, whatever the warm-up, against the terms of the same posterior draw.
  np.testing.assert_allclose(vae.validation_objective(x, seed=seed).numpy(),
                             -(terms["reconstruction"] + 4.0 * terms["kl"]).numpy(), rtol=1e-5)
  noisy = models.NoisyAutoencoder((8, 8, 1), 3, hidden_units=(16,), noise_factor=1.0)
  objective = noisy.validation_objective(x, seed=seed).numpy()
  np.testing.assert_allclose(objective, -noisy.loss_terms(x, training=True, seed=seed)[
      "loss"].numpy(), rtol=1e-6)  # repeatable: the noise comes from the seed
  clean = noisy.loss_terms(x, training=False)["reconstruction"].numpy()
  assert not np.allclose(objective, -clean)
  mean = likelihood.validation_objective(noisy, x, batch_size=4, seed=2)
  assert mean == pytest.approx(likelihood.validation_objective(noisy, x, batch_size=4, seed=2))
  assert all(kinds.KINDS[k].selection for k in kinds.KINDS)


def test_a_new_model_s_first_trace_is_not_reported_as_retracing(caplog):
  """A study evaluates a dozen models in one process: each one's ELBO function is traced once,
  which TensorFlow (counting by the Python function's code) would report as retracing."""
  x = tf.constant(np.random.default_rng(0).uniform(size=(4, 4, 4, 1)), tf.float32)
  config = config_lib.from_dict(configs.ModelConfig, {"latent_dim": 2, "hidden_units": [4]})
  with caplog.at_level("WARNING", logger="tensorflow"):
    for _ in range(8):
      model = common.build_model(config, (4, 4, 1))
      likelihood.elbo_metrics(model, x.numpy(), batch_size=4)

      def not_per_model(v):  # a new function per loop: TensorFlow's warning still shows
        return v * 2
      tf.function(not_per_model)(x)
  retracing = [r.getMessage() for r in caplog.records if "retracing" in r.getMessage()]
  assert retracing and all("not_per_model" in m for m in retracing)
