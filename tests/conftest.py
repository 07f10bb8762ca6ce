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
