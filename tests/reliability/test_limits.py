"""What one value or one request may cost (issue 41, cases 5, 6 and 7).

Numeric settings have bounds (`config.MAX_UNITS`, `MAX_BATCH_SIZE`, `MAX_COUNT`) checked when
the config loads, and the train step checks what they cost together against the machine's
memory before building anything. The serving signatures check every input in the graph a
server runs (shape, finiteness, pixel range, batch and sample bounds) and answer with one
named `InvalidArgumentError`; docs/serving.md's "Limits" lists the bounds.
"""

import numpy as np
import pytest
import tensorflow as tf

import kerasvae
from kerasvae import serving
from kerasvae.steps import train as train_step
from tests import pipeline_helpers
from tests.reliability.test_bad_inputs import assert_named_error

# (id, --set item, pattern): the values, refused when the config loads.
SETTING_CASES = [
    ("hidden-units", "model.hidden_units=[1000000]",
     r"config\.model\.hidden_units: expected a value in \[1, 65536\]\. Received: \[1000000\] "
     r"\(from --set model\.hidden_units=\[1000000\]\)$"),
    ("batch-size", "train.batch_size=1000000000",
     r"config\.train\.batch_size: expected a value in \[1, 65536\]\. Received: 1000000000 "),
    ("epochs", "train.epochs=100000000000", r"config\.train\.epochs: expected a value in "
     r"\[1, 10000000\]\. Received: 100000000000 "),
    ("iwae-samples", "evaluate.iwae_samples=1000000",
     r"config\.evaluate\.iwae_samples: expected a value in \[0, 100000\]\. Received: 1000000 "),
    ("discriminator-layers", "model.factor_vae.discriminator_layers=1000",
     r"discriminator_layers: expected a value in \[1, 64\]\. Received: 1000 "),
]


@pytest.mark.parametrize("item, pattern", [c[1:] for c in SETTING_CASES],
                         ids=[c[0] for c in SETTING_CASES])
def test_numeric_settings_past_their_bound_are_refused(tmp_path, monkeypatch, capsys, item,
                                                       pattern):
  args = ["train", "--set", item]
  if "factor_vae" in item:
    args += ["--set", "model.kind=factor_vae"]
  err = assert_named_error(args, tmp_path, monkeypatch, capsys, pattern)
  assert err.count("\n") == 1


def test_a_batch_larger_than_the_data_and_a_network_past_the_memory_are_refused(
    tmp_path, monkeypatch, capsys):
  """`train.batch_size` within its bound but above the training examples never filled a batch
  (the issue's 10^9 trained no epoch in 900 s); a network within the width bound can still need
  more memory than the machine has. Both are named before anything is built."""
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  config = pipeline_helpers.tiny_config(tmp_path)
  monkeypatch.chdir(tmp_path)
  capsys.readouterr()
  assert cli.main(["ingest", "--config", str(config)]) == 0
  capsys.readouterr()
  code = cli.main(["train", "--config", str(config), "--set", "train.batch_size=1000"])
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1, err
  assert "kerasvae train: error: config.train.batch_size: expected at most the 448 training " \
         "examples of " in err
  assert err.endswith("(per replica, times the replicas). Received: batch_size=1000 "
                      "(1000 a step)\n")
  wide = "model.hidden_units=[65536, 65536, 65536, 65536]"
  code = cli.main(["train", "--config", str(config), "--set", wide])
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1, err
  parameters, _ = train_step.network_cost(
      type("M", (), {"architecture": "mlp", "hidden_units": [65536] * 4, "latent_dim": 2})(),
      (64, 64, 1))
  assert parameters > 65536 ** 2 * 6  # six 65536 x 65536 layers in the encoder and decoder
  assert (f"kerasvae train: error: config.model: expected a network whose training fits in "
          f"this machine's memory ({train_step.machine_memory() / 1e9:.1f} GB). Received: "
          f"hidden_units=[65536, 65536, 65536, 65536], latent_dim=2 on images of [64, 64, 1] "
          f"with batch_size=32: about {parameters / 1e6:.0f}M parameters and ") in err
  assert err.endswith("Make the network or the batch smaller.\n")


def test_network_cost_counts_the_parameters_keras_builds():
  """The estimate against the parameters of the models built: within the one term it adds
  for a likelihood's second parameter per pixel."""
  for architecture, model in (
      ("mlp", kerasvae.VAE((28, 28, 1), 20, hidden_units=(400, 100))),
      ("conv", kerasvae.VAE((64, 64, 1), 6, architecture="conv", filters=(32, 64),
                            dense_units=256))):
    model(np.zeros((1,) + model.image_shape, np.float32))
    settings = type("M", (), {"architecture": architecture, "hidden_units": [400, 100],
                              "filters": [32, 64], "dense_units": 256,
                              "latent_dim": model.latent_dim})()
    estimate, _ = train_step.network_cost(settings, model.image_shape)
    built = model.count_params()
    assert built <= estimate <= 2 * built, (architecture, built, estimate)


