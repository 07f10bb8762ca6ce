"""TF Serving export: versions, atomicity, models.config and the signatures in a TF-only process.

The exported signatures are run in a subprocess that imports only TensorFlow
and compared with the in-process model and with independent numpy
computations; the REST and gRPC requests documented in README.md and
docs/serving.md, sent to a quickstart-shaped export, and the export's warm-up
requests are parsed and executed the way TF Serving converts and runs them
(`tests/tf_serving_emulator.py`: no server binary exists here).
"""

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

import kerasvae
from kerasvae import artifacts
from kerasvae import serving
from kerasvae.metrics import iwae
from tests import markdown
from tests import tf_serving_emulator

REPO = Path(__file__).resolve().parents[1]
H, W, C, D = 28, 28, 1, 2
SIGNATURES_VAE = ["anomaly_score", "decode", "encode", "log_likelihood", "sample",
                  "serving_default"]
SIGNATURES_AE = ["decode", "encode", "sample", "serving_default"]


def tiny_vae(**kwargs):
  return kerasvae.VAE((H, W, C), D, hidden_units=(32,), **kwargs)


def tiny_autoencoder():
  ae = kerasvae.Autoencoder((H, W, C), D, hidden_units=(32,))
  # A fitted code distribution that is not N(0, I): the exported sampler is visibly the fitted one.
  codes = np.random.default_rng(3).normal([2.0, -1.0], [0.5, 3.0], size=(500, D))
  ae.fit_latent_sampler(codes)
  return ae


