"""TF Serving export: versions, atomicity, models.config and the signatures in a TF-only process.

The exported signatures are run in a subprocess that imports only TensorFlow
and compared with the in-process model and with independent numpy
computations; the REST and gRPC requests documented in README.md are parsed
from it and executed against the loaded SavedModel the way TF Serving
converts them.
"""

import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format

import kerasvae
from kerasvae import artifacts
from kerasvae import serving

REPO = Path(__file__).resolve().parents[1]
H, W, C, D = 28, 28, 1, 2
SIGNATURES_VAE = ["decode", "encode", "log_likelihood", "sample", "serving_default"]
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
  models = {"vae": tiny_vae(), "vamp": tiny_vae(prior={"name": "vamp", "num_components": 3}),
            "ae": tiny_autoencoder()}
  paths = {name: serving.export_model(m, base, name, metadata={"run": name})
           for name, m in models.items()}
  return types.SimpleNamespace(base=base, models=models, paths=paths)


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
  # Readable by a server running as another user, unlike mkdtemp's 0700.
  assert paths[0].stat().st_mode & 0o777 == 0o755
  assert sorted(p.name for p in (base / "ae").iterdir()) == ["1", "2", "3", "7", "8", "notes"]


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


def model_server_config_class():
  """ModelServerConfig's fields from tensorflow_serving/config/model_server_config.proto.

  tensorflow-serving-api is not installed, so the messages are declared here
  (same names, types and field numbers) to parse models.config strictly.
  """
  f = descriptor_pb2.FileDescriptorProto(name="kerasvae_test_model_server_config.proto",
                                         package="tensorflow.serving", syntax="proto3")
  string, repeated = descriptor_pb2.FieldDescriptorProto.TYPE_STRING, 3
  model = f.message_type.add(name="ModelConfig")
  for name, number in (("name", 1), ("base_path", 2), ("model_platform", 4)):
    model.field.add(name=name, number=number, type=string, label=1)
  config_list = f.message_type.add(name="ModelConfigList")
  config_list.field.add(name="config", number=1, label=repeated,
                        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                        type_name=".tensorflow.serving.ModelConfig")
  server = f.message_type.add(name="ModelServerConfig")
  server.field.add(name="model_config_list", number=1, label=1,
                   type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                   type_name=".tensorflow.serving.ModelConfigList")
  pool = descriptor_pool.DescriptorPool()
  pool.Add(f)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.ModelServerConfig"))


def test_models_config_lists_every_model_with_an_absolute_base_path(exported):
  config = text_format.Parse((exported.base / "models.config").read_text(),
                             model_server_config_class()())
  entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
  assert entries == [(name, str((exported.base / name).resolve()), "tensorflow")
                     for name in ("ae", "vae", "vamp")]
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
    import json, sys
    import numpy as np
    import tensorflow as tf
    keras_after_import = {m for m in sys.modules if m.split(".")[0] in ("keras", "tf_keras")}
    jobs = json.load(open(sys.argv[1]))
    loaded = {}
    for job in jobs:
      if job["path"] not in loaded:
        loaded[job["path"]] = tf.saved_model.load(job["path"])
      fn = loaded[job["path"]].signatures[job["signature"]]
      outputs = fn(**{k: tf.constant(np.load(v)) for k, v in job["inputs"].items()})
      for k, v in outputs.items():
        np.save(job["out"] + "." + k + ".npy", v.numpy())
    keras_after_run = {m for m in sys.modules if m.split(".")[0] in ("keras", "tf_keras")}
    json.dump({"signatures": {p: sorted(m.signatures) for p, m in loaded.items()},
               "kerasvae": [m for m in sys.modules if m.split(".")[0] == "kerasvae"],
               "tensorflow_probability": [m for m in sys.modules
                                          if m.split(".")[0] == "tensorflow_probability"],
               "keras_imported_by_tensorflow": "keras" in keras_after_import,
               "keras_added_by_load_and_run": sorted(keras_after_run - keras_after_import)},
              open(sys.argv[2], "w"))