# ------------------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
  """A 28x28x1 VAE's export, loaded with TensorFlow only (the graph TF Serving runs)."""
  base = tmp_path_factory.mktemp("limits") / "saved_models"
  path = serving.export_model(kerasvae.VAE((28, 28, 1), 2, hidden_units=(8,)), base, "vae")
  return tf.saved_model.load(str(path)).signatures


def images(n, value=0.5, shape=(28, 28, 1)):
  return tf.fill((n,) + shape, tf.constant(value, tf.float32))


MAX_IMAGES = (1 << 26) // 784  # serving.max_batch((28, 28, 1))

# (id, signature, inputs, the message)
REQUEST_CASES = [
    ("wrong-image-shape", "encode", lambda: {"images": images(2, shape=(32, 32, 3))},
     "Expected images of shape [B, 28, 28, 1]. Received: shape=] [2 32 32 3]"),
    ("flat-images", "serving_default", lambda: {"images": tf.zeros([2, 784, 1, 1])},
     "Expected images of shape [B, 28, 28, 1]. Received: shape=] [2 784 1 1]"),
    ("nan-images", "log_likelihood",
     lambda: {"images": images(2, np.nan), "num_samples": tf.constant(10)},
     "Expected finite images. Received: NaN or infinity in] [images]"),
    ("0-255-images", "log_likelihood",
     lambda: {"images": images(2, 255.0), "num_samples": tf.constant(10)},
     "Expected images with pixel values in [0, 1]. Received: min=] [255] [max=] [255]"),
    ("too-many-samples", "sample",
     lambda: {"num_samples": tf.constant(MAX_IMAGES + 1), "seed": tf.constant(0)},
     f"Expected num_samples in [0, {MAX_IMAGES}] (docs/serving.md, Limits). Received: "
     f"num_samples=] [{MAX_IMAGES + 1}]"),
    ("sample-1e6", "sample", lambda: {"num_samples": tf.constant(10 ** 6), "seed": tf.constant(0)},
     f"Expected num_samples in [0, {MAX_IMAGES}] (docs/serving.md, Limits). Received: "
     "num_samples=] [1000000]"),
    ("negative-samples", "sample", lambda: {"num_samples": tf.constant(-1), "seed": tf.constant(0)},
     f"Expected num_samples in [0, {MAX_IMAGES}] (docs/serving.md, Limits). Received: "
     "num_samples=] [-1]"),
    ("iwae-k-too-large", "log_likelihood",
     lambda: {"images": images(1), "num_samples": tf.constant(100_001)},
     "Expected num_samples in [1, 100000] (docs/serving.md, Limits). Received: "
     "num_samples=] [100001]"),
    ("iwae-batch-times-k", "log_likelihood",
     lambda: {"images": images(11), "num_samples": tf.constant(100_000)},
     "Expected at most] [10] [images per request with this num_samples (batch x num_samples "
     "<= 1048576) (docs/serving.md, Limits). Received: batch=] [11]"),
    ("decode-wrong-latents", "decode", lambda: {"latents": tf.zeros([3, 5])},
     "Expected latents of shape [B, 2]. Received: shape=] [3 5]"),
    ("decode-inf-latents", "decode", lambda: {"latents": tf.fill([3, 2], np.inf)},
     "Expected finite latents. Received: NaN or infinity in] [latents]"),
    ("too-many-images", "encode", lambda: {"images": tf.zeros([MAX_IMAGES + 1, 28, 28, 1])},
     f"Expected at most {MAX_IMAGES} images per request (docs/serving.md, Limits). "
     f"Received: batch=] [{MAX_IMAGES + 1}]"),
]


@pytest.mark.parametrize("signature, inputs, message", [c[1:] for c in REQUEST_CASES],
                         ids=[c[0] for c in REQUEST_CASES])
def test_bad_requests_get_one_named_error(signatures, signature, inputs, message):
  with pytest.raises(tf.errors.InvalidArgumentError) as error:
    signatures[signature](**inputs())
  assert f"assertion failed: [{message}" in error.value.message, error.value.message


def test_requests_at_the_limits_are_answered(signatures):
  # K at its bound (one image: B x K = 100,000; ten would take seconds, an eleventh is refused).
  out = signatures["log_likelihood"](images=images(1), num_samples=tf.constant(100_000))
  assert out["log_likelihood"].shape == (1,) and np.all(np.isfinite(out["log_likelihood"]))
  out = signatures["encode"](images=tf.zeros([0, 28, 28, 1]))  # an empty batch is legal
  assert out["latent_mean"].shape == (0, 2)
  out = signatures["sample"](num_samples=tf.constant(3), seed=tf.constant(0))
  assert out["images"].shape == (3, 28, 28, 1)
