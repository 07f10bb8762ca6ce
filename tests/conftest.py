"""Shared fixtures: the shared MNIST files (skipped when absent) and quiet TensorFlow."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("KERASVAE_MNIST_DIR")
                 or Path(os.environ.get("KERASVAE_DATA_DIR") or REPO.parent / "shared" / "data")
                 / "mnist")


@pytest.fixture(scope="session")
def mnist_dir():
  """The shared official MNIST test split (IDX gzip); skips when this clone has no ../shared."""
  if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
    pytest.skip(f"shared MNIST files not found at {MNIST_DIR} "
                "(set KERASVAE_DATA_DIR to a folder with mnist/t10k-images-idx3-ubyte.gz, or "
                "KERASVAE_MNIST_DIR to the mnist folder itself)")
  return MNIST_DIR


# The folders a user's commands write into the checkout: the suite must neither write there nor
# read what is there (CI runs the README's `kerasvae run` first, which exports a served model).
USER_FOLDERS = ("saved_models", "runs", "studies", "kfp_local")
_GUARDED = tuple(os.path.join(str(REPO), folder) for folder in USER_FOLDERS)
# Audit events that create, change or remove a file or folder, with their path arguments. An
# event comes before the call: `os.rmdir` is left out, since it only ever removes an empty folder
# (one the suite made is seen at its mkdir) and cleanup code tries it on folders that stay.
_WRITE_EVENTS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.remove": (0,),
                 "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "shutil.rmtree": (0,),
                 "os.chmod": (0,), "os.utime": (0,)}
_WRITES_ANY = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_checkout_writes = []


def checkout_write(event, args):
  """The path in the checkout's user folders that an audit event writes, or None.

  The guard watches this process's own writes (Python's audit hooks: `open` for writing,
  `os.mkdir`, `os.rename`, ...), so a user's `kerasvae run` in the checkout while the suite runs
  is never blamed on the suite, as comparing the folders before and after the session did.
  """
  if event == "open":
    path, mode, flags = args
    if not (any(c in mode for c in "wax+") if isinstance(mode, str) else flags & _WRITES_ANY):
      return None
    paths = [path]
  elif event == "os.mkdir" and isinstance(args[0], (str, bytes, os.PathLike)) and os.path.isdir(
      args[0]):
    return None  # `mkdir(exist_ok=True)` of a folder that is there changes nothing
  elif event in _WRITE_EVENTS:
    paths = [args[i] for i in _WRITE_EVENTS[event] if i < len(args)]
  else:
    return None
  for path in paths:
    if isinstance(path, (str, bytes, os.PathLike)):
      full = os.path.abspath(os.fsdecode(path))
      if any(full == g or full.startswith(g + os.sep) for g in _GUARDED):
        return full
  return None


def _audit(event, args):
  if event in _WRITE_EVENTS or event == "open":
    path = checkout_write(event, args)
    if path is not None:
      _checkout_writes.append(f"{event} {path}")


sys.addaudithook(_audit)


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched():
  """Fails the session when a test (in this process) wrote into the checkout's user folders."""
  yield
  assert not _checkout_writes, f"the suite wrote into the checkout's user folders: " \
      f"{sorted(set(_checkout_writes))[:10]}"


@pytest.fixture
def keep_quick_findings(monkeypatch):
  """Lets a quick study's report keep its findings, so a test can check them against its
  numbers (a real quick report replaces them with `report.QUICK_FINDINGS`)."""
  from kerasvae.studies import report  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(report, "without_findings", lambda blocks: blocks)
