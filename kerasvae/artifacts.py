"""Artifacts: directories that appear complete or not at all, with metadata and fingerprints."""

import contextlib
import datetime
import errno
import functools
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import socket
import uuid
from pathlib import Path

import numpy as np

from kerasvae import _backend

METADATA_FILE = "metadata.json"
# Every metadata file carries its own digest: the SHA-256 of its canonical JSON (keys sorted,
# separators "," and ":", ASCII) without the digest field. The note beside it says so in the
# file and marks it as digested: a byte changed in the digest's key still leaves the note, so
# that damage is named instead of passing for a file written before metadata digests.
METADATA_DIGEST = "metadata_sha256"
METADATA_DIGEST_NOTE = "metadata_sha256_of"
_DIGEST_NOTE_TEXT = ("this JSON object without metadata_sha256, keys sorted, separators ',' and "
                     "':', ASCII")
# Temporary files and directories are named `.<name>.tmp-<host>-<pid>-<random>`: a later
# writer removes those whose process is gone (`remove_stale_temporaries`) and never another
# live process's.
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()
_TEMPORARY = re.compile(r"\..*\.tmp-([0-9a-f]{8})-([0-9]+)-[^/]*")


class ArtifactError(ValueError):
  """An artifact file is unreadable or damaged. The message names the file and what to redo.

  Attributes:
    problem: what is wrong, in a few words without the file's name or the command.
  """

  def __init__(self, message, problem=None):
    super().__init__(message)
    self.problem = problem or message


class SymlinkError(ArtifactError):
  """A folder kerasvae writes into is, or holds, a symbolic link."""


def refuse_symlinks(path, named, what):
  """Raises SymlinkError if `path`, a folder from `named` down to it, or anything in it is a link.

  kerasvae writes only into the folder the user named (`named`: run.runs_dir, --run-dir,
  export.base_dir) and the real folders it makes below it: a link there would send
  artifacts, and the removals of `--force`, wherever it points. The folders above `named`
  are the user's to arrange, links or not.

  Args:
    path: a folder kerasvae writes (it need not exist yet), `named` or below it.
    named: the folder the user named.
    what: the setting that named it, for the message (`run.runs_dir`).
  """
  path, named = Path(os.path.abspath(path)), Path(os.path.abspath(named))
  parts = path.relative_to(named).parts
  chain = [named] + [named.joinpath(*parts[:i + 1]) for i in range(len(parts))]
  links = (p for p in chain if p.is_symlink())
  if path.is_dir() and not path.is_symlink():
    links = itertools.chain(links, (Path(folder) / name
                                    for folder, folders, files in os.walk(path)
                                    for name in folders + files
                                    if os.path.islink(os.path.join(folder, name))))
  link = next(links, None)
  if link is None:
    return
  target = os.readlink(link)
  if link == named:
    raise SymlinkError(f"{what}: expected a folder, not a symbolic link: kerasvae writes only "
                       f"into the folder named. Received: {link} -> {target}. Name the folder "
                       f"itself: {what}={link.resolve()}")
  raise SymlinkError(f"{what}: expected only real folders and files under {named}: kerasvae "
                     f"does not write through symbolic links. Received: {link} -> {target}. "
                     "Remove the link (kerasvae makes its folders itself).")


class DiskFullError(ArtifactError):
  """The device an artifact is written to is full. The message names the path and the space."""


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# TensorFlow's file system reports a full device in the text of a ResourceExhaustedError
# ("<path>; No space left on device"); its errors carry no errno.
_DISK_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded")


