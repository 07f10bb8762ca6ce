"""SavedModel export for TF Serving: named signatures, integer versions and `models.config`.

`export_model` writes `<base_dir>/<model_name>/<version>/`, the layout
`tensorflow_model_server` watches, and merges its model's entry into
`<base_dir>/models.config` (a text-format `ModelServerConfig`, read and written
with TF Serving's own protos, `kerasvae._serving_protos`: entries and fields an
operator added are kept; a file it cannot parse is refused, never overwritten). A version directory
appears complete or not at all: it is written into a temporary sibling whose
name starts with a dot (so TF Serving, which only loads directories named by an
integer, never sees it) and renamed at the end, under a lock that gives
concurrent exports distinct versions; the version and the config entry are
published together or not at all. An existing version is never overwritten,
and a version whose signatures differ from the previous version's is refused
unless allowed.

Every signature checks its inputs before it computes (`check_inputs`): shape,
finiteness, pixel range and a bound on the work one request may ask for
(`MAX_REQUEST_PIXELS`, `MAX_LOG_LIKELIHOOD_SAMPLES`), answering with one
`InvalidArgumentError` that names the input, what was expected and what was received.

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
# A models.config this long is not one an operator wrote; it is refused unread.
MAX_MODELS_CONFIG_BYTES = 16 << 20
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
# What one request may ask of the server, so that no request can take it down (docs/serving.md,
# "Limits"). Images in or out of one request: at most MAX_REQUEST_PIXELS float32 values (256 MB;
# 85,598 MNIST or 16,384 64x64 images): `sample`'s num_samples, every signature's batch.
MAX_REQUEST_PIXELS = 1 << 26
# log_likelihood decodes B * K samples: at most this many per request (about 26 s on the MNIST
# VAE whose K = 100,000 took 2.5 s per image; with the default K = 1000, 1,048 images).
MAX_LOG_LIKELIHOOD_SAMPLES = 1 << 20

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


def max_batch(shape):
  """The most examples of per-example `shape` ([H, W, C] or [D]) one request may send or get."""
  return max(1, MAX_REQUEST_PIXELS // max(1, int(np.prod(shape))))


def _shape_text(shape):
  return "[" + ", ".join(["B"] + [str(int(s)) for s in shape]) + "]"


def check_inputs(tensor, name, shape, batch_limit=None, unit_range=False, limit_note=""):
  """Graph-time checks of one batched signature input; returns `tensor` gated on them.

  Checked, in one assertion each, before anything reads the tensor: its shape is
  `[B, *shape]`, B is at most `batch_limit` (default `max_batch(shape)`), every value is
  finite, and with `unit_range` every value lies in [0, 1] (images). A failed check is
  TF Serving's answer to the request: one `InvalidArgumentError` reading
  `assertion failed: [Expected images of shape [B, 28, 28, 1]. Received: shape=] [5 5 1]`.
  (The dtype is checked by TF Serving before the graph runs: the signature's dtype.)

  Args:
    tensor: the input, [B, ...].
    name: its name in the signature (`images`, `latents`).
    shape: the expected shape after the batch dimension.
    batch_limit: the largest B, an int or a scalar int32 tensor.
    unit_range: whether values must lie in [0, 1].
    limit_note: why the batch limit is what it is, for the message.

  Returns:
    `tensor`, which runs the checks first.
  """
  shape = [int(s) for s in shape]
  actual = tf.shape(tensor)
  limit = max_batch(shape) if batch_limit is None else batch_limit
  same_shape = tf.cond(tf.equal(tf.size(actual), len(shape) + 1),
                       lambda: tf.reduce_all(tf.equal(actual[1:], shape)),
                       lambda: tf.constant(False))
  checks = [tf.debugging.Assert(same_shape, [
      f"Expected {name} of shape {_shape_text(shape)}. Received: shape=", actual], summarize=8)]
  with tf.control_dependencies(checks):  # the others read the tensor only if its shape is right
    if isinstance(limit, int):
      text = [f"Expected at most {limit} {name} per request{limit_note} (docs/serving.md, "
              "Limits). Received: batch=", actual[0]]
    else:
      text = ["Expected at most", limit, f"{name} per request{limit_note} (docs/serving.md, "
              "Limits). Received: batch=", actual[0]]
    checks.append(tf.debugging.Assert(actual[0] <= limit, text))
    checks.append(tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(tensor)), [
        f"Expected finite {name}. Received: NaN or infinity in", name]))
    if unit_range:
      checks.append(tf.debugging.Assert(
          tf.reduce_all(tf.logical_and(tensor >= 0.0, tensor <= 1.0)), [
              f"Expected {name} with pixel values in [0, 1]. Received: min=",
              tf.reduce_min(tensor), "max=", tf.reduce_max(tensor)]))
  with tf.control_dependencies(checks):
    return tf.identity(tensor)


def check_count(value, name, low, high):
  """Graph-time check that the scalar `value` lies in [low, high]; returns it gated on it."""
  check = tf.debugging.Assert(tf.logical_and(value >= low, value <= high), [
      f"Expected {name} in [{low}, {high}] (docs/serving.md, Limits). Received: {name}=", value])
  with tf.control_dependencies([check]):
    return tf.identity(value)


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

  def checked_images(images, batch_limit=None):
    return check_inputs(images, "images", (h, w, c), batch_limit, unit_range=True)

  def codes(images):
    if posterior:
      mean, log_var = model.posterior_params(images)  # [B, D] x2
      return {"latent_mean": mean, "latent_log_var": log_var}
    return {"latent_mean": model.encode_mean(images)}  # [B, D]

  @tf.function(input_signature=[image_spec], autograph=False)
  def serving_default(images):
    out = codes(checked_images(images))
    out["reconstruction"] = model.decode_mean(out["latent_mean"])  # [B, H, W, C]
    return out

  @tf.function(input_signature=[image_spec], autograph=False)
  def encode(images):
    return codes(checked_images(images))

  @tf.function(input_signature=[latent_spec], autograph=False)
  def decode(latents):
    # As many latents as images of the output bound.
    latents = check_inputs(latents, "latents", (d,), max_batch((h, w, c)))
    return {"images": model.decode_mean(latents)}  # [B, H, W, C]

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                tf.TensorSpec([], tf.int32, name="seed")], autograph=False)
  def sample(num_samples, seed):
    num_samples = check_count(num_samples, "num_samples", 0, max_batch((h, w, c)))  # 0: none
    # The same stateless seed as `model.sample(n, seed=int)`: [seed, 0].
    latents = model.sample_latents(num_samples, seed=tf.stack([seed, 0]))  # [N, D]
    return {"images": model.decode_mean(latents), "latents": latents}

  functions = {"serving_default": serving_default, "encode": encode, "decode": decode,
               "sample": sample}
  if posterior:
    # The tensor default is written to the SignatureDef's `defaults`: TF Serving's Predict
    # (gRPC) fills a missing `num_samples` from it.
    def checked(images, num_samples):
      num_samples = check_count(num_samples, "num_samples", 1, MAX_NUM_SAMPLES)
      # B * K decoded samples at most: the batch a request may send shrinks as K grows.
      limit = tf.minimum(max_batch((h, w, c)), MAX_LOG_LIKELIHOOD_SAMPLES // num_samples)
      images = check_inputs(images, "images", (h, w, c), limit, unit_range=True,
                            limit_note=f" with this num_samples (batch x num_samples <= "
                            f"{MAX_LOG_LIKELIHOOD_SAMPLES})")
      return images, num_samples

    @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.int32, name="num_samples")],
                 autograph=False)
    def log_likelihood(images, num_samples=tf.constant(DEFAULT_NUM_SAMPLES, tf.int32)):
      return iwae.estimate(model, *checked(images, num_samples))  # [B] each

    functions["log_likelihood"] = log_likelihood
    if c in anomaly.PNG_CHANNELS:
      functions["anomaly_score"] = anomaly_score_signature(model, image_spec, checked)

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


def anomaly_score_signature(model, image_spec, check):
  """The `anomaly_score` signature: the input-complexity corrected score of Serrà et al.

  anomaly_score = −log p̂(x) − L(x), log p̂(x) the IWAE bound of `log_likelihood` (same K,
  same seed, so the same number) and L(x) the image's PNG code length at 8 bits
  (`kerasvae.metrics.anomaly.png_code_length`), both in nats; higher is more anomalous.
  `kerasvae study ood` is why this score and not raw log p(x) (docs/serving.md). `check`:
  `(images, num_samples) -> the same, checked` (log_likelihood's input checks and limits).
  """

  @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.int32, name="num_samples")],
               autograph=False)
  def anomaly_score(images, num_samples=tf.constant(DEFAULT_NUM_SAMPLES, tf.int32)):
    images, num_samples = check(images, num_samples)
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


def version_blockers(model_dir):
  """Entries of `model_dir` named like a version that are not version folders (files, links),
  sorted: TF Serving does not load them, and export numbers its versions past them."""
  model_dir = Path(model_dir)
  if not model_dir.is_dir():
    return []
  return sorted((p for p in model_dir.iterdir()
                 if _VERSION.fullmatch(p.name) and (p.is_symlink() or not p.is_dir())),
                key=lambda p: int(p.name))


def _next_version(model_dir):
  """1 + the largest number any entry of `model_dir` is named by (a version or a blocker)."""
  taken = list_versions(model_dir) + [int(p.name) for p in version_blockers(model_dir)]
  return max(taken) + 1 if taken else 1


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
                 allow_signature_change=False, serving_base_path=None):
  """Exports a model as `<base_dir>/<model_name>/<version>/` for TF Serving.

  The SavedModel has the signatures of `signature_contract(model)`, and
  `assets.extra/kerasvae.json` with the model's class and config, latent_dim,
  image shape, the signature contract, `metadata`, package versions and the
  digests of the version's files (the file has its own digest), and
  `assets.extra/tf_serving_warmup_requests` (see `write_warmup_requests`).
  The model's entry is merged into `<base_dir>/models.config` (see
  `merge_model_entry`; a file that cannot be parsed is refused before anything
  is written). The SavedModel is written into a hidden temporary sibling
  (`.export.tmp-*`); then, holding a lock on the model folder, the version
  is chosen and the directory renamed to it, so that neither TF Serving nor a
  reader ever sees half a version, two concurrent exports get two versions,
  and an existing version is never replaced. On failure nothing is left: a
  version whose config entry could not be written is taken back.

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
    serving_base_path: `base_dir` as the server sees it, for `models.config` (see
      `write_models_config`); None: `base_dir`'s absolute path.

  Returns:
    The `Path` of the new version directory.

  Raises:
    FileExistsError: if `version` already exists.
    ModelsConfigError: `<base_dir>/models.config` cannot be parsed (it is left as it is).
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
  read_models_config(base_dir)  # one it could not merge into is refused before the save too

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
        number = _next_version(model_dir)
      else:
        number = _check_version(version, model_dir)
      if not allow_signature_change:
        check_signatures(model_dir, contract, type(model).__name__)
      info["version"] = number
      artifacts.write_metadata(tmp / METADATA_DIR / METADATA_FILE, info)
      version_dir = model_dir / str(number)
      _publish(tmp, version_dir, base_dir, model_name, serving_base_path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return version_dir


def _publish(tmp, version_dir, base_dir, model_name, serving_base_path=None):
  """Renames the finished version `tmp` to `version_dir` and merges its model's entry into
  `models.config`: both or neither.

  The merged file is written to a temporary sibling first; then the version is renamed into
  place (a no-replace rename: under the model folder's lock no other kerasvae export renames
  there, and a version another program made in between is kept) and the file over
  `models.config`. If the second rename fails, the version is renamed back to `tmp` (which the
  caller removes), so no complete version is left that `models.config` does not name.
  """
  with _directory_lock(base_dir):
    path = base_dir / MODELS_CONFIG_FILE
    config = read_models_config(base_dir)
    merged = merge_model_entry(config, model_name, version_dir.parent.resolve(),
                               fresh=not path.exists(), serving_base_path=serving_base_path)
    text = None if merged == config and path.exists() else _config_text(merged)
    config_tmp = base_dir / artifacts.temporary_name(MODELS_CONFIG_FILE)
    try:
      if text is not None:
        _write_synced(config_tmp, text)
      artifacts.rename_no_replace(tmp, version_dir)
      try:
        if text is not None:
          os.replace(config_tmp, path)
      except BaseException:
        os.rename(version_dir, tmp)  # unpublished: the caller removes it
        raise
    finally:
      config_tmp.unlink(missing_ok=True)


def model_folders(base_dir):
  """Model folders under `base_dir`: visible directories holding at least one integer version."""
  base_dir = Path(base_dir)
  if not base_dir.is_dir():
    return []
  return sorted(p for p in base_dir.iterdir()
                if p.is_dir() and not p.name.startswith(".") and list_versions(p))


class ModelsConfigError(artifacts.ArtifactError):
  """`models.config` is not a file export can merge its model's entry into; it is left as it is."""


def _models_config_error(path, received):
  received = received.rstrip(".")
  return ModelsConfigError(
      f"{path}: expected a text-format ModelServerConfig with a model_config_list (the file "
      "tensorflow_model_server --model_config_file reads), so that export can add its model's "
      f"entry and keep the others. Received: {received}. The file is left as it is and nothing "
      "was exported: fix or move it, then export again.", problem=received)


def read_models_config(base_dir="saved_models"):
  """`<base_dir>/models.config` parsed with TF Serving's own protos (an empty config if absent):
  their descriptors, copied into `kerasvae._serving_protos`.

  Raises:
    ModelsConfigError: the file is not a readable text-format `ModelServerConfig` with a
      `model_config_list` (a directory, not UTF-8, a syntax error, a field TF Serving does not
      know, a `custom_model_config`), named with what is wrong.
  """
  from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
  from kerasvae import _serving_protos  # pylint: disable=import-outside-toplevel
  path = Path(base_dir) / MODELS_CONFIG_FILE
  config = _serving_protos.model_server_config_class()()
  if not os.path.lexists(path):
    return config
  if path.is_symlink() or not path.is_file():
    kind = ("a symbolic link" if path.is_symlink() else "a directory" if path.is_dir()
            else "something that is not a regular file")
    raise _models_config_error(path, kind)
  try:
    text = path.read_bytes()[:MAX_MODELS_CONFIG_BYTES + 1]
    if len(text) > MAX_MODELS_CONFIG_BYTES:
      raise _models_config_error(path, f"a file of more than {MAX_MODELS_CONFIG_BYTES} bytes")
    text_format.Parse(text.decode("utf-8"), config)
  except UnicodeDecodeError as e:
    raise _models_config_error(path, f"bytes that are not UTF-8 ({e})") from None
  except text_format.ParseError as e:
    raise _models_config_error(path, f"a syntax error: {e}") from None
  except OSError as e:
    raise _models_config_error(path, f"an unreadable file ({e.strerror})") from None
  if config.WhichOneof("config") == "custom_model_config":
    raise _models_config_error(path, "a custom_model_config, which export cannot add a model to")
  return config


def merge_model_entry(config, model_name, model_dir, fresh=False, serving_base_path=None):
  """A copy of `config` whose entry for `model_name` serves `model_dir`.

  Export owns three fields of its model's entry: `name`, `base_path` (the model folder as the
  server sees it) and `model_platform` ("tensorflow"). Every other entry, and every other field
  of its own (`model_version_policy`, `version_labels`, `logging_config`), is kept as it is; a
  missing entry is appended. A `fresh` config (no file yet) also lists every other model folder
  beside `model_dir`, as a new file always did.

  Args:
    serving_base_path: the base directory as the server sees it: `/models` for a container
      started with `-v "$PWD/saved_models:/models"`, so that `base_path` is `/models/<name>`.
      None: the absolute path of `model_dir`'s parent here (a server on this machine).
  """
  merged = type(config)()
  merged.CopyFrom(config)
  entries = merged.model_config_list.config
  names = [model_name]
  if fresh:
    names = sorted({p.name for p in model_folders(Path(model_dir).parent)} | {model_name})
  for name in names:
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
      entry = entries.add()
      entry.name = name
    entry.base_path = (str(Path(model_dir).parent.resolve() / name)
                       if serving_base_path is None
                       else f"{str(serving_base_path).rstrip('/')}/{name}")
    entry.model_platform = "tensorflow"
  return merged


def _config_text(config):
  from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
  return text_format.MessageToString(config, as_utf8=True)


def _write_synced(path, text):
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


def write_models_config(base_dir="saved_models", model_name=None, serving_base_path=None):
  """Writes `<base_dir>/models.config` for `tensorflow_model_server --model_config_file`.

  A text-format `ModelServerConfig`. An existing file is merged, not replaced
  (`merge_model_entry`): the entry of `model_name` (or, with None, of every model folder
  under `base_dir`) is added or updated and everything else is kept; a file that cannot be
  parsed is refused (`ModelsConfigError`) and left as it is. Written through a temporary
  file and a rename, so the server never reads half a file; not written when nothing changes.

  Args:
    base_dir: the model base directory.
    serving_base_path: the same directory as the server sees it: `/models` for a container
      started with `-v "$PWD/saved_models:/models"`, so each `base_path` is `/models/<name>`.
      None: the absolute path of `base_dir` here (a server on this machine).

  Returns:
    The `Path` of the file.
  """
  base_dir = Path(base_dir)
  base_dir.mkdir(parents=True, exist_ok=True)
  path = base_dir / MODELS_CONFIG_FILE
  # Locked: a listing made before another export's rename must not replace a later one's.
  with _directory_lock(base_dir):
    config = read_models_config(base_dir)
    names = [model_name] if model_name else [p.name for p in model_folders(base_dir)]
    merged = config
    for name in names:
      merged = merge_model_entry(merged, name, base_dir / name, fresh=not path.exists(),
                                 serving_base_path=serving_base_path)
    if merged == config and path.exists():
      return path
    tmp = base_dir / artifacts.temporary_name(MODELS_CONFIG_FILE)
    try:
      _write_synced(tmp, _config_text(merged))
      os.replace(tmp, path)
    finally:
      tmp.unlink(missing_ok=True)
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
           "read_models_config", "merge_model_entry", "ModelsConfigError", "check_inputs",
           "version_blockers",
           "list_versions", "model_folders", "signature_contract", "serving_signatures",
           "read_export_metadata", "version_damage", "remove_version", "anomaly_score_signature",
           "write_warmup_requests", "prediction_log", "warmup_inputs"]
