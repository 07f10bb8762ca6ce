"""Images as users hold them: [N, H, W] or [N, H, W, C], uint8 or float in [0, 1], accepted by
every method that takes images (the same numbers as float32 [N, H, W, C] / 255), and anything
else refused at the call with one line naming the expected shape, dtype and range."""

import numpy as np
import pytest
import tensorflow as tf

from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import models
from kerasvae.steps import common
from kerasvae.steps import configs

EXPECTED = (r"^Expected x of shape \[N, 8, 8, 1\] or \[N, 8, 8\], dtype uint8 \(0-255, scaled "
            r"by 1/255\) or float with values in \[0, 1\]\. Received: ")


@pytest.fixture(scope="module")
def pixels():
  return np.random.default_rng(0).integers(0, 256, size=(6, 8, 8), dtype=np.uint8)  # [N, H, W]


@pytest.fixture(scope="module")
def vae():
  return models.VAE((8, 8, 1), 2, hidden_units=(8,))


def _as_float(pixels):
  return pixels[..., None].astype(np.float32) / 255.0  # [N, H, W, 1], computed independently


def _calls(model):
  """Every image-taking method, as `name: f(x)` returning arrays to compare."""
  calls = {
      "encode_mean": model.encode_mean,
      "reconstruct": model.reconstruct,
      "call": model,
      "predict": lambda x: model.predict(x, verbose=0),
      "loss_terms": lambda x: model.loss_terms(x, seed=3)["loss"],
  }
  if model.has_posterior:
    calls.update(
        posterior_mean=lambda x: model.posterior(x).mean(),
        encode=lambda x: model.encode(x)[1],
        elbo=lambda x: model.elbo(x, seed=3)["elbo"],
        iwae_log_likelihood=lambda x: model.iwae_log_likelihood(x, num_samples=4, seed=3))
  return calls


@pytest.mark.parametrize("kind", ["vae", "autoencoder", "iwae", "beta_tcvae"])
def test_uint8_and_three_dimensional_images_give_the_float_results(kind, pixels):
  config = config_lib.from_dict(configs.ModelConfig, {"kind": kind, "latent_dim": 2,
                                                      "hidden_units": [8]}, where="model")
  model = common.build_model(config, (8, 8, 1))
  assert isinstance(model, kinds.get(kind).model_class())
  reference = _as_float(pixels)
  for name, call in _calls(model).items():
    expected = np.asarray(call(reference))
    for form in (pixels, pixels[..., None], reference[..., 0], reference.astype(np.float64),
                 tf.constant(pixels)):
      np.testing.assert_allclose(np.asarray(call(form)), expected, rtol=1e-5, atol=1e-5,
                                 err_msg=f"{kind}.{name} of {type(form).__name__} "
                                 f"{getattr(form, 'dtype', None)} {form.shape}")


def test_fit_on_uint8_trains_as_on_the_float_images(pixels):
  """Keras' fit (and its validation) on uint8 [N, H, W] steps the weights as on float32
  [N, H, W, 1] / 255; the autoencoder draws no noise, so the two trainings are the same."""
  start = models.Autoencoder((8, 8, 1), 2, hidden_units=(8,))
  start(_as_float(pixels))  # builds it
  trained = []
  for data in (pixels, _as_float(pixels)):
    model = models.Autoencoder((8, 8, 1), 2, hidden_units=(8,))
    model(_as_float(pixels))
    model.set_weights(start.get_weights())
    model.compile(optimizer="sgd")
    history = model.fit(data, validation_data=data, epochs=2, batch_size=3, shuffle=False,
                        verbose=0)
    trained.append((model.get_weights(), history.history["val_loss"]))
  (weights, val_loss), (expected_weights, expected_val_loss) = trained
  np.testing.assert_allclose(val_loss, expected_val_loss, rtol=1e-5)
  kernel = start.encoder.trainable_weights[0]
  index = [id(w) for w in start.weights].index(id(kernel))
  assert not np.allclose(weights[index], kernel.numpy())  # it trained
  for a, b in zip(weights, expected_weights):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad,received", [
    (np.zeros((2, 8, 8, 3), np.float32), r"x\.shape=\(2, 8, 8, 3\)$"),
    (np.zeros((8, 8), np.float32), r"x\.shape=\(8, 8\)$"),
    (np.zeros((2, 6, 6), np.uint8), r"x\.shape=\(2, 6, 6\)$"),
    (np.zeros((2, 8, 8), np.int64), r"x\.dtype=int64$"),
    (np.full((2, 8, 8), 255.0, np.float32),
     r"x values in \[255, 255\] \(uint8-range values in a float array: divide by 255\)$"),
    (np.full((2, 8, 8), -0.5), r"x values in \[-0\.5, -0\.5\]$"),
    (np.full((2, 8, 8), np.nan, np.float32), r"x values in \[nan, nan\]$"),
])
def test_other_arrays_are_refused_at_the_call_in_one_line(vae, bad, received):
  calls = {**_calls(vae), "fit": lambda x: vae.fit(x, epochs=1, verbose=0),
           "evaluate": lambda x: vae.evaluate(x, verbose=0)}
  vae.compile(optimizer="adam")
  for name, call in calls.items():
    with pytest.raises(ValueError, match=EXPECTED + received) as info:
      call(bad)
    assert "\n" not in str(info.value), name
  # A tensor is checked like an array.
  with pytest.raises(ValueError, match=EXPECTED + received):
    vae.elbo(tf.constant(bad))


def test_a_gaussian_likelihood_takes_any_real_pixels_and_the_message_says_so():
  """Real-valued data (a Gaussian decoder's) has no [0, 1] range: only NaN is refused."""
  model = models.VAE((8, 8, 1), 2, hidden_units=(8,),
                     likelihood={"name": "gaussian", "mean_activation": "identity"})
  x = np.random.default_rng(0).normal(size=(3, 8, 8)) * 5.0
  np.testing.assert_allclose(model.elbo(x, seed=1)["elbo"],
                             model.elbo(x[..., None].astype(np.float32), seed=1)["elbo"],
                             rtol=1e-5)
  with pytest.raises(ValueError, match=r"^Expected x of shape \[N, 8, 8, 1\] or \[N, 8, 8\], "
                     r"dtype uint8 \(0-255, scaled by 1/255\) or float\. Received: x values in "
                     r"\[nan, nan\]$"):
    model.elbo(np.full((2, 8, 8), np.nan))
