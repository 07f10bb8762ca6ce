"""Fixtures of the data tests."""

import numpy as np
import pytest

from tests.data import helpers


@pytest.fixture
def npz_path(tmp_path):
  """60 random 8x8 uint8 images with labels and 2 factors."""
  rs = np.random.RandomState(1)
  path = tmp_path / "inputs" / "small.npz"
  path.parent.mkdir()
  np.savez(path, images=helpers.random_images(60), labels=rs.randint(0, 3, 60),
           factors=rs.uniform(size=(60, 2)).astype(np.float32),
           factor_classes=rs.randint(0, 5, (60, 2)))
  return path
