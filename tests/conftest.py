"""Shared fixtures: the shared MNIST files (skipped when absent) and quiet TensorFlow."""

import os
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


def _user_files():
  return {str(p.relative_to(REPO)): p.stat().st_mtime_ns
          for folder in USER_FOLDERS for p in sorted((REPO / folder).rglob("*"))}


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched():
  """Fails the session when a test wrote into the checkout's user folders."""
  before = _user_files()
  yield
  after = _user_files()
  changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
  assert not changed, f"the suite changed the checkout's user folders: {changed[:10]}"