def is_disk_full(error):
  """True for an error of a full device, or one caused by it.

  OSError ENOSPC or EDQUOT (a quota) from Python's writes (model.keras, JSON, PNGs), and
  TensorFlow's ResourceExhaustedError of a full device from TFRecord, checkpoint and
  SavedModel writes (not its out-of-memory ones, which say so).
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
      return True
    if type(error).__module__.startswith("tensorflow") and _DISK_FULL_TEXT.search(str(error)):
      return True
    error = error.__cause__ or error.__context__
  return False


def _size(size):
  for unit, scale in (("GB", 1e9), ("MB", 1e6)):
    if size >= scale:
      return f"{size / scale:.1f} {unit}"
  return f"{size / 1e3:.0f} kB"


def disk_full_message(path, setting=None):
  """`No space left on the device holding <path>`, with its free space: what the step needs
  more than, once what it had written is removed (the caller's cleanup has run).

  Args:
    path: the folder or file being written; or the error of a full device, whose file (an
      OSError's filename, the path in TensorFlow's message) is named if it has one.
    setting: the setting that chose its place (`run.runs_dir`), named as the way out.
  """
  if isinstance(path, BaseException):
    error = path
    path = getattr(error, "filename", None)
    found = re.search(r"(/[^\s;]+); (?:No space left on device|Disk quota exceeded)", str(error))
    path = path or (found and found.group(1))
    if not path:
      return (f"No space left on a device kerasvae was writing to ({type(error).__name__}: "
              f"{error}). Free some space, then run the command again.")
  path = Path(path)
  existing = next((p for p in [path, *path.parents] if p.exists()), Path("/"))
  usage = shutil.disk_usage(existing)
  where = f"set {setting} to a folder on another device" if setting else "write elsewhere"
  return (f"No space left on the device holding {path}: the step needs more than the "
          f"{_size(usage.free)} free there (of {_size(usage.total)}); nothing "
          f"half-written is kept. Free some space or {where}, then run the command again.")


@contextlib.contextmanager
def disk_full_named(path, setting=None):
  """Turns an error of a full device inside the block into a DiskFullError naming `path`.

  Wrap a step's writing (its atomic writes remove their temporaries on the way out), so the
  user reads where the space ran out and how much is free, not a traceback.
  """
  try:
    yield
  except DiskFullError:
    raise
  except Exception as error:  # pylint: disable=broad-except  # re-raised unless a full disk
    if not is_disk_full(error):
      raise
    raise DiskFullError(disk_full_message(path, setting)) from None


# Errors of the file system that a user fixes by choosing another place or name: named in one
# line (`os_error_message`) instead of a traceback.
_NAMED_ERRNOS = (errno.EROFS, errno.ENAMETOOLONG)


def os_error_message(error):
  """One line for a read-only file system or an over-long name in `error` (or its causes),
  naming the path and the way out; None for other errors."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _NAMED_ERRNOS:
      break
    error = error.__cause__ or error.__context__
  else:
    return None
  path = written_path(error.filename) if error.filename else "a path"
  if error.errno == errno.EROFS:
    return (f"{path}: expected a writable folder. Received: a read-only file system ([Errno 30] "
            f"{error.strerror}). Finished steps are read there without writing; to run a "
            "step, point run.runs_dir (or --run-dir, export.base_dir) at a writable folder.")
  name_max = _name_max(path)
  parts = [p for p in Path(str(path)).parts if len(os.fsencode(p)) > name_max]
  if parts:
    longest = max(parts, key=lambda p: len(os.fsencode(p)))
    received = (f"a component of {len(os.fsencode(longest))} bytes "
                f"({longest[:20]}...{longest[-10:]})")
  else:
    received = f"a path of {len(os.fsencode(str(path)))} bytes"
  return (f"{str(path)[:120]}{'...' if len(str(path)) > 120 else ''}: expected path components "
          f"of at most {name_max} bytes (the file system's limit). Received: {received}. "
          "Choose shorter names (run.runs_dir, run.name, export.base_dir, --run-dir).")


def written_path(path):
  """The artifact a temporary path (`temporary_name`) was writing, else `path` itself: what a
  message names (`runs/…/evaluate`, not `runs/…/.evaluate.tmp-…`)."""
  path = Path(os.fsdecode(path))
  match = re.fullmatch(r"\.(.*)\.tmp-[0-9a-f]{8}-[0-9]+-[^/]*", path.name)
  return path.with_name(match.group(1)) if match else path


def _name_max(path):
  """The longest file name the file system holding `path` (or its nearest parent) allows."""
  for parent in [Path(str(path)), *Path(str(path)).parents]:
    try:
      return os.pathconf(parent, "PC_NAME_MAX")
    except OSError:
      continue
  return 255


def fingerprint(obj):
  """Returns a stable SHA-256 hex digest of a JSON-serialisable object."""
  text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_items(items):
  """`fingerprint(list(items))`, made an item at a time: memory follows one item, not the list."""
  digest = hashlib.sha256(b"[")
  for i, item in enumerate(items):
    text = json.dumps(item, sort_keys=True, default=str, separators=(",", ":"))
    digest.update((b"," if i else b"") + text.encode("utf-8"))
  digest.update(b"]")
  return digest.hexdigest()


def file_digest(path, chunk_size=1 << 20):
  """Returns the SHA-256 hex digest of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(chunk_size), b""):
      digest.update(chunk)
  return digest.hexdigest()


def digest_files(root, exclude=(METADATA_FILE,), only=None):
  """Size and SHA-256 of every file under `root`, to record what a step wrote.

  SHA-256 reads 1.4 GB/s on one core of the machine the steps were measured on (AMD EPYC):
  a 10 MB artifact costs 7 ms.

  Args:
    root: a directory (or a single file, digested under its own name).
    exclude: relative paths to leave out (the metadata file that records the digests).
    only: relative paths to digest instead of every file, or None.

  Returns:
    `{relative path: {"size": bytes, "sha256": hex}}`, sorted by path.
  """
  root = Path(root)
  if only is not None:
    files = [root / rel for rel in only]
  elif root.is_file():
    files = [root]
  else:
    files = sorted(p for p in root.rglob("*") if p.is_file())
  out = {}
  for path in files:
    rel = path.name if path == root else path.relative_to(root).as_posix()
    if rel in exclude or _TEMPORARY.fullmatch(path.name):
      continue
    out[rel] = {"size": path.stat().st_size, "sha256": file_digest(path)}
  return out


def find_damage(root, digests):
  """The first file under `root` that differs from its recorded digest, described; or None.

  Sizes are compared first (no reading), then contents. Files not in `digests` are ignored.

  Args:
    root: the directory the digests were taken in (or the single file).
    digests: what `digest_files` returned when the artifact was written.
  """
  root = Path(root)
  paths = {rel: (root if root.is_file() else root / rel) for rel in digests}
  for rel, expected in digests.items():
    if not paths[rel].is_file():
      return f"{rel} is missing"
    size = paths[rel].stat().st_size
    if size != expected["size"]:
      return f"{rel} has {size} bytes where {expected['size']} were written"
  for rel, expected in digests.items():
    actual = file_digest(paths[rel])
    if actual != expected["sha256"]:
      return (f"{rel} has other bytes than were written (SHA-256 {actual[:12]}…, "
              f"expected {expected['sha256'][:12]}…)")
  return None


def temporary_name(name):
  """A hidden sibling name for writing `name`: `.<name>.tmp-<host>-<pid>-<random>`."""
  return f".{name}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _process_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's live process
    return True
  return True


def remove_stale_temporaries(directory):
  """Removes temporaries in `directory` left by killed writers of this host.

  Only names made by `temporary_name` whose process no longer runs are removed: a live
  writer's temporary (another process's, or this one's) is left alone, and so is one
  written from another host, whose processes this one cannot see.

  Returns:
    The removed paths.
  """
  directory = Path(directory)
  removed = []
  try:
    entries = list(directory.iterdir())
  except FileNotFoundError:
    return removed
  for path in entries:
    match = _TEMPORARY.fullmatch(path.name)
    if not match or match.group(1) != _HOST:
      continue
    pid = int(match.group(2))
    if pid == os.getpid() or _process_alive(pid):
      continue
    if path.is_dir() and not path.is_symlink():
      shutil.rmtree(path, ignore_errors=True)
    else:
      path.unlink(missing_ok=True)
    removed.append(path)
  return removed


def remove_directory(path):
  """Removes a directory (if it exists) so that it disappears at once, never half-removed.

  It is first renamed to a temporary name (`temporary_name`): a reader sees the whole
  directory or none, and what a killed removal leaves is removed by the next writer in
  the folder (`remove_stale_temporaries`).
  """
  path = Path(path)
  if not path.is_dir() or path.is_symlink():
    return
  trash = path.with_name(temporary_name(path.name))
  os.rename(path, trash)
  shutil.rmtree(trash, ignore_errors=True)


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


# The CPU flags oneDNN (TensorFlow's CPU kernels) chooses its implementations by.
ONEDNN_FLAG_PREFIXES = ("avx2", "avx512", "amx", "avx_vnni", "fma")


def cpu_description(cpuinfo=None):
  """The CPU as oneDNN sees it: model name, family/model/stepping, the ISA flags it dispatches on.

  E.g. "AMD EPYC (family 26 model 2 stepping 1; avx2 avx512bw ... avx_vnni fma; no amx)".
  Two machines with the same model name can differ in all of these (a 2-core "AMD EPYC" with
  and without AVX-512 ran the conv step 2.6x apart), so every timing records them.

  Args:
    cpuinfo: the text of /proc/cpuinfo; None reads it (on a system without it, the platform's
      processor name).
  """
  fields = _backend.cpuinfo_fields(cpuinfo)
  if fields is None:
    return platform.processor() or "unknown CPU"
  flags = sorted(f for f in fields.get("flags", "").split() if f.startswith(ONEDNN_FLAG_PREFIXES))
  isa = " ".join(flags) or "no avx2"
  if not any(f.startswith("avx512") for f in flags):
    isa += "; no avx512"
  if not any(f.startswith("amx") for f in flags):
    isa += "; no amx"
  return (f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family', '?')} "
          f"model {fields.get('model', '?')} stepping {fields.get('stepping', '?')}; {isa})")


# Environment variables that change which CPU kernels TensorFlow runs: recorded when set.
KERNEL_SWITCHES = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")


def machine():
  """Where a step ran, for metadata files: its CPU (`cpu_description`), cores, whether
  TensorFlow ran its oneDNN kernels or Eigen's, and the kernel switches of `KERNEL_SWITCHES`
  that are set (an ISA cap makes another machine of the same CPU), so that a time or a speed
  in the metadata can be read against what measured it."""
  try:
    usable = len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    usable = os.cpu_count()
  switches = {k: os.environ[k] for k in KERNEL_SWITCHES if k in os.environ}
  return {"cpu": cpu_description(), "cores": os.cpu_count(), "usable_cores": usable,
          "onednn": _backend.onednn_enabled(),
          **({"kernel_switches": switches} if switches else {})}


@contextlib.contextmanager
def replacing(path, suffix=""):
  """Yields a temporary sibling path to write `path` to; it is renamed over `path` at the end.

  The name is `temporary_name(path.name) + suffix` (a suffix for writers that choose the
  format by the name's ending, like `model.save(".keras")`), so a temporary left by a
  killed writer is removed by the next write into the folder (`remove_stale_temporaries`,
  called here first). On an exception the temporary file is removed and `path` is as it was.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  remove_stale_temporaries(path.parent)
  tmp = path.with_name(temporary_name(path.name) + suffix)
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def atomic_file(path):
  """Yields a binary file whose bytes appear at `path` only once the block has finished
  (`replacing`, with the bytes synced to disk before the rename)."""
  with replacing(path) as tmp:
    with open(tmp, "wb") as f:
      yield f
      f.flush()
      os.fsync(f.fileno())


def write_text(path, text):
  """Writes text through a temporary file and a rename, so readers never see half a file."""
  with atomic_file(path) as f:
    f.write(text.encode("utf-8"))


def write_json(path, obj):
  """Writes JSON through a temporary file and a rename, so readers never see half a file."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _metadata_digest(obj):
  """The SHA-256 of a JSON object's canonical text without its `METADATA_DIGEST` field."""
  body = {k: v for k, v in obj.items() if k != METADATA_DIGEST}
  text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
  return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_metadata(path, obj):
  """Writes a metadata file: `obj` as JSON, with its own digest (`METADATA_DIGEST`).

  `read_json` checks the digest, so a byte changed in the file, even one that leaves valid
  JSON, is named as damage. The digest is of what a reader gets back (paths as strings,
  tuples as lists), computed after a round trip through JSON.

  Returns:
    The dict written (with the digest).
  """
  plain = json.loads(json.dumps(obj, default=str))
  plain.pop(METADATA_DIGEST, None)
  plain[METADATA_DIGEST_NOTE] = _DIGEST_NOTE_TEXT
  plain[METADATA_DIGEST] = _metadata_digest(plain)
  write_json(path, plain)
  return plain


def metadata_damage(obj):
  """What is wrong with a metadata object's own digest, in words; or None.

  None also for an object without a digest and its note: metadata written before metadata
  digests (or a JSON file that is not metadata) is read as it is.
  """
  recorded = obj.get(METADATA_DIGEST)
  if recorded is None and METADATA_DIGEST_NOTE not in obj:
    return None
  if not isinstance(recorded, str):
    return (f"its {METADATA_DIGEST} field is missing or not a string, while its "
            f"{METADATA_DIGEST_NOTE} says it was written with one")
  actual = _metadata_digest(obj)
  if actual != recorded:
    return (f"its content differs from what was written (SHA-256 {actual[:12]}…, "
            f"{METADATA_DIGEST} {recorded[:12]}…)")
  return None


def read_json(path, redo=None):
  """Reads a JSON object (a dict) that kerasvae wrote, checking its digest if it has one.

  A metadata file (`write_metadata`) is checked against its own digest; one without a
  digest (written before metadata digests) is read as it is.

  Args:
    path: the file.
    redo: the command that rewrites it (`kerasvae train --force`), named in the error.

  Raises:
    FileNotFoundError: the file does not exist.
    ArtifactError: it is unreadable, not JSON, not a JSON object, or differs from its digest.
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
                        f"Received: {type(e).__name__}: {e}.{hint}",
                        problem=f"{path.name} is not readable JSON ({type(e).__name__}: {e})"
                        ) from None
  if not isinstance(obj, dict):
    raise ArtifactError(f"{path}: expected a JSON object. Received: {type(obj).__name__}.{hint}",
                        problem=f"{path.name} holds a {type(obj).__name__}, not a JSON object")
  problem = metadata_damage(obj)
  if problem is not None:
    raise ArtifactError(f"{path} is damaged: {problem}.{hint}", problem=f"{path.name}: {problem}")
  return obj


_RENAME_NOREPLACE = 1


@functools.lru_cache(maxsize=None)
def _renameat2():
  try:
    import ctypes  # pylint: disable=import-outside-toplevel
    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.renameat2
  except (OSError, AttributeError):
    return None
  function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint]
  return function


def rename_no_replace(source, target):
  """Renames `source` to `target`, failing with FileExistsError if `target` exists.

  `os.rename` of a directory onto an existing empty directory succeeds on Linux, so a plain
  rename can replace what another process just created. Linux's `renameat2(RENAME_NOREPLACE)`
  makes the check and the rename one step; elsewhere the check comes just before the rename.
  """
  function = _renameat2()
  if function is not None:
    import ctypes  # pylint: disable=import-outside-toplevel
    at_fdcwd = -100
    if function(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target),
                _RENAME_NOREPLACE) == 0:
      return
    error = ctypes.get_errno()
    if error == errno.EEXIST:
      raise FileExistsError(errno.EEXIST, f"Refusing to replace the existing {target}",
                            str(target))
    if error not in (errno.ENOSYS, errno.EINVAL):  # not supported by this kernel or filesystem
      raise OSError(error, os.strerror(error), str(source))
  if os.path.lexists(target):
    raise FileExistsError(errno.EEXIST, f"Refusing to replace the existing {target}", str(target))
  os.rename(source, target)


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
  final rename is atomic; those of killed writers are removed first.

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
  remove_stale_temporaries(final_path.parent)
  tmp = make_temp_directory(final_path.parent, prefix=temporary_name(final_path.name) + "-")
  try:
    yield tmp
    if overwrite and final_path.exists():
      # Move the old one aside first: a rename onto a non-empty directory fails.
      trash = final_path.with_name(temporary_name(final_path.name))
      os.replace(final_path, trash)
      os.replace(tmp, final_path)
      shutil.rmtree(trash, ignore_errors=True)
    else:
      rename_no_replace(tmp, final_path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
