"""SavedModel export for TF Serving: named signatures, integer versions and `models.config`.

`export_model` writes `<base_dir>/<model_name>/<version>/`, the layout
`tensorflow_model_server` watches, and rewrites `<base_dir>/models.config`
(a text-format `ModelServerConfig` listing every model folder). A version
directory appears complete or not at all: it is written into a temporary
sibling whose name starts with a dot (so TF Serving, which only loads
directories named by an integer, never sees it) and renamed at the end.
An existing version is never overwritten.

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
  log_likelihood   images [B, H, W, C] → elbo [B], reconstruction [B], kl [B]
                   (VAE only; nats)

Example:
  >>> vae = kerasvae.VAE((28, 28, 1), latent_dim=20)
  >>> path = export_model(vae, "saved_models", "vae")   # saved_models/vae/1
  >>> loaded = tf.saved_model.load(str(path))
  >>> loaded.signatures["encode"](images=x)["latent_mean"]
"""

import os
import re
import uuid
from pathlib import Path

import tensorflow as tf

from kerasvae import artifacts
from kerasvae import config as config_lib

MODELS_CONFIG_FILE = "models.config"
METADATA_DIR = "assets.extra"
METADATA_FILE = "kerasvae.json"
# The stateless seed of the `log_likelihood` signature's posterior sample: fixed, so the same
# request always gets the same answer.
LOG_LIKELIHOOD_SEED = (0, 0)

_VERSION = re.compile(r"[0-9]+")
_MODEL_NAME = config_lib.MODEL_NAME_PATTERN  # the rule the export config checks at load


def has_posterior(model):
  """Whether the model has a posterior q(z|x) with a variance and an ELBO (the VAE)."""
  return hasattr(model, "posterior_params") and hasattr(model, "elbo")


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
  posterior = has_posterior(model)

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
        "inputs": {"images": images},
        "outputs": {"elbo": per_example, "reconstruction": per_example, "kl": per_example}}
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
    kerasvae or Keras to load), and the dict of concrete functions to pass as
    `signatures` to `tf.saved_model.save`.
  """
  h, w, c = model.image_shape
  d = model.latent_dim
  posterior = has_posterior(model)
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
    @tf.function(input_signature=[image_spec], autograph=False)
    def log_likelihood(images):
      seed = tf.constant(LOG_LIKELIHOOD_SEED, tf.int32)
      return dict(model.elbo(images, seed=seed))  # [B] each

    functions["log_likelihood"] = log_likelihood

  # Only the variables are tracked, never the Keras model: the loaded object is then a plain
  # trackable with variables and functions, whatever the Python classes were.
  module = tf.Module()
  module.model_variables = list(model.variables)
  for name, fn in functions.items():
    setattr(module, name, fn)
  signatures = {name: fn.get_concrete_function() for name, fn in functions.items()}
  return module, signatures


def list_versions(model_dir):
  """The integer versions under `model_dir` (directories named by digits only), sorted."""
  model_dir = Path(model_dir)
  if not model_dir.is_dir():
    return []
  return sorted(int(p.name) for p in model_dir.iterdir()
                if p.is_dir() and _VERSION.fullmatch(p.name))


def _check_version(version, model_dir):
  if version is None:
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError("Expected version to be an integer >= 1 or None. "
                     f"Received: version={version!r}")
  if (model_dir / str(version)).exists():
    raise FileExistsError(
        f"Expected a new version: versions are never overwritten. Received: version={version} "
        f"but {model_dir / str(version)} exists (existing versions: {list_versions(model_dir)}).")
  return version


def export_model(model, base_dir="saved_models", model_name="vae", version=None, metadata=None):
  """Exports a model as `<base_dir>/<model_name>/<version>/` for TF Serving.

  The SavedModel has the signatures of `signature_contract(model)`, and
  `assets.extra/kerasvae.json` with the model's class and config, latent_dim,
  image shape, the signature contract, `metadata` and package versions.
  `<base_dir>/models.config` is rewritten to list every model under
  `base_dir`. The version directory is written into a temporary sibling
  named `.<version>.tmp-*` and renamed when complete, so neither TF Serving
  nor a reader ever sees half a version; on failure nothing is left.

  Args:
    model: a `VAE`, `Autoencoder` or `NoisyAutoencoder`.
    base_dir: the TF Serving base directory.
    model_name: the model's folder and serving name (letters, digits, `_.-`).
    version: an integer >= 1; by default 1 + the largest existing version.
      An existing version is refused.
    metadata: a JSON-serialisable dict stored with the export (e.g. the
      training run and its metrics).

  Returns:
    The `Path` of the new version directory.

  Raises:
    FileExistsError: if `version` already exists.
    ValueError: on a bad `model_name`, `version` or `metadata`.
  """
  if not isinstance(model_name, str) or not _MODEL_NAME.fullmatch(model_name):
    raise ValueError("Expected model_name to be letters, digits, '_', '.' or '-', not starting "
                     f"with '.', '_' or '-'. Received: model_name={model_name!r}")
  if metadata is not None and not isinstance(metadata, dict):
    raise ValueError(f"Expected metadata to be a dict or None. Received: metadata={metadata!r}")
  for attribute in ("image_shape", "latent_dim", "decode_mean", "sample_latents"):
    if not hasattr(model, attribute):
      raise ValueError("Expected a kerasvae LatentVariableModel (VAE, Autoencoder, "
                       f"NoisyAutoencoder). Received: model={type(model).__name__} "
                       f"without {attribute!r}")
  base_dir = Path(base_dir)
  model_dir = base_dir / model_name
  version = _check_version(version, model_dir)
  version_dir = model_dir / str(version)

  module, signatures = serving_signatures(model)
  info = {
      "model_name": model_name,
      "version": version,
      "model_class": type(model).__name__,
      "model_config": model.get_config(),
      "latent_dim": int(model.latent_dim),
      "image_shape": [int(s) for s in model.image_shape],
      "signatures": signature_contract(model),
      "log_likelihood_seed": list(LOG_LIKELIHOOD_SEED) if has_posterior(model) else None,
      "metadata": metadata or {},
      "package_versions": artifacts.package_versions(),
      "created": artifacts.utc_now(),
  }
  with artifacts.atomic_directory(version_dir) as tmp:
    # mkdtemp makes the directory private (0700); a server running as another user must read it.
    os.chmod(tmp, 0o755)
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    (tmp / METADATA_DIR).mkdir()
    artifacts.write_json(tmp / METADATA_DIR / METADATA_FILE, info)
  write_models_config(base_dir)
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
  lines = ["model_config_list {"]
  for folder in model_folders(base_dir):
    lines += ["  config {",
              f"    name: {_quote(folder.name)}",
              f"    base_path: {_quote(str(folder.resolve()))}",
              '    model_platform: "tensorflow"',
              "  }"]
  lines.append("}")
  path = base_dir / MODELS_CONFIG_FILE
  tmp = base_dir / f".{MODELS_CONFIG_FILE}.{uuid.uuid4().hex}.tmp"
  try:
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


def read_export_metadata(version_dir):
  """The `assets.extra/kerasvae.json` of an exported version, as a dict."""
  return artifacts.read_json(Path(version_dir) / METADATA_DIR / METADATA_FILE)


__all__ = ["export_model", "write_models_config", "list_versions", "model_folders",
           "signature_contract", "serving_signatures", "read_export_metadata", "has_posterior"]
