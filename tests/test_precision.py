"""train.precision: mixed_bfloat16 networks compute in bfloat16 and keep float32 variables;
losses, metrics, saved models and exports stay float32; the float32 default fingerprints as
runs did before the setting existed."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasvae
from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import serving
from kerasvae import training
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import run_cli
from tests.pipeline_helpers import tiny_trainer

SHAPE = (16, 16, 1)
MIXED = "mixed_bfloat16"


def conv_model_config(**vae):
  return config_lib.from_dict(configs.ModelConfig, {
      "latent_dim": 3, "architecture": "conv", "filters": [8, 8], "dense_units": 16,
      "vae": vae})


def images(n, seed=0):
  """Binary blobs: a square per image, so that a few steps have something to learn."""
  rng = np.random.default_rng(seed)
  x = np.zeros((n,) + SHAPE, "float32")
  for i, (r, c) in enumerate(rng.integers(0, 12, size=(n, 2))):
    x[i, r:r + 4, c:c + 4] = 1.0
  return x


def mixed_vae():
  keras.utils.set_random_seed(0)
  return common.build_model(conv_model_config(), SHAPE, precision=MIXED)


def test_mixed_networks_compute_in_bfloat16_with_float32_variables():
  model = mixed_vae()
  assert model.network_dtype == MIXED
  for network in (model.encoder, model.decoder):
    *inner, last = network.layers
    assert {layer.compute_dtype for layer in inner} == {"bfloat16"}
    assert last.compute_dtype == "float32"  # the cast of the output
  assert model.variables and {v.dtype for v in model.variables} == {"float32"}
  assert model.encoder(images(2)).dtype == tf.float32
  assert model.decoder(tf.zeros([2, 3])).dtype == tf.float32
  # The float32 default is the network as before: no cast layer, float32 computation.
  default = common.build_model(conv_model_config(), SHAPE)
  assert default.network_dtype == "float32"
  assert {layer.compute_dtype for layer in default.encoder.layers} == {"float32"}
  assert len(default.encoder.layers) == len(model.encoder.layers) - 1


def test_loss_terms_and_bounds_are_float32_and_finite():
  model = mixed_vae()
  x = images(8)
  terms = model.loss_terms(x, training=True, step=tf.constant(3), seed=[1, 2])
  for name in ("loss", "reconstruction", "kl", "elbo", "mean", "log_var"):
    assert terms[name].dtype == tf.float32, name
    assert np.all(np.isfinite(terms[name].numpy())), name
  iwae = model.iwae_log_likelihood(x[:2], num_samples=4, seed=0)
  assert iwae.dtype == tf.float32 and np.all(np.isfinite(iwae.numpy()))
  assert model.sample(2, seed=0).dtype == tf.float32
  # bfloat16 keeps 8 significant bits: the ELBO is the float32 network's to within a fraction
  # of a percent (the same weights, computed in float32).
  exact = kerasvae.VAE(**{**model.get_config(), "network_dtype": "float32"})
  exact.set_weights(model.get_weights())
  mixed_elbo = model.elbo(x, seed=5)["elbo"].numpy()
  exact_elbo = exact.elbo(x, seed=5)["elbo"].numpy()
  np.testing.assert_allclose(mixed_elbo, exact_elbo, rtol=2e-2)


def test_a_few_training_steps_reduce_the_loss():
  model = mixed_vae()
  x = tf.constant(images(32))
  optimizer = keras.optimizers.Adam(3e-3)

  @tf.function
  def step(i):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(model.loss_terms(x, training=True, seed=tf.stack([i, 0]))["loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g.dtype == tf.float32 for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  losses = [float(step(tf.constant(i))) for i in range(30)]
  assert all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
  assert {v.dtype for v in model.variables} == {"float32"}


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_kind_trains_with_mixed_networks_and_float32_terms(kind, tmp_path):
  config = config_lib.from_dict(configs.ModelConfig, {"kind": kind, "latent_dim": 2,
                                                      "hidden_units": [8]}, where="model")
  keras.utils.set_random_seed(0)
  model = common.build_model(config, (4, 4, 1), steps_per_epoch=2, precision=MIXED)
  assert model.encoder.layers[0].compute_dtype == "bfloat16"
  # XLA as `train.jit_compile: auto` compiles an MLP's step on a CPU.
  trainer = tiny_trainer(tmp_path, configs.TrainConfig(epochs=1, batch_size=8, progress=False),
                         model=model, jit_compile=True)
  history = trainer.train()
  assert np.isfinite(history[-1]["train/loss"])
  assert {v.dtype for v in model.variables} == {"float32"}
  x = np.random.default_rng(1).uniform(size=(8, 4, 4, 1)).astype("float32")
  for name, value in model.loss_terms(x, training=True, step=tf.constant(1), seed=[1, 2]).items():
    assert value.dtype == tf.float32, name
    assert np.all(np.isfinite(value.numpy())), name


def test_the_saved_model_keeps_its_precision(tmp_path):
  model = mixed_vae()
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert loaded.network_dtype == MIXED
  assert loaded.encoder.layers[0].compute_dtype == "bfloat16"
  assert {v.dtype for v in loaded.variables} == {"float32"}
  x = images(4)
  np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))


def test_an_export_has_float32_signatures(tmp_path):
  model = mixed_vae()
  path = serving.export_model(model, tmp_path / "saved_models", "vae")
  loaded = tf.saved_model.load(str(path))
  for name, fn in loaded.signatures.items():
    for spec in fn.structured_input_signature[1].values():
      assert spec.dtype in (tf.float32, tf.int32), (name, spec)
    for spec in fn.structured_outputs.values():
      assert spec.dtype == tf.float32, (name, spec)
  x = images(3)
  out = loaded.signatures["serving_default"](images=tf.constant(x))
  np.testing.assert_allclose(out["reconstruction"], model.reconstruct(x), atol=1e-6)
  np.testing.assert_allclose(out["latent_mean"], model.encode_mean(x), atol=1e-6)


def test_an_unknown_precision_is_refused_by_name():
  with pytest.raises(config_lib.ConfigError, match=r"precision.*float16"):
    config_lib.from_dict(configs.TrainConfig, {"precision": "float16"})
  with pytest.raises(ValueError, match="Expected network_dtype to be one of .* "
                                       "Received: network_dtype='float16'"):
    kerasvae.VAE(SHAPE, 2, network_dtype="float16")


def test_the_float32_default_fingerprints_as_before_the_setting():
  config = configs.load_pipeline_config("quickstart")
  assert config.train.precision == "float32"
  identity = common.train_identity(config.train)
  assert "precision" not in identity
  before = {k: v for k, v in config_lib.to_dict(config.train).items()
            if k not in ("precision",) + common.UNFINGERPRINTED_TRAIN_SETTINGS}
  assert identity == before
  assert common.run_fingerprint(config) == artifacts.fingerprint(
      {"ingest": config_lib.to_dict(config.ingest), "model": config_lib.to_dict(config.model),
       "train": before})
  mixed = configs.load_pipeline_config("quickstart")
  mixed.train.precision = MIXED
  assert common.train_identity(mixed.train)["precision"] == MIXED
  assert common.run_directory(mixed) != common.run_directory(config)


def test_bfloat16_is_refused_under_an_isa_cap_without_its_kernels():
  """ONEDNN_MAX_CPU_ISA=AVX2 leaves oneDNN without bfloat16 kernels while TensorFlow still
  sends bfloat16 layers to it: the step would abort. Refused by name; noted on CPUs without
  bfloat16 instructions; nothing to say for float32, on a GPU, or with oneDNN off."""
  bf16_cpu = {"sse2", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq",
              "avx512_vnni", "avx512_bf16"}
  for cap in ("AVX2", "avx2", "AVX2_VNNI_2", "SSE41"):
    with pytest.raises(config_lib.ConfigError, match=r"train\.precision: mixed_bfloat16 .*"
                       rf"ONEDNN_MAX_CPU_ISA={cap.upper()} .* Received: ONEDNN_MAX_CPU_ISA={cap}$"):
      training.check_precision(MIXED, bf16_cpu, {"ONEDNN_MAX_CPU_ISA": cap}, gpus=False)
  for environ in ({}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
                  {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}):
    assert training.check_precision(MIXED, bf16_cpu, environ, gpus=False) == ""
  note = training.check_precision(MIXED, {"avx2", "avx512f"}, {}, gpus=False)
  assert note.startswith("note: mixed_bfloat16 on a CPU without bfloat16 instructions")
  cascade_lake = bf16_cpu - {"avx512_bf16"}
  assert training.check_precision(MIXED, cascade_lake, {}, gpus=False).startswith("note: ")


def test_bfloat16_is_refused_on_an_x86_cpu_without_avx512_when_onednn_computes():
  """An AVX2 CPU (machine B) dispatches as ONEDNN_MAX_CPU_ISA=AVX2 does: with oneDNN on (which
  the kerasvae command turns on there) the step would abort; with oneDNN off it is Eigen's."""
  epyc_zen2 = {"sse2", "avx", "avx2", "fma"}
  with pytest.raises(config_lib.ConfigError, match=r"bfloat16 kernels need AVX-512 .* Expected "
                     r"train\.precision: float32 on this CPU .* Received: a CPU without avx512f, "
                     r"avx512bw, avx512vl, avx512dq \("):
    training.check_precision(MIXED, epyc_zen2, {"TF_ENABLE_ONEDNN_OPTS": "1"}, gpus=False)
  note = training.check_precision(MIXED, epyc_zen2, {"TF_ENABLE_ONEDNN_OPTS": "0"}, gpus=False)
  assert note.startswith("note: mixed_bfloat16 on a CPU without bfloat16 instructions")
  # Not an x86 CPU: oneDNN's x86 ISA levels say nothing there.
  assert training.check_precision(MIXED, {"fp", "asimd"}, {"TF_ENABLE_ONEDNN_OPTS": "1"},
                                  gpus=False).startswith("note: ")
  assert training.check_precision(MIXED, set(), {"ONEDNN_MAX_CPU_ISA": "AVX2"}, gpus=True) == ""
  assert training.check_precision("float32", set(), {"ONEDNN_MAX_CPU_ISA": "AVX2"}) == ""


