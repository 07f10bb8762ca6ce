"""SavedModel export for TF Serving: named signatures, integer versions and `models.config`.

`export_model` writes `<base_dir>/<model_name>/<version>/`, the layout
`tensorflow_model_server` watches, and rewrites `<base_dir>/models.config`
(a text-format `ModelServerConfig` listing every model folder). A version
directory appears complete or not at all: it is written into a temporary
sibling whose name starts with a dot (so TF Serving, which only loads
directories named by an integer, never sees it) and renamed at the end,
under a lock that gives concurrent exports distinct versions. An existing
version is never overwritten, and a version whose signatures differ from the
previous version's is refused unless allowed.

The exported signatures are traced through the model's own methods, so the
SavedModel holds plain TensorFlow ops and the model's variables only: it
loads with `tf.saved_model.load` in a process that imports neither kerasvae,
Keras nor TensorFlow Probability.

Signatures (H, W, C = the image shape, D = latent_dim, B = batch):

  serving_default  images [B, H, W, C] → reconstruction [B, H, W, C],
                   latent_mean [B, D], latent_log_var [B, D] (VAE only)
  encode           images [B, H, W, C] → latent_mean [B, D],
                   latent_log_var [B, D] (VAE only)
  decode           latents [B, D] → images [B, H, W, C] (the mean image)
  sample           num_samples [] int32, seed [] int32 → images [N, H, W, C],
                   latents [N, D]
  log_likelihood   images [B, H, W, C], num_samples [] int32 (K; default
                   DEFAULT_NUM_SAMPLES) → log_likelihood [B] (the IWAE bound),
                   standard_error [B], elbo [B], reconstruction [B], kl [B]
                   (VAE only; nats)
  anomaly_score    images [B, H, W, C], num_samples [] int32 (K, as for
                   log_likelihood) → anomaly_score [B] (−log p(x) − L_PNG(x), the
                   input-complexity corrected score: higher is more anomalous),
                   input_complexity [B] (L_PNG(x)) and log_likelihood's outputs
                   (VAE only; nats; `anomaly_score_signature`)

Every version also holds `assets.extra/tf_serving_warmup_requests`: one
`PredictionLog` per signature, which TF Serving replays when it loads the
version, so the first client request does not pay for the first run.

Example:
  >>> vae = kerasvae.VAE((28, 28, 1), latent_dim=20)
  >>> path = export_model(vae, "saved_models", "vae")   # saved_models/vae/1
  >>> loaded = tf.saved_model.load(str(path))
  >>> loaded.signatures["encode"](images=x)["latent_mean"]
"""

import contextlib
import fcntl
import os
import re
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae.metrics import anomaly
from kerasvae.metrics import iwae

MODELS_CONFIG_FILE = "models.config"
METADATA_DIR = "assets.extra"
METADATA_FILE = "kerasvae.json"
WARMUP_FILE = "tf_serving_warmup_requests"
# The `log_likelihood` signature runs the one IWAE estimator (kerasvae.metrics.iwae) with its
# default seed: fixed, so the same request always gets the same answer, and equal to what the
# evaluate step and `VAE.iwae_log_likelihood` give for the same images, K and seed.
LOG_LIKELIHOOD_SEED = iwae.DEFAULT_SEED
# K when a request leaves `num_samples` out (gRPC; REST must send it; docs/serving.md says which
# clients may). Chosen there ("Signatures") from the bias, standard error and latency measured
# on a trained MNIST VAE.
DEFAULT_NUM_SAMPLES = 1000
MAX_NUM_SAMPLES = iwae.MAX_NUM_SAMPLES
LOG_LIKELIHOOD_OUTPUTS = iwae.OUTPUTS
ANOMALY_SCORE_OUTPUTS = ("anomaly_score", "input_complexity") + iwae.OUTPUTS

_VERSION = re.compile(r"[0-9]+")
_MODEL_NAME = config_lib.MODEL_NAME_PATTERN  # the rule the export config checks at load


