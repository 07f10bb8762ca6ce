"""Artifacts: directories that appear complete or not at all, with metadata and fingerprints."""

import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

METADATA_FILE = "metadata.json"


def fingerprint(obj):
  """Returns a stable SHA-256 hex digest of a JSON-serialisable object."""
  text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path, chunk_size=1 << 20):
  """Returns the SHA-256 hex digest of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(chunk_size), b""):
      digest.update(chunk)
  return digest.hexdigest()


def hash_fraction(keys, salt):
  """Maps keys to stable numbers in [0, 1): the split hash, and the image-folder order.

  Args:
    keys: [n] keys (ints or strings); their text form is hashed.
    salt: a string mixed into the hash.

  Returns:
    float64 [n] in [0, 1).
  """
  out = np.empty(len(keys), np.float64)
  prefix = f"{salt}:".encode()
  for i, key in enumerate(keys):
    digest = hashlib.blake2b(prefix + str(key).encode(), digest_size=8).digest()
    out[i] = int.from_bytes(digest, "big") / 2.0**64
  return out


def utc_now():
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def package_versions():
  """Versions of the packages a result depends on, for metadata files."""
  versions = {"python": platform.python_version()}
  from importlib import metadata
  for name in ("kerasvae", "tensorflow", "keras", "tensorflow-probability",
               "numpy", "tensorflow-datasets"):
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return versions


def write_json(path, obj):
  """Writes JSON through a temporary file and a rename, so readers never see half a file."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
    f.write("\n")
  os.replace(tmp, path)


def read_json(path):
  path = Path(path)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"Expected a JSON file at {path}, but it does not exist.") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"Expected valid JSON in {path}. Received: {e}") from None


def is_complete(path):
  """An artifact directory is complete when its metadata file exists (written last)."""
  return (Path(path) / METADATA_FILE).is_file()


@contextlib.contextmanager
def atomic_directory(final_path, overwrite=False):
  """Yields a temporary directory that is renamed to `final_path` on success.

  On an exception the temporary directory is removed, so a failed or
  interrupted writer never leaves something at `final_path` that looks
  complete. The temporary directory is a sibling (same filesystem), so the
  final rename is atomic.

  Args:
    final_path: where the finished directory should appear.
    overwrite: replace an existing `final_path`. Otherwise an existing one is
      an error.

  Yields:
    The `Path` of the temporary directory to write into.
  """
  final_path = Path(final_path)
  final_path.parent.mkdir(parents=True, exist_ok=True)
  if final_path.exists() and not overwrite:
    raise FileExistsError(f"Refusing to overwrite the existing artifact {final_path}.")
  tmp = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.tmp-", dir=final_path.parent))
  try:
    yield tmp
    if final_path.exists():
      # Move the old one aside first: a rename onto a non-empty directory fails.
      trash = final_path.with_name(f".{final_path.name}.old-{uuid.uuid4().hex}")
      os.replace(final_path, trash)
      os.replace(tmp, final_path)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      os.replace(tmp, final_path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
