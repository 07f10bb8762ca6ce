"""Small inputs written into a test's tmp_path."""

import gzip
import struct

import numpy as np

from kerasvae.config import from_dict
from kerasvae.data.config import IngestConfig


def write_idx(path, array, compress=False, magic=None):
  """Writes `array` as an IDX file (big-endian), optionally gzip-compressed."""
  codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
  array = np.asarray(array)
  header = magic if magic is not None else bytes([0, 0, codes[array.dtype], array.ndim])
  header += struct.pack(f">{array.ndim}I", *array.shape)
  data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
  if compress:
    data = gzip.compress(data)
  path.write_bytes(data)
  return path


def random_images(n, size=8, seed=0):
  return np.random.RandomState(seed).randint(0, 256, size=(n, size, size)).astype(np.uint8)


def config(data, **kwargs):
  return from_dict(IngestConfig, {"data": data, **kwargs})


def assert_nothing_left(parent):
  """No artifact, no temporary directory: `parent` is missing or empty."""
  leftovers = list(parent.iterdir()) if parent.exists() else []
  assert not leftovers, leftovers