def signature_contract(model):
  """The exported signatures' named inputs and outputs with shapes and dtypes.

  Args:
    model: a `LatentVariableModel`.

  Returns:
    `{signature: {"inputs": {name: {"shape": [...], "dtype": ...}}, "outputs": {...}}}`;
    `None` in a shape is the batch (or `num_samples`) dimension.
  """
  h, w, c = model.image_shape
  d = model.latent_dim
  posterior = model.has_posterior

  def spec(shape, dtype="float32"):
    return {"shape": list(shape), "dtype": dtype}

  images = spec([None, h, w, c])
  latents = spec([None, d])
  per_example = spec([None])
  codes = {"latent_mean": latents}
  if posterior:
    codes["latent_log_var"] = latents
  contract = {
      "serving_default": {"inputs": {"images": images},
                          "outputs": {"reconstruction": images, **codes}},
      "encode": {"inputs": {"images": images}, "outputs": dict(codes)},
      "decode": {"inputs": {"latents": latents}, "outputs": {"images": images}},
      "sample": {"inputs": {"num_samples": spec([], "int32"), "seed": spec([], "int32")},
                 "outputs": {"images": images, "latents": latents}},
  }
  if posterior:
    contract["log_likelihood"] = {
        "inputs": {"images": images, "num_samples": spec([], "int32")},
        "outputs": {name: per_example for name in LOG_LIKELIHOOD_OUTPUTS}}
  if posterior and c in anomaly.PNG_CHANNELS:  # the complexity term is a PNG's length
    contract["anomaly_score"] = {
        "inputs": {"images": images, "num_samples": spec([], "int32")},
        "outputs": {name: per_example for name in ANOMALY_SCORE_OUTPUTS}}
  return contract


def serving_signatures(model):
  """Traces the model's methods into concrete functions, one per signature.

  Every function has an `input_signature`, so the signatures take named
  inputs of fixed dtype and rank, and returns a dict, so the outputs are
  named by its keys.

  Args:
    model: a `LatentVariableModel` (`VAE`, `Autoencoder`, `NoisyAutoencoder`).

  Returns:
    A `tf.Module` that tracks the model's variables (and nothing that needs
    kerasvae or Keras to load), and the dict of `tf.function`s to pass as
    `signatures` to `tf.saved_model.save` (functions, not concrete functions,
    so that input defaults reach the SignatureDef).
  """
  h, w, c = model.image_shape
  d = model.latent_dim
  posterior = model.has_posterior
  image_spec = tf.TensorSpec([None, h, w, c], tf.float32, name="images")
  latent_spec = tf.TensorSpec([None, d], tf.float32, name="latents")

  def codes(images):
    if posterior:
      mean, log_var = model.posterior_params(images)  # [B, D] x2
      return {"latent_mean": mean, "latent_log_var": log_var}
    return {"latent_mean": model.encode_mean(images)}  # [B, D]

  @tf.function(input_signature=[image_spec], autograph=False)
  def serving_default(images):
    out = codes(images)
    out["reconstruction"] = model.decode_mean(out["latent_mean"])  # [B, H, W, C]
    return out

  @tf.function(input_signature=[image_spec], autograph=False)
  def encode(images):
    return codes(images)

  @tf.function(input_signature=[latent_spec], autograph=False)
  def decode(latents):
    return {"images": model.decode_mean(latents)}  # [B, H, W, C]

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                tf.TensorSpec([], tf.int32, name="seed")], autograph=False)
  def sample(num_samples, seed):
    # The same stateless seed as `model.sample(n, seed=int)`: [seed, 0].
    latents = model.sample_latents(num_samples, seed=tf.stack([seed, 0]))  # [N, D]
    return {"images": model.decode_mean(latents), "latents": latents}

  functions = {"serving_default": serving_default, "encode": encode, "decode": decode,
               "sample": sample}
  if posterior:
    # The tensor default is written to the SignatureDef's `defaults`: TF Serving's Predict
    # (gRPC) fills a missing `num_samples` from it.
    @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.int32, name="num_samples")],
                 autograph=False)
    def log_likelihood(images, num_samples=tf.constant(DEFAULT_NUM_SAMPLES, tf.int32)):
      return iwae.estimate(model, images, num_samples)  # [B] each

    functions["log_likelihood"] = log_likelihood
    if c in anomaly.PNG_CHANNELS:
      functions["anomaly_score"] = anomaly_score_signature(model, image_spec)

  # Only the variables are tracked, never the Keras model: the loaded object is then a plain
  # trackable with variables and functions, whatever the Python classes were. They are the
  # tf.Variables the traced functions read (as keras.export.ExportArchive tracks them), not the
  # Keras variables wrapping them: those are saved as separate handles, which the checkpoint
  # restores and no function reads, so a server that restores the checkpoint into a session
  # (TF Serving) would answer "Could not find variable encoder/dense/kernel".
  read = {}
  for fn in functions.values():
    for variable in fn.get_concrete_function().variables:
      read.setdefault(id(variable), variable)
  module = tf.Module()
  module.model_variables = list(read.values())
  for name, fn in functions.items():
    setattr(module, name, fn)
  return module, functions