""")


@pytest.fixture(scope="module")
def tf_only_run(exported, tmp_path_factory):
  """Runs every signature of the three exports in a subprocess that imports only TensorFlow."""
  work = tmp_path_factory.mktemp("tf_only")
  x1, x5 = images(1, seed=1), images(5, seed=2)
  z = np.array([[0.0, 0.0], [1.5, -0.5], [-2.0, 3.0]], np.float32)
  arrays = {"x1": x1, "x5": x5, "z": z,
            "n6": np.int32(6), "seed7": np.int32(7), "seed8": np.int32(8), "n0": np.int32(0)}
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
      job(model, "log_likelihood", "elbo_x5", images="x5")
      job(model, "log_likelihood", "elbo_x5_again", images="x5")
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

  return types.SimpleNamespace(report=json.loads((work / "report.json").read_text()), read=read,
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


def test_log_likelihood_is_the_fixed_seed_elbo(tf_only_run, exported):
  run = tf_only_run
  for name in ("vae", "vamp"):
    model = exported.models[name]
    terms, again = run.read(name, "elbo_x5"), run.read(name, "elbo_x5_again")
    for k in ("elbo", "reconstruction", "kl"):
      assert terms[k].shape == (5,)
      np.testing.assert_array_equal(terms[k], again[k])
    expected = model.elbo(run.x5, seed=tf.constant([0, 0]))
    for k in ("elbo", "reconstruction", "kl"):
      np.testing.assert_allclose(terms[k], expected[k].numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl"]), rtol=1e-6)
  # Independent numpy ELBO for the N(0, I) prior: z = mean + std * eps(seed [0, 0]),
  # Bernoulli cross-entropy of the decoded z and the analytic KL.
  model, x = exported.models["vae"], run.x5.astype(np.float64)
  encoded = run.read("vae", "encode_x5")
  mean = encoded["latent_mean"].astype(np.float64)  # [5, D]
  log_var = encoded["latent_log_var"].astype(np.float64)  # [5, D]
  eps = tf.random.stateless_normal([5, D], seed=[0, 0]).numpy()
  z = (mean + np.exp(0.5 * log_var) * eps).astype(np.float32)
  logits = model.decoder(z).numpy().astype(np.float64)
  reconstruction = (np.logaddexp(0.0, logits) - x * logits).sum(axis=(1, 2, 3))
  kl = 0.5 * (np.exp(log_var) + mean ** 2 - 1.0 - log_var).sum(-1)
  terms = run.read("vae", "elbo_x5")
  np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-5)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(terms["elbo"], -(reconstruction + kl), rtol=1e-5)


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
      "log_likelihood": entries("inputs", images=images) | entries(
          "outputs", elbo=per_example, reconstruction=per_example, kl=per_example),
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


# -- The README's requests ------------------------------------------------------------------------


def serving_section():
  text = (REPO / "README.md").read_text()
  start = text.index("## Serving with TF Serving")
  end = text.find("\n## ", start + 1)
  return text[start:] if end < 0 else text[start:end]


def fenced_blocks(language):
  return re.findall(rf"```{language}\n(.*?)```", serving_section(), flags=re.S)


def rest_predict(loaded, body):
  """Runs a REST :predict body against a loaded SavedModel as TF Serving converts it.

  Row format (`instances`): a list with one entry per example, a dict of named
  inputs or (one-input signatures) a bare value; each input is the stack of
  its entries. Columnar format (`inputs`): a dict of named inputs or (one
  input) a bare value, each a whole tensor. Returns `{"predictions": ...}` or
  `{"outputs": ...}`, with the output names omitted when there is only one.
  """
  assert set(body) <= {"signature_name", "instances", "inputs"}, body.keys()
  fn = loaded.signatures[body.get("signature_name", "serving_default")]
  specs = fn.structured_input_signature[1]  # {name: TensorSpec}
  if "instances" in body:
    rows = body["instances"]
    if all(isinstance(r, dict) for r in rows):
      values = {k: [r[k] for r in rows] for k in rows[0]}
    else:
      assert len(specs) == 1, "bare-value instances need a one-input signature"
      values = {next(iter(specs)): rows}
  else:
    columns = body["inputs"]
    values = columns if isinstance(columns, dict) else {next(iter(specs)): columns}
  assert set(values) == set(specs), (sorted(values), sorted(specs))
  outputs = fn(**{k: tf.constant(np.asarray(v), dtype=specs[k].dtype) for k, v in values.items()})
  outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
  if "instances" in body:
    if len(outputs) == 1:
      return {"predictions": next(iter(outputs.values()))}
    n = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}
  return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}


def test_readme_rest_requests_run_against_the_export(exported, tmp_path):
  # The Python block that writes image request files, run as a user would, in an empty directory.
  writers = [b for b in fenced_blocks("python") if "json.dump" in b]
  assert len(writers) == 1
  result = subprocess.run([sys.executable, "-c", writers[0]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  commands = [c for b in fenced_blocks("bash") for c in b.replace("\\\n", " ").splitlines()
              if c.startswith("curl -d")]
  assert len(commands) == 10
  loaded = tf.saved_model.load(str(exported.paths["vae"]))
  model = exported.models["vae"]
  readme_images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
  seen = set()
  for command in commands:
    words = shlex.split(command)
    assert words[:2] == ["curl", "-d"] and len(words) == 4, command
    assert words[3] == "http://localhost:8501/v1/models/vae:predict"
    data = words[2]
    body = json.loads((tmp_path / data[1:]).read_text() if data.startswith("@") else data)
    response = rest_predict(loaded, body)
    signature, form = body["signature_name"], "rows" if "instances" in body else "columns"
    seen.add((signature, form))
    result = response["predictions" if form == "rows" else "outputs"]
    if signature == "decode":
      z = np.array([[0.0, 0.0], [1.5, -0.5]], np.float32)
      np.testing.assert_allclose(np.array(result), model.decode_mean(z).numpy(), atol=1e-6)
    elif signature == "sample":
      assert body["inputs"] == {"num_samples": 4, "seed": 42}
      np.testing.assert_allclose(np.array(result["images"]), model.sample(4, seed=42).numpy(),
                                 atol=1e-6)
    else:
      if form == "rows":  # a list of per-image dicts → columns
        result = {k: [r[k] for r in result] for k in result[0]}
      if signature == "log_likelihood":
        expected = model.elbo(readme_images, seed=tf.constant([0, 0]))
        np.testing.assert_allclose(result["elbo"], expected["elbo"].numpy(), rtol=1e-5)
        assert sorted(result) == ["elbo", "kl", "reconstruction"]
      else:
        mean, log_var = model.posterior_params(readme_images)
        np.testing.assert_allclose(result["latent_mean"], mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result["latent_log_var"], log_var.numpy(), rtol=1e-5, atol=1e-6)
        if signature == "serving_default":
          np.testing.assert_allclose(result["reconstruction"],
                                     model.reconstruct(readme_images).numpy(), atol=1e-6)
  assert seen == {(s, f) for s in ("decode", "serving_default", "encode", "log_likelihood")
                  for f in ("rows", "columns")} | {("sample", "columns")}
  # As documented, `sample` cannot take the row format: its inputs are scalars.
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
    rest_predict(loaded, {"signature_name": "sample",
                          "instances": [{"num_samples": 4, "seed": 42}]})


def test_readme_grpc_example_builds_the_right_tensors(exported, monkeypatch):
  """Runs the README's gRPC example with a stand-in server that executes the loaded SavedModel."""
  from tensorflow.core.framework import tensor_pb2
  from tensorflow.core.framework import types_pb2

  blocks = [b for b in fenced_blocks("python") if "predict_pb2" in b]
  assert len(blocks) == 1
  loaded = tf.saved_model.load(str(exported.paths["vae"]))
  requests = []

  class PredictRequest:

    def __init__(self):
      self.model_spec = types.SimpleNamespace(name="", signature_name="")
      self.inputs = collections.defaultdict(tensor_pb2.TensorProto)

  class PredictionServiceStub:

    def __init__(self, channel):
      assert channel == ("insecure", "localhost:8500")

    def Predict(self, request, timeout):  # pylint: disable=invalid-name
      requests.append(request)
      assert request.model_spec.name == "vae"
      fn = loaded.signatures[request.model_spec.signature_name]
      outputs = fn(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
      return types.SimpleNamespace(outputs={k: tf.make_tensor_proto(v.numpy())
                                            for k, v in outputs.items()})

  apis = types.ModuleType("tensorflow_serving.apis")
  apis.predict_pb2 = types.SimpleNamespace(PredictRequest=PredictRequest)
  apis.prediction_service_pb2_grpc = types.SimpleNamespace(
      PredictionServiceStub=PredictionServiceStub)
  grpc = types.SimpleNamespace(insecure_channel=lambda target: ("insecure", target))
  for module_name, module in (("tensorflow_serving", types.ModuleType("tensorflow_serving")),
                              ("tensorflow_serving.apis", apis), ("grpc", grpc)):
    monkeypatch.setitem(sys.modules, module_name, module)
  namespace = {}
  exec(compile(blocks[0], "README.md (gRPC example)", "exec"), namespace)

  encode, sample = requests
  assert encode.model_spec.signature_name == "encode"
  assert encode.inputs["images"].dtype == types_pb2.DT_FLOAT
  assert [d.size for d in encode.inputs["images"].tensor_shape.dim] == [2, H, W, C]
  np.testing.assert_array_equal(tf.make_ndarray(encode.inputs["images"]), namespace["images"])
  assert sample.model_spec.signature_name == "sample"
  for name, value in (("num_samples", 4), ("seed", 42)):
    proto = sample.inputs[name]
    assert proto.dtype == types_pb2.DT_INT32 and list(proto.tensor_shape.dim) == []
    assert tf.make_ndarray(proto) == value and tf.make_ndarray(proto).shape == ()
  model = exported.models["vae"]
  np.testing.assert_allclose(namespace["latent_mean"],
                             model.encode_mean(namespace["images"]).numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(namespace["samples"], model.sample(4, seed=42).numpy(), atol=1e-6)