def test_kerasvae_run_under_the_cap_stops_before_anything_runs(tmp_path):
  """The real command in a fresh process: exit 2 and the message, no abort, nothing written."""
  result = run_cli(["run", "--set", "train.precision=mixed_bfloat16"], tmp_path,
                   ONEDNN_MAX_CPU_ISA="AVX2", CI="true")
  assert result.returncode == 2, result.stderr[-2000:]
  assert "no bfloat16 kernels under ONEDNN_MAX_CPU_ISA=AVX2" in result.stderr
  assert list(tmp_path.iterdir()) == []


def test_the_train_step_itself_refuses_the_cap(tmp_path, monkeypatch):
  """Kubeflow's train component calls the step without the pipeline's check before it."""
  from kerasvae import _backend  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import train as train_step  # pylint: disable=import-outside-toplevel
  if not _backend.onednn_enabled():
    pytest.skip("TensorFlow runs Eigen's kernels in this test process (its default on a CPU "
                "without VNNI, bf16 or AMX): an ISA cap changes nothing there")
  config = configs.load_pipeline_config("quickstart")
  config.train.precision = MIXED
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
  monkeypatch.setattr(train_step.reader, "read_metadata", lambda _: {"fingerprint": "x"})
  monkeypatch.setattr(train_step.common, "check_artifact", lambda *args: None)
  with pytest.raises(config_lib.ConfigError, match="ONEDNN_MAX_CPU_ISA=AVX2"):
    train_step.run(config, tmp_path / "examples", tmp_path / "train")
  assert not (tmp_path / "train").exists()