def anomaly_score_signature(model, image_spec):
  """The `anomaly_score` signature: the input-complexity corrected score of Serrà et al.

  anomaly_score = −log p̂(x) − L(x), log p̂(x) the IWAE bound of `log_likelihood` (same K,
  same seed, so the same number) and L(x) the image's PNG code length at 8 bits
  (`kerasvae.metrics.anomaly.png_code_length`), both in nats; higher is more anomalous.
  `kerasvae study ood` is why this score and not raw log p(x) (docs/serving.md).
  """

  @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.int32, name="num_samples")],
               autograph=False)
  def anomaly_score(images, num_samples=tf.constant(DEFAULT_NUM_SAMPLES, tf.int32)):
    return anomaly.with_complexity(iwae.estimate(model, images, num_samples), images)  # [B] each

  return anomaly_score


def warmup_inputs(model):
  """One small request per signature: `{signature: {input: array}}` (batches of one image)."""
  contract = signature_contract(model)
  scalars = {("sample", "num_samples"): 1, ("sample", "seed"): 0,
             ("log_likelihood", "num_samples"): DEFAULT_NUM_SAMPLES,
             ("anomaly_score", "num_samples"): DEFAULT_NUM_SAMPLES}
  requests = {}
  for signature, spec in contract.items():
    requests[signature] = {}
    for name, tensor in spec["inputs"].items():
      if tensor["shape"]:
        shape = [1 if s is None else s for s in tensor["shape"]]
        requests[signature][name] = np.full(shape, 0.5, tensor["dtype"])  # a mid-grey image
      else:
        requests[signature][name] = np.array(scalars[signature, name], tensor["dtype"])
  return requests


def _length_delimited(field_number, payload):
  """One protobuf wire-format field of type string, bytes or message."""
  def varint(n):
    out = bytearray()
    while True:
      out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
      n >>= 7
      if not n:
        return bytes(out)
  if isinstance(payload, str):
    payload = payload.encode("utf-8")
  return varint(field_number << 3 | 2) + varint(len(payload)) + payload


def prediction_log(model_name, signature_name, inputs):
  """A serialized `tensorflow.serving.PredictionLog` whose `predict_log.request` asks `inputs`.

  Encoded by hand (field numbers of tensorflow_serving/apis/prediction_log.proto,
  predict.proto and model.proto) so that kerasvae does not depend on
  tensorflow-serving-api; the tensors are TensorFlow's own `TensorProto`s.
  """
  model_spec = _length_delimited(1, model_name) + _length_delimited(3, signature_name)
  request = _length_delimited(1, model_spec)  # PredictRequest.model_spec
  for name, value in sorted(inputs.items()):  # PredictRequest.inputs: map<string, TensorProto>
    tensor = tf.make_tensor_proto(value).SerializeToString()
    request += _length_delimited(2, _length_delimited(1, name) + _length_delimited(2, tensor))
  return _length_delimited(6, _length_delimited(1, request))  # PredictionLog.predict_log.request


