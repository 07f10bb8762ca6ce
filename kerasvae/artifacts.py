"""Artifacts: directories that appear complete or not at all, with metadata and fingerprints."""

import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import uuid
from pathlib import Path

import numpy as np

METADATA_FILE = "metadata.json"


class ArtifactError(ValueError):
  """An artifact file is unreadable or damaged. The message names the file and what to redo."""


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


def read_json(path, redo=None):
  """Reads a JSON object (a dict) that kerasvae wrote.

  Args:
    path: the file.
    redo: the command that rewrites it (`kerasvae train --force`), named in the error.

  Raises:
    FileNotFoundError: the file does not exist.
    ArtifactError: it is unreadable, not JSON, or not a JSON object.
  """
  path = Path(path)
  hint = f" Redo the step that wrote it: `{redo}`." if redo else (
      " Redo the step that wrote it with --force.")
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"Expected a JSON file at {path}, but it does not exist.") from None
  except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
    raise ArtifactError(f"{path}: expected a readable JSON file as kerasvae writes it. "
                        f"Received: {type(e).__name__}: {e}.{hint}") from None
  if not isinstance(obj, dict):
    raise ArtifactError(f"{path}: expected a JSON object. Received: {type(obj).__name__}.{hint}")
  return obj


def is_complete(path):
  """An artifact directory is complete when its metadata file exists (written last)."""
  return (Path(path) / METADATA_FILE).is_file()


def make_temp_directory(parent, prefix):
  """`tempfile.mkdtemp` with the umask's mode (mkdtemp's 0700 would stay on the renamed artifact)."""
  while True:
    path = Path(parent) / f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
      path.mkdir()
      return path
    except FileExistsError:
      continue


def open_new_file(parent, prefix, suffix=""):
  """A new file opened for binary writing with the umask's mode (mkstemp's is 0600).

  Returns:
    `(file object, Path)`.
  """
  while True:
    path = Path(parent) / f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
      return os.fdopen(fd, "wb"), path
    except FileExistsError:
      continue


@contextlib.contextmanager
def remove_empty_on_failure(*paths, lock_name=".lock"):
  """Removes the folders a failed command created for `paths` (when they hold nothing).

  For each path, the topmost ancestor that does not exist yet is noted; on an
  exception, every empty folder under it (and it, if then empty) is removed, so a
  bad input leaves no empty `runs/<name>-<hash>/` or `runs/` behind. Folders with
  files in them (checkpoints of an interrupted training) are kept. A lock file
  `lock_name` alone does not count as content: it is removed while holding its
  flock, so no process that holds or takes the lock loses it.
  """
  roots = []
  for path in paths:
    path = Path(path).absolute()
    root = None
    for candidate in [path, *path.parents]:
      if candidate.exists():
        break
      root = candidate
    if root is not None:
      roots.append(root)
  try:
    yield
  except BaseException:
    for root in roots:
      for folder, _, files in sorted(os.walk(root), key=lambda w: -len(w[0])):
        if files == [lock_name]:
          _remove_free_lock(Path(folder) / lock_name)
        with contextlib.suppress(OSError):
          os.rmdir(folder)  # only an empty folder can go
    raise


def _remove_free_lock(path):
  """Unlinks a lock file if no process holds its flock (taken while unlinking)."""
  import fcntl  # pylint: disable=import-outside-toplevel
  try:
    fd = os.open(path, os.O_RDWR)
  except OSError:
    return
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    path.unlink()
  except OSError:
    pass
  finally:
    os.close(fd)


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
  tmp = make_temp_directory(final_path.parent, prefix=f".{final_path.name}.tmp-")
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