def images(n, seed=0):
  return np.random.default_rng(seed).uniform(size=(n, H, W, C)).astype("float32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """Three tiny models exported once: a Gaussian-prior VAE, a VampPrior VAE and an autoencoder."""
  base = tmp_path_factory.mktemp("serving") / "saved_models"
  # Seeded weights: the statistical checks below read one fixed model, not a new one each run
  # (test_standard_error_predicts_the_spread_over_seeds failed about one run in several).
  keras.utils.set_random_seed(0)
  models = {"vae": tiny_vae(), "vamp": tiny_vae(prior={"name": "vamp", "num_components": 3}),
            "ae": tiny_autoencoder()}
  paths = {name: serving.export_model(m, base, name, metadata={"run": name})
           for name, m in models.items()}
  return types.SimpleNamespace(base=base, models=models, paths=paths)


def grpc_request(signature, **inputs):
  """A Predict request for model "vae"'s `signature`, serialized and parsed (over the wire)."""
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  r = predict_pb2.PredictRequest()
  r.model_spec.name, r.model_spec.signature_name = "vae", signature
  for k, v in inputs.items():
    r.inputs[k].CopyFrom(tf.make_tensor_proto(v))
  return predict_pb2.PredictRequest.FromString(r.SerializeToString())


def tf_serving_would_load(name):
  """Whether TF Serving would parse a directory name as a version (absl::SimpleAtoi semantics)."""
  return re.fullmatch(r"\s*[+-]?[0-9]+\s*", name) is not None


# -- Versions, atomicity, models.config ----------------------------------------------------------


def test_versions_count_up_and_an_existing_version_is_refused(tmp_path):
  base = tmp_path / "saved_models"
  ae = kerasvae.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  (base / "ae" / "notes").mkdir(parents=True)  # not a version: ignored
  paths = [serving.export_model(ae, base, "ae") for _ in range(3)]
  assert [p.name for p in paths] == ["1", "2", "3"]
  assert serving.list_versions(base / "ae") == [1, 2, 3]
  saved_bytes = (paths[1] / "saved_model.pb").read_bytes()
  with pytest.raises(FileExistsError,
                     match=r"Received: version=2 .*existing versions: \[1, 2, 3\]"):
    serving.export_model(ae, base, "ae", version=2)
  assert (paths[1] / "saved_model.pb").read_bytes() == saved_bytes
  assert serving.export_model(ae, base, "ae", version=7).name == "7"
  assert serving.export_model(ae, base, "ae").name == "8"  # 1 + the largest, not the count
  # The umask's mode: readable by a server running as another user, unlike mkdtemp's 0700.
  assert paths[0].stat().st_mode & 0o777 == 0o777 & ~_umask()
  old = os.umask(0o027)
  try:
    assert serving.export_model(ae, base, "ae").stat().st_mode & 0o777 == 0o750
  finally:
    os.umask(old)
  assert sorted(p.name for p in (base / "ae").iterdir()) == ["1", "2", "3", "7", "8", "9",
                                                              "notes"]


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


@pytest.mark.parametrize("kwargs, match", [
    ({"version": 0}, r"Received: version=0"),
    ({"version": "3"}, r"Received: version='3'"),
    ({"version": True}, r"Received: version=True"),
    ({"model_name": "../vae"}, r"Received: model_name='../vae'"),
    ({"model_name": ".hidden"}, r"Received: model_name='.hidden'"),
    ({"metadata": ["a"]}, r"Received: metadata=\['a'\]"),
])
def test_bad_arguments_are_refused_by_name(tmp_path, kwargs, match):
  ae = kerasvae.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  with pytest.raises(ValueError, match=match):
    serving.export_model(ae, tmp_path, **{"model_name": "ae", **kwargs})
  assert not (tmp_path / "ae").exists()


@pytest.mark.parametrize("failing", ["saved_model_save", "metadata_write"])
def test_a_failed_export_leaves_no_version(tmp_path, monkeypatch, failing):
  base = tmp_path / "saved_models"
  ae = kerasvae.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  serving.export_model(ae, base, "ae")
  config_before = (base / "models.config").read_text()

  def half_written_save(obj, export_dir, signatures=None, **kwargs):
    (Path(export_dir) / "saved_model.pb").write_bytes(b"half")
    raise OSError("disk full")

  def failing_write_json(path, obj):
    raise OSError("disk full")

  if failing == "saved_model_save":
    monkeypatch.setattr(tf.saved_model, "save", half_written_save)
  else:  # after the SavedModel itself is complete
    monkeypatch.setattr(artifacts, "write_json", failing_write_json)
  for name in ("ae", "other"):
    with pytest.raises(OSError, match="disk full"):
      serving.export_model(ae, base, name)
  assert sorted(p.name for p in (base / "ae").iterdir()) == ["1"]  # no temp dir left either
  assert not any(tf_serving_would_load(p.name) for p in (base / "other").iterdir())
  assert list((base / "other").iterdir()) == []
  assert (base / "models.config").read_text() == config_before  # "other" not listed


def test_temporary_directories_are_not_versions(tmp_path, monkeypatch):
  """While a version is being written, its directory's name is not a version number."""
  seen = []
  real_save = tf.saved_model.save

  def spying_save(obj, export_dir, signatures=None, **kwargs):
    seen.extend(p.name for p in Path(export_dir).parent.iterdir())
    real_save(obj, export_dir, signatures=signatures, **kwargs)

  monkeypatch.setattr(tf.saved_model, "save", spying_save)
  serving.export_model(kerasvae.Autoencoder((4, 4, 1), 2, hidden_units=(8,)), tmp_path, "ae")
  assert len(seen) == 1 and seen[0].startswith(".export.tmp-")
  assert not tf_serving_would_load(seen[0])
  assert [p.name for p in (tmp_path / "ae").iterdir()] == ["1"]


def test_models_config_lists_every_model_with_an_absolute_base_path(exported):
  from tensorflow_serving.config import model_server_config_pb2

  config = text_format.Parse((exported.base / "models.config").read_text(),
                             model_server_config_pb2.ModelServerConfig())
  entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
  assert entries == [(name, str((exported.base / name).resolve()), "tensorflow")
                     for name in ("vae", "vamp", "ae")]  # in the order of their first export
  assert all(os.path.isabs(path) for _, path, _ in entries)
  assert not list(exported.base.glob(".models.config*"))  # no temporary file left


def test_export_metadata(exported):
  info = serving.read_export_metadata(exported.paths["vamp"])
  assert info["model_class"] == "VAE" and info["model_name"] == "vamp" and info["version"] == 1
  assert info["latent_dim"] == D and info["image_shape"] == [H, W, C]
  assert info["metadata"] == {"run": "vamp"}
  assert info["log_likelihood_seed"] == [0, 0]
  assert info["package_versions"]["tensorflow"] == tf.__version__
  assert info["model_config"]["prior"]["config"]["num_components"] == 3
  rebuilt = kerasvae.VAE.from_config(info["model_config"])
  assert rebuilt.count_params() == exported.models["vamp"].count_params()
  assert sorted(info["signatures"]) == SIGNATURES_VAE
  ae_info = serving.read_export_metadata(exported.paths["ae"])
  assert sorted(ae_info["signatures"]) == SIGNATURES_AE
  assert ae_info["signatures"]["encode"]["outputs"] == {"latent_mean": {"shape": [None, D],
                                                                        "dtype": "float32"}}


# -- The signatures in a process that imports only TensorFlow ------------------------------------

RUNNER = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import tensorflow as tf
    keras_after_import = {m for m in sys.modules if m.split(".")[0] in ("keras", "tf_keras")}
    jobs = json.load(open(sys.argv[1]))
    loaded, peak_rss_kb = {}, {}
    for job in jobs:
      if job["path"] not in loaded:
        loaded[job["path"]] = tf.saved_model.load(job["path"])
      fn = loaded[job["path"]].signatures[job["signature"]]
      before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
      outputs = fn(**{k: tf.constant(np.load(v)) for k, v in job["inputs"].items()})
      for k, v in outputs.items():
        np.save(job["out"] + "." + k + ".npy", v.numpy())
      peak_rss_kb[job["out"]] = [before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
    keras_after_run = {m for m in sys.modules if m.split(".")[0] in ("keras", "tf_keras")}
    json.dump({"signatures": {p: sorted(m.signatures) for p, m in loaded.items()},
               "kerasvae": [m for m in sys.modules if m.split(".")[0] == "kerasvae"],
               "tensorflow_probability": [m for m in sys.modules
                                          if m.split(".")[0] == "tensorflow_probability"],
               "keras_imported_by_tensorflow": "keras" in keras_after_import,
               "keras_added_by_load_and_run": sorted(keras_after_run - keras_after_import),
               "peak_rss_kb": peak_rss_kb},
              open(sys.argv[2], "w"))
""")


@pytest.fixture(scope="module")
def tf_only_run(exported, tmp_path_factory):
  """Runs every signature of the three exports in a subprocess that imports only TensorFlow."""
  work = tmp_path_factory.mktemp("tf_only")
  x1, x5 = images(1, seed=1), images(5, seed=2)
  z = np.array([[0.0, 0.0], [1.5, -0.5], [-2.0, 3.0]], np.float32)
  # One image scored alone, first in a batch of 64 and last in another batch of 64.
  alone = images(1, seed=4)
  first, last = images(64, seed=5), images(64, seed=6)
  first[0], last[63] = alone[0], alone[0]
  arrays = {"x1": x1, "x5": x5, "z": z,
            "n6": np.int32(6), "seed7": np.int32(7), "seed8": np.int32(8), "n0": np.int32(0),
            "alone": alone, "first": first, "last": last,
            "k1": np.int32(1), "k100": np.int32(100), "k500": np.int32(500),
            "k5000": np.int32(5000)}
  for k, v in arrays.items():
    np.save(work / f"{k}.npy", v)
  jobs, outputs = [], {}

  def job(model, signature, key, **inputs):
    out = str(work / f"{model}.{key}")
    jobs.append({"path": str(exported.paths[model]), "signature": signature, "out": out,
                 "inputs": {k: str(work / f"{v}.npy") for k, v in inputs.items()}})
    outputs[(model, key)] = out

  for model in ("vae", "vamp", "ae"):
    for n in ("x1", "x5"):
      job(model, "serving_default", f"default_{n}", images=n)
      job(model, "encode", f"encode_{n}", images=n)
    job(model, "decode", "decode", latents="z")
    job(model, "sample", "sample7", num_samples="n6", seed="seed7")
    job(model, "sample", "sample7_again", num_samples="n6", seed="seed7")
    job(model, "sample", "sample8", num_samples="n6", seed="seed8")
    job(model, "sample", "sample_none", num_samples="n0", seed="seed7")
    if model != "ae":
      job(model, "log_likelihood", "ll_x5_k500", images="x5", num_samples="k500")
      job(model, "log_likelihood", "ll_x5_k500_again", images="x5", num_samples="k500")
      job(model, "log_likelihood", "ll_x5_k1", images="x5", num_samples="k1")
      for batch in ("alone", "first", "last"):
        job(model, "log_likelihood", f"ll_{batch}_k100", images=batch, num_samples="k100")
  job("vae", "log_likelihood", "ll_first_k5000", images="first", num_samples="k5000")
  job("vae", "anomaly_score", "anomaly_x5_k100", images="x5", num_samples="k100")
  job("vae", "log_likelihood", "ll_x5_k100", images="x5", num_samples="k100")
  (work / "jobs.json").write_text(json.dumps(jobs))
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = subprocess.run([sys.executable, "-c", RUNNER, str(work / "jobs.json"),
                           str(work / "report.json")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]

  def read(model, key):
    prefix = outputs[(model, key)]
    return {Path(p).name[len(Path(prefix).name) + 1:-4]: np.load(p)
            for p in map(str, work.glob(Path(prefix).name + ".*.npy"))}

  def peak_rss_growth_mb(model, key):
    before, after = report["peak_rss_kb"][outputs[(model, key)]]
    return (after - before) / 1024.0

  report = json.loads((work / "report.json").read_text())
  return types.SimpleNamespace(report=report, read=read, peak_rss_growth_mb=peak_rss_growth_mb,
                               **arrays)


def test_tf_only_process_imports_neither_kerasvae_nor_tfp(tf_only_run, exported):
  report = tf_only_run.report
  assert report["kerasvae"] == [] and report["tensorflow_probability"] == []
  # TensorFlow 2.21's own `import tensorflow` imports Keras 3 (for tf.keras); loading and running
  # the SavedModels imports no further Keras module.
  assert report["keras_added_by_load_and_run"] == []
  assert report["signatures"] == {str(exported.paths["vae"]): SIGNATURES_VAE,
                                  str(exported.paths["vamp"]): SIGNATURES_VAE,
                                  str(exported.paths["ae"]): SIGNATURES_AE}
  for name in ("vae", "vamp", "ae"):
    text = (exported.paths[name] / "saved_model.pb").read_bytes()
    assert b"kerasvae" not in text and b"keras." not in text


@pytest.mark.parametrize("name", ["vae", "vamp", "ae"])
def test_encode_reconstruct_decode_match_the_model(tf_only_run, exported, name):
  model, run = exported.models[name], tf_only_run
  for n in ("x1", "x5"):
    x = getattr(run, n)
    default, encode = run.read(name, f"default_{n}"), run.read(name, f"encode_{n}")
    expected_mean = model.encode_mean(x).numpy()  # [B, D]
    np.testing.assert_allclose(default["latent_mean"], expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encode["latent_mean"], expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(default["reconstruction"], model.reconstruct(x).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert default["reconstruction"].shape == (len(x), H, W, C)
    if name == "ae":
      assert sorted(encode) == ["latent_mean"]
      assert sorted(default) == ["latent_mean", "reconstruction"]
    else:
      log_var = model.posterior_params(x)[1].numpy()
      np.testing.assert_allclose(encode["latent_log_var"], log_var, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(default["latent_log_var"], log_var, rtol=1e-5, atol=1e-6)
  decoded = run.read(name, "decode")["images"]  # [3, H, W, C]
  np.testing.assert_allclose(decoded, model.decode_mean(run.z).numpy(), rtol=1e-5, atol=1e-6)
  # Independent: the Bernoulli mean is the sigmoid of the decoder's logits.
  logits = model.decoder(run.z).numpy()
  np.testing.assert_allclose(decoded, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["vae", "vamp", "ae"])
def test_sample_is_seeded_and_matches_the_model(tf_only_run, exported, name):
  model, run = exported.models[name], tf_only_run
  first, again, other = (run.read(name, k) for k in ("sample7", "sample7_again", "sample8"))
  assert first["images"].shape == (6, H, W, C) and first["latents"].shape == (6, D)
  np.testing.assert_array_equal(first["images"], again["images"])
  np.testing.assert_array_equal(first["latents"], again["latents"])
  assert np.abs(first["latents"] - other["latents"]).min() > 1e-4
  assert np.abs(first["images"] - other["images"]).max() > 1e-3
  np.testing.assert_allclose(first["images"], model.sample(6, seed=7).numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(first["latents"],
                             model.sample_latents(6, seed=tf.constant([7, 0])).numpy(),
                             rtol=1e-5, atol=1e-6)
  eps = tf.random.stateless_normal([6, D], seed=[7, 0]).numpy()
  if name == "vae":  # N(0, I) prior: the latents are the stateless normal draws themselves
    np.testing.assert_allclose(first["latents"], eps, rtol=1e-6)
  elif name == "ae":  # the fitted code distribution: code_mean + code_std * eps
    np.testing.assert_allclose(first["latents"],
                               model.code_mean.numpy() + model.code_std.numpy() * eps, rtol=1e-5)
  empty = run.read(name, "sample_none")
  assert empty["images"].shape == (0, H, W, C) and empty["latents"].shape == (0, D)


def numpy_importance_weights(model, x, num_samples, encoded):
  """Independent log w [K, B] and the draws' z_1 [B, D] from the signature's stateless draws.

  numpy formulas for log q(z|x), log p(z) (N(0, I) or the VampPrior's mixture
  of the encoder's Gaussians at the pseudo-inputs) and the Bernoulli log p(x|z)
  of the decoder's logits, in float64.
  """
  eps = tf.random.stateless_normal([num_samples, 1, D], seed=[0, 0]).numpy().astype(np.float64)
  mean = encoded["latent_mean"].astype(np.float64)  # [B, D]
  log_var = encoded["latent_log_var"].astype(np.float64)  # [B, D]
  z = mean + np.exp(0.5 * log_var) * eps  # [K, B, D]

  def log_normal(v, m, lv):
    return -0.5 * (np.log(2 * np.pi) + lv + (v - m) ** 2 / np.exp(lv)).sum(-1)

  log_q = log_normal(z, mean, log_var)  # [K, B]
  if model.prior.analytic_kl:
    log_pz = log_normal(z, 0.0, 0.0)
  else:
    pseudo_mean, pseudo_log_var = (t.numpy().astype(np.float64) for t in model.posterior_params(
        np.clip(model.prior.pseudo_inputs.numpy(), 0.0, 1.0)))  # [M, D] x2
    components = log_normal(z[..., None, :], pseudo_mean, pseudo_log_var)  # [K, B, M]
    log_pz = np.logaddexp.reduce(components, axis=-1) - np.log(len(pseudo_mean))
  logits = model.decoder(z.reshape(-1, D).astype(np.float32)).numpy().astype(np.float64)
  logits = logits.reshape((num_samples,) + x.shape)
  log_px = -(np.logaddexp(0.0, logits) - x.astype(np.float64) * logits).sum(axis=(2, 3, 4))
  return log_px + log_pz - log_q, z[0], log_q[0] - log_pz[0]


@pytest.mark.parametrize("name", ["vae", "vamp"])
def test_log_likelihood_is_the_importance_weighted_bound(tf_only_run, exported, name):
  model, run = exported.models[name], tf_only_run
  served, again = run.read(name, "ll_x5_k500"), run.read(name, "ll_x5_k500_again")
  assert sorted(served) == sorted(serving.LOG_LIKELIHOOD_OUTPUTS)
  for k in serving.LOG_LIKELIHOOD_OUTPUTS:
    assert served[k].shape == (5,)
    np.testing.assert_array_equal(served[k], again[k])
  log_w, _, _ = numpy_importance_weights(model, run.x5, 500, run.read(name, "encode_x5"))
  log_mean_w = np.logaddexp.reduce(log_w, axis=0) - np.log(500)
  np.testing.assert_allclose(served["log_likelihood"], log_mean_w, rtol=1e-5, atol=2e-3)
  w = np.exp(log_w - log_w.max(0))  # [K, B], rescaled per image
  se = np.sqrt((500 * (w ** 2).sum(0) / w.sum(0) ** 2 - 1.0) / 499)
  np.testing.assert_allclose(served["standard_error"], se, rtol=2e-3, atol=1e-5)
  # Within Monte Carlo error of the model's own estimator (fresh, unseeded draws), the error
  # measured as the spread of 8 of its runs: the delta-method standard error understates it
  # when a few weights dominate, as they do for this untrained model.
  tf.random.set_seed(18)  # the reference draws are fixed too, so the test cannot flake
  references = np.stack([model.iwae_log_likelihood(run.x5, num_samples=500).numpy()
                         for _ in range(8)])  # [8, 5]
  spread = references.std(0, ddof=1)
  assert np.all(np.abs(served["log_likelihood"] - references.mean(0))
                < 6.0 * spread * np.sqrt(1.0 + 1.0 / 8) + 1e-2), (served, references)
  assert np.all(spread > 0)  # eight different estimates


@pytest.mark.parametrize("name", ["vae", "vamp"])
def test_log_likelihood_does_not_depend_on_batch_position(tf_only_run, name):
  run = tf_only_run
  alone, first, last = (run.read(name, f"ll_{b}_k100") for b in ("alone", "first", "last"))
  for k in serving.LOG_LIKELIHOOD_OUTPUTS:
    assert alone[k].shape == (1,) and first[k].shape == last[k].shape == (64,)
    np.testing.assert_allclose(first[k][0], alone[k][0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(last[k][63], alone[k][0], rtol=1e-5, atol=1e-3)
  # Other images get other values: the equality is not a constant output.
  assert np.ptp(first["log_likelihood"]) > 1.0


@pytest.mark.parametrize("name", ["vae", "vamp"])
def test_log_likelihood_with_one_sample_is_the_elbo(tf_only_run, exported, name):
  model, run = exported.models[name], tf_only_run
  k1, k500 = run.read(name, "ll_x5_k1"), run.read(name, "ll_x5_k500")
  for k in ("elbo", "reconstruction", "kl"):  # the one-sample terms do not depend on K
    np.testing.assert_array_equal(k1[k], k500[k])
  np.testing.assert_allclose(k1["elbo"], -(k1["reconstruction"] + k1["kl"]), rtol=1e-6)
  assert np.all(np.isnan(k1["standard_error"]))  # no spread to estimate from one sample
  log_w, z_1, kl_estimate = numpy_importance_weights(model, run.x5, 1, run.read(name, "encode_x5"))
  # K = 1: log w_1 = log p(x|z_1) - (log q(z_1|x) - log p(z_1)), the one-sample ELBO at z_1.
  np.testing.assert_allclose(k1["log_likelihood"], log_w[0], rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(k1["log_likelihood"], -(k1["reconstruction"] + kl_estimate),
                             rtol=1e-5, atol=1e-3)
  encoded = run.read(name, "encode_x5")
  mean, log_var = (encoded[k].astype(np.float64) for k in ("latent_mean", "latent_log_var"))
  if name == "vae":  # the analytic KL to N(0, I)
    np.testing.assert_allclose(k1["kl"], 0.5 * (np.exp(log_var) + mean ** 2 - 1.0 - log_var).sum(-1),
                               rtol=1e-4, atol=1e-6)
  else:  # a one-sample KL estimate: the ELBO is log w_1 itself
    np.testing.assert_allclose(k1["elbo"], k1["log_likelihood"], rtol=1e-5, atol=1e-3)
  logits = model.decoder(z_1.astype(np.float32)).numpy().astype(np.float64)
  x = run.x5.astype(np.float64)
  np.testing.assert_allclose(k1["reconstruction"],
                             (np.logaddexp(0.0, logits) - x * logits).sum(axis=(1, 2, 3)), rtol=1e-5)


def test_log_likelihood_memory_is_bounded_for_k_5000(tf_only_run):
  """64 images x 5,000 samples decoded at once would hold 1 GB of logits alone."""
  out = tf_only_run.read("vae", "ll_first_k5000")
  assert out["log_likelihood"].shape == (64,) and np.all(np.isfinite(out["log_likelihood"]))
  k100 = tf_only_run.read("vae", "ll_first_k100")
  # Smaller with 50x the samples (by less than 1/√50 here: a few weights dominate).
  assert np.mean(out["standard_error"]) < 0.7 * np.mean(k100["standard_error"])
  growth = tf_only_run.peak_rss_growth_mb("vae", "ll_first_k5000")
  assert growth < 400, growth


def test_standard_error_predicts_the_spread_over_seeds(exported):
  model, x = exported.models["vamp"], images(4, seed=9)
  fn = tf.function(lambda x, seed: iwae.estimate(
      model, x, tf.constant(1000), seed=seed), autograph=False)
  runs = [fn(x, tf.constant([s, 1])) for s in range(40)]
  values = np.stack([r["log_likelihood"].numpy() for r in runs])  # [40, 4]
  predicted = np.sqrt(np.mean(np.stack([r["standard_error"].numpy() for r in runs]) ** 2, 0))
  ratio = values.std(0, ddof=1) / predicted  # per image; the SD of 40 draws is within ~±25 %
  assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio


def test_saved_model_cli_lists_every_signature_input_and_output(exported):
  cli = shutil.which("saved_model_cli")
  command = [cli] if cli else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
  listed = {}
  for name in ("vae", "ae"):
    result = subprocess.run(command + ["show", "--dir", str(exported.paths[name]), "--all"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    listed[name] = {}
    for block in re.split(r"\nsignature_def\['", result.stdout)[1:]:
      signature = block.split("'", 1)[0]
      tensors = re.findall(
          r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: ([^\n]+)", block)
      listed[name][signature] = set(tensors)
    listed[name].pop("__saved_model_init_op", None)
  images, latents = ("DT_FLOAT", "(-1, 28, 28, 1)"), ("DT_FLOAT", "(-1, 2)")
  scalar = ("DT_INT32", "()")
  per_example = ("DT_FLOAT", "(-1)")
  terms = {k: per_example for k in serving.LOG_LIKELIHOOD_OUTPUTS}

  def entries(kind, **tensors):
    return {(kind, tensor) + spec for tensor, spec in tensors.items()}

  assert listed["vae"] == {
      "serving_default": entries("inputs", images=images) | entries(
          "outputs", reconstruction=images, latent_mean=latents, latent_log_var=latents),
      "encode": entries("inputs", images=images) | entries(
          "outputs", latent_mean=latents, latent_log_var=latents),
      "decode": entries("inputs", latents=latents) | entries("outputs", images=images),
      "sample": entries("inputs", num_samples=scalar, seed=scalar) | entries(
          "outputs", images=images, latents=latents),
      "log_likelihood": entries("inputs", images=images, num_samples=scalar) | entries(
          "outputs", **terms),
      "anomaly_score": entries("inputs", images=images, num_samples=scalar) | entries(
          "outputs", anomaly_score=per_example, input_complexity=per_example, **terms),
  }
  assert listed["ae"] == {
      "serving_default": entries("inputs", images=images) | entries(
          "outputs", reconstruction=images, latent_mean=latents),
      "encode": entries("inputs", images=images) | entries("outputs", latent_mean=latents),
      "decode": listed["vae"]["decode"],
      "sample": listed["vae"]["sample"],
  }
  # The contract written to assets.extra/kerasvae.json says the same.
  dtypes = {"float32": "DT_FLOAT", "int32": "DT_INT32"}
  for name in ("vae", "ae"):
    contract = serving.read_export_metadata(exported.paths[name])["signatures"]
    assert listed[name] == {
        signature: {(kind, tensor, dtypes[spec["dtype"]],
                     "(" + ", ".join("-1" if s is None else str(s) for s in spec["shape"]) + ")")
                    for kind in ("inputs", "outputs") for tensor, spec in c[kind].items()}
        for signature, c in contract.items()}


# -- The documented requests ---------------------------------------------------------------------


def documented_blocks(language):
  """The code blocks of the README's serving section and of docs/serving.md."""
  texts = (markdown.section(markdown.README.read_text(), "Serving"),
           (REPO / "docs" / "serving.md").read_text())
  return [b for text in texts for b in markdown.fenced_blocks(text, language)]


@pytest.fixture(scope="module")
def servable(exported):
  """The VAE export loaded as TF Serving loads it (a session on the "serve" MetaGraphDef)."""
  return tf_serving_emulator.Servable(exported.paths["vae"])


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
  """What `kerasvae run` exports with the bundled quickstart config, as the docs address it:
  its `export.model_name`, the dSprites image shape and its model block (untrained: the
  requests are under test, not the weights), loaded in plain TensorFlow and as TF Serving
  loads it."""
  from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel

  config = configs.load_pipeline_config("quickstart")
  assert config.ingest.data.source == "dsprites"
  shape = (dsprites.IMAGE_SIZE, dsprites.IMAGE_SIZE, 1)
  model = common.build_model(config.model, shape)
  path = serving.export_model(model, tmp_path_factory.mktemp("quickstart") / "saved_models",
                              config.export.model_name)
  return types.SimpleNamespace(
      model=model, name=config.export.model_name, shape=shape,
      latent_dim=config.model.latent_dim, servable=tf_serving_emulator.Servable(path),
      loaded=tf.saved_model.load(str(path)))


def test_warmup_requests_replay_against_every_signature(exported, servable):
  from tensorflow_serving.apis import prediction_log_pb2

  # Replayed in a session that restores the checkpoint, as TF Serving runs a SavedModel: every
  # signature of every model must find its variables restored there.
  for name in ("vae", "vamp", "ae"):
    path = exported.paths[name] / "assets.extra" / serving.WARMUP_FILE
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]
    contract = serving.read_export_metadata(exported.paths[name])["signatures"]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * len(contract)
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request
                for log in logs}
    assert sorted(requests) == sorted(contract)
    assert all(r.model_spec.name == name for r in requests.values())
    target = servable if name == "vae" else tf_serving_emulator.Servable(exported.paths[name])
    loaded = tf.saved_model.load(str(exported.paths[name]))
    for signature, request in requests.items():
      assert sorted(request.inputs) == sorted(contract[signature]["inputs"])
      response = target.predict(request)  # as TF Serving replays it at load
      assert sorted(response.outputs) == sorted(contract[signature]["outputs"])
      direct = loaded.signatures[signature](
          **{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
      for k, v in response.outputs.items():
        value = tf.make_ndarray(v)
        expected_rank = len(contract[signature]["outputs"][k]["shape"])
        assert value.ndim == expected_rank and value.shape[0] >= 1
        np.testing.assert_allclose(value, direct[k].numpy(), rtol=1e-5, atol=1e-5)


def test_log_likelihood_num_samples_defaults_over_grpc_and_is_checked(exported, servable):
  from tensorflow.core.protobuf import saved_model_pb2

  saved = saved_model_pb2.SavedModel.FromString(
      (exported.paths["vae"] / "saved_model.pb").read_bytes())
  defaults = saved.meta_graphs[0].signature_def["log_likelihood"].defaults
  assert sorted(defaults) == ["num_samples"]
  assert tf.make_ndarray(defaults["num_samples"]) == serving.DEFAULT_NUM_SAMPLES
  x = images(3, seed=11)

  request = functools.partial(grpc_request, "log_likelihood")

  omitted = servable.predict(request(images=x))
  sent = servable.predict(request(images=x, num_samples=np.int32(serving.DEFAULT_NUM_SAMPLES)))
  other = servable.predict(request(images=x, num_samples=np.int32(10)))
  for k in serving.LOG_LIKELIHOOD_OUTPUTS:
    np.testing.assert_array_equal(tf.make_ndarray(omitted.outputs[k]), tf.make_ndarray(sent.outputs[k]))
  assert not np.array_equal(tf.make_ndarray(other.outputs["log_likelihood"]),
                            tf.make_ndarray(sent.outputs["log_likelihood"]))
  for bad in (0, serving.MAX_NUM_SAMPLES + 1):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected num_samples"):
      servable.predict(request(images=x, num_samples=np.int32(bad)))
  # REST cannot leave an input out (json_tensor.cc asks for every named input).
  with pytest.raises(tf_serving_emulator.ServingError, match="Missing named input: num_samples"):
    servable.rest_predict({"signature_name": "log_likelihood", "inputs": {"images": x.tolist()}})


def test_anomaly_score_is_log_likelihood_corrected_by_the_png_code_length(tf_only_run):
  """In a TensorFlow-only process: anomaly_score = −log p̂(x) − L_PNG(x), log p̂(x) the
  log_likelihood signature's for the same K (same draws), L the PNG size of the 8-bit image."""
  from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
  served = tf_only_run.read("vae", "anomaly_x5_k100")
  ll = tf_only_run.read("vae", "ll_x5_k100")
  assert sorted(served) == sorted(serving.ANOMALY_SCORE_OUTPUTS)
  for name in serving.LOG_LIKELIHOOD_OUTPUTS:
    np.testing.assert_allclose(served[name], ll[name], rtol=1e-6, atol=1e-4)
  pixels = np.round(tf_only_run.x5 * 255).astype(np.uint8)
  sizes = np.array([len(tf.io.encode_png(p, 9).numpy()) for p in pixels])
  np.testing.assert_allclose(served["input_complexity"], sizes * 8 * np.log(2), rtol=1e-6)
  # Noise does not compress: about one byte per pixel (28 x 28), plus PNG's headers.
  assert np.all((sizes > H * W) & (sizes < 1.2 * H * W + 200))
  np.testing.assert_allclose(anomaly.png_code_length_numpy(tf_only_run.x5),
                             served["input_complexity"], rtol=0.1)  # Pillow's encoder
  np.testing.assert_allclose(served["anomaly_score"],
                             -ll["log_likelihood"] - served["input_complexity"], rtol=1e-6,
                             atol=1e-3)


def test_anomaly_score_over_rest_and_grpc(exported, servable):
  """The request formats TF Serving accepts: REST columnar (every input named), REST rows
  refused (a scalar input has no rows), gRPC with and without num_samples (the default)."""
  x = images(3, seed=12)
  loaded = tf.saved_model.load(str(exported.paths["vae"]))
  expected = loaded.signatures["anomaly_score"](images=tf.constant(x),
                                                 num_samples=tf.constant(50))
  body = json.dumps({"signature_name": "anomaly_score",
                     "inputs": {"images": x.tolist(), "num_samples": 50}})
  outputs = servable.rest_predict(body)["outputs"]
  assert sorted(outputs) == sorted(serving.ANOMALY_SCORE_OUTPUTS)
  for name in serving.ANOMALY_SCORE_OUTPUTS:
    np.testing.assert_allclose(outputs[name], expected[name].numpy(), rtol=1e-5, atol=1e-3)
  with pytest.raises((tf_serving_emulator.ServingError, ValueError, tf.errors.OpError)):
    servable.rest_predict({"signature_name": "anomaly_score",
                           "instances": [{"images": i, "num_samples": 50} for i in x.tolist()]})

  request = functools.partial(grpc_request, "anomaly_score")

  sent = servable.predict(request(images=x, num_samples=np.int32(50)))
  np.testing.assert_allclose(tf.make_ndarray(sent.outputs["anomaly_score"]),
                             expected["anomaly_score"].numpy(), rtol=1e-5, atol=1e-3)
  omitted = servable.predict(request(images=x))
  default = loaded.signatures["anomaly_score"](
      images=tf.constant(x), num_samples=tf.constant(serving.DEFAULT_NUM_SAMPLES))
  np.testing.assert_allclose(tf.make_ndarray(omitted.outputs["anomaly_score"]),
                             default["anomaly_score"].numpy(), rtol=1e-5, atol=1e-3)
  # The trap the score corrects: a constant black image gets a higher log p(x) than noise but
  # also a far shorter PNG.
  black = np.zeros((1, H, W, C), np.float32)
  out = loaded.signatures["anomaly_score"](images=tf.constant(black), num_samples=tf.constant(10))
  assert float(out["input_complexity"][0]) < 0.2 * float(expected["input_complexity"][0])


def test_documented_rest_requests_run_against_the_quickstart_export(quickstart, tmp_path):
  """Every REST request of the README and docs/serving.md, as a user sends it to the model the
  quickstart exports: the Python blocks write the image requests in an empty directory, then
  each `curl -d` body goes through TF Serving's JSON rules to the loaded SavedModel."""
  writers = [b for b in documented_blocks("python") if "json.dump" in b]
  assert len(writers) == 2  # the README's and docs/serving.md's
  for writer in writers:
    result = subprocess.run([sys.executable, "-c", writer], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
  commands = [c for b in documented_blocks("bash") for c in markdown.shell_commands(b)
              if c[0] == "curl"]
  assert len(commands) == 9
  model, servable = quickstart.model, quickstart.servable
  seen = set()
  for words in commands:
    assert words[:2] == ["curl", "-d"] and len(words) == 4, words
    assert words[3] == f"http://localhost:8501/v1/models/{quickstart.name}:predict", words
    body = (tmp_path / words[2][1:]).read_text() if words[2].startswith("@") else words[2]
    response = servable.rest_predict(body)  # raises where TF Serving would answer 400
    body = json.loads(body)
    signature, form = body["signature_name"], "rows" if "instances" in body else "columns"
    seen.add((signature, form))
    result = response["predictions" if form == "rows" else "outputs"]
    sent = body["instances"] if form == "rows" else body["inputs"]
    if signature == "decode":
      z = np.array(sent if form == "rows" else sent["latents"], np.float32)
      assert z.shape == (2, quickstart.latent_dim)
      np.testing.assert_allclose(np.array(result), model.decode_mean(z).numpy(), atol=1e-6)
      continue
    if signature == "sample":
      assert sent == {"num_samples": 4, "seed": 42}
      assert np.shape(result["images"]) == (4, *quickstart.shape)
      np.testing.assert_allclose(np.array(result["images"]), model.sample(4, seed=42).numpy(),
                                 atol=1e-6)
      continue
    if form == "rows":  # bare images or {"images": image} per row
      x = np.array([r["images"] if isinstance(r, dict) else r for r in sent], np.float32)
    else:
      x = np.array(sent["images"], np.float32)
    assert x.shape == (2, *quickstart.shape) and 0 <= x.min() and x.max() <= 1
    if signature == "log_likelihood":
      expected = quickstart.loaded.signatures["log_likelihood"](
          images=tf.constant(x), num_samples=tf.constant(sent["num_samples"], tf.int32))
      assert sorted(result) == sorted(serving.LOG_LIKELIHOOD_OUTPUTS)
      for name in serving.LOG_LIKELIHOOD_OUTPUTS:
        np.testing.assert_allclose(result[name], expected[name].numpy(), rtol=1e-5, atol=1e-4)
      continue
    if form == "rows":  # a list of per-image dicts → columns
      result = {k: [r[k] for r in result] for k in result[0]}
    mean, log_var = model.posterior_params(x)
    np.testing.assert_allclose(result["latent_mean"], mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result["latent_log_var"], log_var.numpy(), rtol=1e-5, atol=1e-5)
    if signature == "serving_default":
      np.testing.assert_allclose(result["reconstruction"], model.reconstruct(x).numpy(),
                                 atol=1e-5)
  assert seen == {(s, f) for s in ("decode", "serving_default", "encode") for f in ("rows", "columns")
                  } | {("sample", "columns"), ("log_likelihood", "columns")}
  # As documented, scalar inputs have no row form: `sample` and `log_likelihood` refuse it.
  x = np.random.default_rng(0).uniform(size=(2, *quickstart.shape)).astype("float32")
  for body in ({"signature_name": "sample", "instances": [{"num_samples": 4, "seed": 42}]},
               {"signature_name": "log_likelihood",
                "instances": [{"images": image, "num_samples": 100} for image in x.tolist()]},
               {"signature_name": "log_likelihood", "instances": x.tolist()}):
    with pytest.raises((tf_serving_emulator.ServingError, ValueError, tf.errors.OpError)):
      servable.rest_predict(body)


def test_readme_grpc_example_runs_against_the_quickstart_export(quickstart, monkeypatch):
  """Runs the README's gRPC client: real tensorflow-serving-api requests, serialised as on the
  wire, answered by the quickstart-shaped SavedModel in place of the server."""
  from tensorflow_serving.apis import predict_pb2
  from tensorflow_serving.apis import prediction_service_pb2_grpc

  blocks = [b for b in documented_blocks("python") if "predict_pb2" in b]
  assert len(blocks) == 1
  requests = []

  class PredictionServiceStub:

    def __init__(self, channel):
      assert channel == ("insecure", "localhost:8500")

    def Predict(self, request, timeout):  # pylint: disable=invalid-name
      assert isinstance(request, predict_pb2.PredictRequest) and timeout > 0
      request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
      requests.append(request)
      assert request.model_spec.name == quickstart.name
      response = quickstart.servable.predict(request)
      return type(response).FromString(response.SerializeToString())

  monkeypatch.setattr(prediction_service_pb2_grpc, "PredictionServiceStub", PredictionServiceStub)
  monkeypatch.setitem(sys.modules, "grpc", types.SimpleNamespace(
      insecure_channel=lambda target: ("insecure", target)))
  namespace = {}
  exec(compile(blocks[0], "README.md (gRPC example)", "exec"), namespace)

  encode, sample, log_likelihood = requests
  assert encode.model_spec.signature_name == "encode"
  x = namespace["images"]
  assert x.shape == (2, *quickstart.shape)
  np.testing.assert_array_equal(tf.make_ndarray(encode.inputs["images"]), x)
  assert sample.model_spec.signature_name == "sample"
  for name, value in (("num_samples", 4), ("seed", 42)):
    proto = sample.inputs[name]
    assert proto.dtype == tf.int32.as_datatype_enum and list(proto.tensor_shape.dim) == []
    assert tf.make_ndarray(proto) == value
  assert log_likelihood.model_spec.signature_name == "log_likelihood"
  assert sorted(log_likelihood.inputs) == ["images"]  # num_samples: the SignatureDef's default
  model = quickstart.model
  assert namespace["latent_mean"].shape == (2, quickstart.latent_dim)
  np.testing.assert_allclose(namespace["latent_mean"], model.encode_mean(x).numpy(), rtol=1e-5,
                             atol=1e-5)
  assert namespace["samples"].shape == (4, *quickstart.shape)
  np.testing.assert_allclose(namespace["samples"], model.sample(4, seed=42).numpy(), atol=1e-6)
  expected = iwae.estimate(
      model, x, tf.constant(serving.DEFAULT_NUM_SAMPLES))
  np.testing.assert_allclose(namespace["log_px"], expected["log_likelihood"].numpy(),
                             rtol=1e-5, atol=1e-3)


def test_which_clients_may_leave_num_samples_out_is_as_documented(quickstart):
  """docs/serving.md's table (and the README's summary of it), client by client, on the
  quickstart-shaped export."""
  from tensorflow_serving.apis import predict_pb2

  x = np.random.default_rng(5).uniform(size=(2, *quickstart.shape)).astype("float32")
  k = serving.DEFAULT_NUM_SAMPLES
  signature = quickstart.loaded.signatures["log_likelihood"]
  sent = signature(images=tf.constant(x), num_samples=tf.constant(k))["log_likelihood"].numpy()

  # TF Serving, gRPC: the server fills it from the SignatureDef's defaults.
  request = predict_pb2.PredictRequest()
  request.model_spec.name, request.model_spec.signature_name = quickstart.name, "log_likelihood"
  request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
  response = quickstart.servable.predict(request)
  np.testing.assert_allclose(tf.make_ndarray(response.outputs["log_likelihood"]), sent, rtol=1e-5)
  # TF Serving, REST: refused.
  with pytest.raises(tf_serving_emulator.ServingError, match="Missing named input: num_samples"):
    quickstart.servable.rest_predict(
        {"signature_name": "log_likelihood", "inputs": {"images": x.tolist()}})
  # Plain TensorFlow, the saved function: the default.
  np.testing.assert_allclose(quickstart.loaded.log_likelihood(tf.constant(x))["log_likelihood"],
                             sent, rtol=1e-5)
  # Plain TensorFlow, the signature: every input required.
  with pytest.raises(TypeError, match="missing a required argument: 'num_samples'"):
    signature(images=tf.constant(x))
  # A TF1 session fed by tensor names: the placeholder's default.
  servable = quickstart.servable
  definition = servable.signatures["log_likelihood"]
  placeholder = servable.graph.get_tensor_by_name(definition.inputs["num_samples"].name)
  assert placeholder.op.type == "PlaceholderWithDefault"
  fed_images_only = servable.session.run(definition.outputs["log_likelihood"].name,
                                         {definition.inputs["images"].name: x})
  np.testing.assert_allclose(fed_images_only, sent, rtol=1e-5)