def write_warmup_requests(path, model, model_name):
  """Writes TF Serving's warm-up file: a TFRecord of one `PredictionLog` per signature.

  TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads
  a version, before marking it available, so the first client request does not
  pay for the graph's first run.
  """
  with tf.io.TFRecordWriter(str(path)) as writer:
    for signature, inputs in warmup_inputs(model).items():
      writer.write(prediction_log(model_name, signature, inputs))
  return Path(path)


def list_versions(model_dir):
  """The integer versions under `model_dir` (directories named by digits only), sorted."""
  model_dir = Path(model_dir)
  if not model_dir.is_dir():
    return []
  return sorted(int(p.name) for p in model_dir.iterdir()
                if p.is_dir() and _VERSION.fullmatch(p.name))


class SignatureMismatchError(ValueError):
  """A new version's signatures differ from the previous version's of the same model name."""


def _check_version(version, model_dir):
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError("Expected version to be an integer >= 1 or None. "
                     f"Received: version={version!r}")
  if (model_dir / str(version)).exists():
    raise FileExistsError(
        f"Expected a new version: versions are never overwritten. Received: version={version} "
        f"but {model_dir / str(version)} exists (existing versions: {list_versions(model_dir)}).")
  return version


def _describe_contract(contract):
  return ", ".join(sorted(contract))


def _contract_difference(old, new):
  """What changed from the `old` signature contract to the `new` one, in words."""
  parts = []
  missing, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
  if missing:
    parts.append(f"without {', '.join(missing)}")
  if added:
    parts.append(f"with the new {', '.join(added)}")
  changed = sorted(name for name in set(old) & set(new) if old[name] != new[name])
  if changed:
    parts.append(f"other inputs or outputs in {', '.join(changed)}")
  return "; ".join(parts)


def check_signatures(model_dir, contract, model_class=None):
  """Refuses a new version whose signatures differ from the newest existing version's.

  Clients of a model name call its signatures by name; a version without one (an
  autoencoder after a VAE: no `log_likelihood`) or with other inputs and outputs breaks
  them when TF Serving switches to it. Versions exported without kerasvae's metadata are
  not compared.

  Raises:
    SignatureMismatchError: naming both versions' models and signatures.
  """
  model_dir = Path(model_dir)
  for previous in reversed(list_versions(model_dir)):
    try:
      info = read_export_metadata(model_dir / str(previous))
    except (FileNotFoundError, ValueError):  # not exported by kerasvae, or unreadable
      continue
    old = info.get("signatures")
    if old is None or old == contract:
      return
    raise SignatureMismatchError(
        f"Expected the signatures of {model_dir / str(previous)} ({info.get('model_class')}: "
        f"{_describe_contract(old)}) for a new version of model {model_dir.name!r}. Received: "
        f"{model_class or 'a model'} with {_describe_contract(contract)} "
        f"({_contract_difference(old, contract)}); clients of {model_dir.name!r} would break. "
        "Export it under another model name, or allow the change explicitly "
        "(allow_signature_change=True; in the pipeline --set export.allow_signature_change=true).")
  return


