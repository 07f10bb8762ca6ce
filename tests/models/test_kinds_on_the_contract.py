"""The kinds added on the model-kind contract (issue 27): each is built from its config block
through `build_model`, trains through the `Trainer`, round-trips through `keras.saving` with
identical outputs, and exports with every serving signature runnable after
`tf.saved_model.load`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import serving
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import tiny_trainer

# kind -> (its settings block, the model attributes it sets when built with 4 steps per epoch,
#          the scheduled values the training loop logs after 2 steps)
CASES = {
    "factor_vae": ({"gamma": 20.0, "discriminator_units": 8, "discriminator_layers": 2},
                   {"gamma": 20.0, "discriminator_units": 8, "discriminator_layers": 2},
                   {"kl_weight": 1.0}),
    "annealed_vae": ({"gamma": 5.0, "max_capacity": 3.0, "capacity_epochs": 2.5},
                     {"gamma": 5.0, "max_capacity": 3.0, "capacity_steps": 10},
                     {"capacity": 0.6}),  # 3 nats · 2 / 10 steps
    "iwae": ({"num_samples": 3, "prior": "gmm", "num_components": 2},
             {"num_samples": 3}, {}),
}


def _signature_inputs(spec, x, latent_dim):
  inputs = {}
  for name in spec["inputs"]:
    if name == "images":
      inputs[name] = tf.constant(x)
    elif name == "latents":
      inputs[name] = tf.random.stateless_normal([len(x), latent_dim], seed=[3, 4])
    else:  # num_samples, seed
      inputs[name] = tf.constant(len(x) if name == "num_samples" else 1, tf.int32)
  return inputs


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_kind_builds_from_its_block_trains_round_trips_and_exports(kind, tmp_path):
  settings, expected, scheduled = CASES[kind]
  config = config_lib.from_dict(configs.ModelConfig, {"kind": kind, "latent_dim": 2,
                                                      "hidden_units": [8], kind: settings},
                                where="model")
  keras.utils.set_random_seed(0)
  model = common.build_model(config, (4, 4, 1), steps_per_epoch=4)
  assert type(model) is kinds.get(kind).model_class()  # pylint: disable=unidiomatic-typecheck
  assert model.has_posterior
  assert {name: getattr(model, name) for name in expected} == expected

  # Two steps of the training loop move the main loss's variables and those of every extra
  # objective (FactorVAE's discriminator), each with its own optimizer.
  trainer = tiny_trainer(tmp_path / "train", configs.TrainConfig(
      epochs=1, batch_size=8, progress=False), model=model)
  before = {id(v): v.numpy().copy() for v in model.trainable_variables}
  history = trainer.train()
  assert all(np.isfinite(history[-1][f"train/{key}"])
             for key in ["loss"] + [key for key, _, _ in trainer.objectives])
  assert {name: history[-1][name] for name in scheduled} == pytest.approx(scheduled)
  for variables, optimizer in [(model.main_trainable_variables, trainer.optimizer)] + [
      (variables, optimizer) for _, variables, optimizer in trainer.objectives]:
    assert int(optimizer.iterations.numpy()) == 2
    assert not any(np.array_equal(before[id(v)], v) for v in variables)
  x = np.random.default_rng(1).uniform(size=(3, 4, 4, 1)).astype("float32")

  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
  np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
  np.testing.assert_array_equal(loaded.sample(3, seed=7), model.sample(3, seed=7))
  np.testing.assert_array_equal(loaded.elbo(x, seed=5)["elbo"], model.elbo(x, seed=5)["elbo"])
  terms, loaded_terms = model.loss_terms(x, seed=5), loaded.loss_terms(x, seed=5)
  for key, value in terms.items():
    np.testing.assert_allclose(loaded_terms[key], value, rtol=1e-6, err_msg=key)

  version = serving.export_model(model, tmp_path / "saved_models", kind)
  served = tf.saved_model.load(str(version))
  contract = serving.signature_contract(model)
  assert set(served.signatures) == set(contract) and "log_likelihood" in contract
  for name, spec in contract.items():
    outputs = served.signatures[name](**_signature_inputs(spec, x, model.latent_dim))
    assert set(outputs) == set(spec["outputs"]), name
    for output, output_spec in spec["outputs"].items():
      assert outputs[output].shape[1:] == output_spec["shape"][1:], (name, output)
      if output != "standard_error":  # NaN for K = 1 only; finite here
        assert np.all(np.isfinite(outputs[output])), (name, output)
  served_log_px = served.signatures["log_likelihood"](images=tf.constant(x),
                                                      num_samples=tf.constant(20))
  np.testing.assert_allclose(served_log_px["log_likelihood"],
                             model.iwae_log_likelihood(x, num_samples=20, seed=0), atol=1e-4)