@contextlib.contextmanager
def _directory_lock(directory):
  """Holds an exclusive kernel (flock) lock on `directory` itself (no lock file to leave
  behind), released when its process ends, however it ends. Held on the model folder
  while a version is chosen and renamed into place, so that concurrent exports get
  distinct versions."""
  fd = os.open(directory, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


def export_model(model, base_dir="saved_models", model_name="vae", version=None, metadata=None,
                 allow_signature_change=False):
  """Exports a model as `<base_dir>/<model_name>/<version>/` for TF Serving.

  The SavedModel has the signatures of `signature_contract(model)`, and
  `assets.extra/kerasvae.json` with the model's class and config, latent_dim,
  image shape, the signature contract, `metadata`, package versions and the
  digests of the version's files (the file has its own digest), and
  `assets.extra/tf_serving_warmup_requests` (see `write_warmup_requests`).
  `<base_dir>/models.config` is rewritten to list every model under
  `base_dir`. The SavedModel is written into a hidden temporary sibling
  (`.export.tmp-*`); then, holding a lock on the model folder, the version
  is chosen and the directory renamed to it, so that neither TF Serving nor a
  reader ever sees half a version, two concurrent exports get two versions,
  and an existing version is never replaced. On failure nothing is left.

  Args:
    model: a `VAE`, `Autoencoder` or `NoisyAutoencoder`.
    base_dir: the TF Serving base directory.
    model_name: the model's folder and serving name (letters, digits, `_.-`).
    version: an integer >= 1; by default 1 + the largest existing version.
      An existing version is refused.
    metadata: a JSON-serialisable dict stored with the export (e.g. the
      training run and its metrics).
    allow_signature_change: export even if the signatures differ from those of
      the model name's newest version (see `check_signatures`).

  Returns:
    The `Path` of the new version directory.

  Raises:
    FileExistsError: if `version` already exists.
    SignatureMismatchError: the signatures differ from the previous version's.
    ValueError: on a bad `model_name`, `version` or `metadata`.
  """
  if not isinstance(model_name, str) or not _MODEL_NAME.fullmatch(model_name):
    raise ValueError("Expected model_name to be letters, digits, '_', '.' or '-', not starting "
                     f"with '.', '_' or '-'. Received: model_name={model_name!r}")
  if metadata is not None and not isinstance(metadata, dict):
    raise ValueError(f"Expected metadata to be a dict or None. Received: metadata={metadata!r}")
  from kerasvae import models  # pylint: disable=import-outside-toplevel
  if not isinstance(model, models.LatentVariableModel):
    raise ValueError("Expected a kerasvae LatentVariableModel (a model of a kind in "
                     f"kerasvae.kinds). Received: model={type(model).__name__}")
  base_dir = Path(base_dir)
  model_dir = base_dir / model_name
  if version is not None:
    _check_version(version, model_dir)
  contract = signature_contract(model)
  if not allow_signature_change:  # before the costly save; checked again under the lock
    check_signatures(model_dir, contract, type(model).__name__)

  module, signatures = serving_signatures(model)
  info = {
      "model_name": model_name,
      "model_class": type(model).__name__,
      "model_config": model.get_config(),
      "latent_dim": int(model.latent_dim),
      "image_shape": [int(s) for s in model.image_shape],
      "signatures": contract,
      "log_likelihood_seed": list(LOG_LIKELIHOOD_SEED) if model.has_posterior else None,
      "log_likelihood_default_num_samples": DEFAULT_NUM_SAMPLES if model.has_posterior else None,
      "metadata": metadata or {},
      "package_versions": artifacts.package_versions(),
      "created": artifacts.utc_now(),
  }
  model_dir.mkdir(parents=True, exist_ok=True)
  artifacts.remove_stale_temporaries(model_dir)
  tmp = model_dir / artifacts.temporary_name("export")
  tmp.mkdir()  # the umask's mode (mkdtemp's 0700 would hide it from a server of another user)
  try:
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    (tmp / METADATA_DIR).mkdir()
    write_warmup_requests(tmp / METADATA_DIR / WARMUP_FILE, model, model_name)
    # Size and SHA-256 of every file, so that a damaged version is found (`version_damage`).
    info["digests"] = artifacts.digest_files(tmp, exclude=(f"{METADATA_DIR}/{METADATA_FILE}",))
    with _directory_lock(model_dir):
      if version is None:
        versions = list_versions(model_dir)
        number = versions[-1] + 1 if versions else 1
      else:
        number = _check_version(version, model_dir)
      if not allow_signature_change:
        check_signatures(model_dir, contract, type(model).__name__)
      info["version"] = number
      artifacts.write_metadata(tmp / METADATA_DIR / METADATA_FILE, info)
      version_dir = model_dir / str(number)
      # Under the lock no other kerasvae export renames into model_dir; the no-replace
      # rename also keeps a version another program made in between.
      artifacts.rename_no_replace(tmp, version_dir)
      write_models_config(base_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return version_dir


def _quote(text):
  """A protobuf text-format string literal."""
  return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def model_folders(base_dir):
  """Model folders under `base_dir`: visible directories holding at least one integer version."""
  base_dir = Path(base_dir)
  if not base_dir.is_dir():
    return []
  return sorted(p for p in base_dir.iterdir()
                if p.is_dir() and not p.name.startswith(".") and list_versions(p))


def write_models_config(base_dir="saved_models"):
  """(Re)writes `<base_dir>/models.config` for `tensorflow_model_server --model_config_file`.

  A text-format `ModelServerConfig` with one `config` entry per model folder
  (name, absolute base_path, model_platform "tensorflow"); written through a
  temporary file and a rename, so the server never reads half a file.

  Returns:
    The `Path` of the file.
  """
  base_dir = Path(base_dir)
  base_dir.mkdir(parents=True, exist_ok=True)
  # Locked: a listing made before another export's rename must not replace a later one's.
  with _directory_lock(base_dir):
    return _write_models_config(base_dir)


def _write_models_config(base_dir):
  lines = ["model_config_list {"]
  for folder in model_folders(base_dir):
    lines += ["  config {",
              f"    name: {_quote(folder.name)}",
              f"    base_path: {_quote(str(folder.resolve()))}",
              '    model_platform: "tensorflow"',
              "  }"]
  lines.append("}")
  path = base_dir / MODELS_CONFIG_FILE
  tmp = base_dir / artifacts.temporary_name(MODELS_CONFIG_FILE)
  try:
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


def read_export_metadata(version_dir):
  """The `assets.extra/kerasvae.json` of an exported version, as a dict.

  Raises:
    FileNotFoundError: the version was not exported by kerasvae.
    artifacts.ArtifactError: the file is unreadable or differs from its own digest.
  """
  return artifacts.read_json(Path(version_dir) / METADATA_DIR / METADATA_FILE,
                             redo="kerasvae export --force")


def version_damage(version_dir):
  """What is wrong with an exported version, in words; or None.

  A version is checked against the digests its `kerasvae.json` records (and that file
  against its own). A version exported without kerasvae's metadata, or before versions
  recorded digests, has nothing to check against: None.
  """
  try:
    info = read_export_metadata(version_dir)
  except FileNotFoundError:
    return None
  except artifacts.ArtifactError as error:
    return f"{METADATA_DIR}/{error.problem}"
  return artifacts.find_damage(version_dir, info.get("digests") or {})


def remove_version(model_dir, version):
  """Removes `<model_dir>/<version>/`, under the lock that exports take on the model folder.

  The folder is renamed to a hidden temporary name first, so TF Serving, which loads
  only folders named by an integer, never sees half a version.
  """
  model_dir = Path(model_dir)
  with _directory_lock(model_dir):
    artifacts.remove_directory(model_dir / str(version))


__all__ = ["export_model", "check_signatures", "SignatureMismatchError", "write_models_config",
           "list_versions", "model_folders", "signature_contract", "serving_signatures",
           "read_export_metadata", "version_damage", "remove_version", "anomaly_score_signature",
           "write_warmup_requests", "prediction_log", "warmup_inputs"]
