"""The `idx` source: MNIST-format IDX files, gzip-compressed or raw, read a chunk at a time.

Also the IDX readers the tests and benchmarks use (`read_idx`, `iter_idx`).
"""

import contextlib
import dataclasses
import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import NamedTuple
from typing import Optional

import numpy as np

from kerasvae.artifacts import file_digest, fingerprint
from kerasvae.config import ConfigError, field, show
from kerasvae.data.sources.base import (FILE, READ_BLOCK, DataError, Source, chunk_rows,
                                        image_shape, next_block, read_exactly, read_rows,
                                        require_file, to_pixels)


@dataclasses.dataclass
class IdxConfig:
  """MNIST-format IDX files, gzip-compressed or raw (detected from the bytes)."""
  images: str = field("", help="IDX file of images [N, H, W] or [N, H, W, C].")
  labels: Optional[str] = field(None, help="IDX file of N integer labels, or null.")
  eval_images: Optional[str] = field(
      None, help="IDX images of the source's own eval split (used when split.method=source).")
  eval_labels: Optional[str] = field(None, help="IDX labels of the source's own eval split.")

  def validate(self):
    if self.eval_labels and not self.eval_images:
      raise ConfigError("Expected eval_images when eval_labels is set. "
                        f"Received: eval_labels={show(self.eval_labels)}, eval_images=None")


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
               0x0D: np.float32, 0x0E: np.float64}


class _IdxStream(NamedTuple):
  stream: object  # at the first byte of data
  dims: tuple  # as the header declares, e.g. (60000, 28, 28)
  dtype: np.dtype  # as stored (big-endian)
  compressed: bool


@contextlib.contextmanager
def _open_idx(path):
  """Yields an `_IdxStream` of an IDX file (MNIST format), gzip-compressed or raw.

  A raw file's size is checked against its header here; a gzip stream's length is known only
  by reading it. A truncated or corrupt gzip stream is a DataError naming the file.
  """
  path = Path(path)
  with open(path, "rb") as f:
    compressed = f.read(2) == b"\x1f\x8b"
    f.seek(0)
    stream = gzip.GzipFile(fileobj=f, mode="rb") if compressed else f
    try:
      dims, dtype = _read_idx_header(stream, path, None if compressed else path.stat().st_size)
      yield _IdxStream(stream, dims, dtype, compressed)
    except (EOFError, OSError, zlib.error) as e:
      if not compressed:
        raise
      raise DataError(f"{path}: expected a complete gzip stream. Received: a truncated or "
                      f"corrupt one ({e})") from None


def _read_idx_header(stream, path, file_size):
  magic = read_exactly(stream, 4)
  if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or not (
      1 <= magic[3] <= 4):
    raise DataError(f"{path}: expected an IDX magic number 0x0000TTDD (TT a data type among "
                    f"{', '.join(hex(t) for t in _IDX_DTYPES)}, DD = 1..4 dimensions, e.g. "
                    f"0x00000803 for MNIST images). Received: magic=0x{bytes(magic).hex()}")
  ndim = magic[3]
  header = 4 + 4 * ndim
  dims_bytes = read_exactly(stream, 4 * ndim)
  if len(dims_bytes) < 4 * ndim:
    raise DataError(f"{path}: expected a {header}-byte IDX header. "
                    f"Received: {4 + len(dims_bytes)} bytes")
  dims = struct.unpack(f">{ndim}I", dims_bytes)
  dtype = np.dtype(_IDX_DTYPES[magic[2]]).newbyteorder(">")
  expected = math.prod(dims) * dtype.itemsize
  if file_size is not None and file_size - header != expected:  # raw: known before reading
    raise DataError(f"{path}: expected {expected} bytes of data for dims {list(dims)}. "
                    f"Received: {file_size - header} bytes (truncated or padded file)")
  return dims, dtype


def _idx_length_error(path, dims, dtype, received=None):
  """The DataError of IDX data shorter than its header declares (or longer: `received` None)."""
  expected = math.prod(dims) * dtype.itemsize
  if received is None:
    return DataError(f"{path}: expected {expected} bytes of data for dims {list(dims)}, as its "
                     "header declares. Received: more (a padded file, or one that inflates past "
                     "its header; not read further)")
  return DataError(f"{path}: expected {expected} bytes of data for dims {list(dims)}. "
                   f"Received: {received} bytes (truncated file)")


def read_idx_header(path):
  """(dims, dtype) that an IDX file's header declares, read without its data (a raw file's size
  is checked against them)."""
  with _open_idx(path) as idx:
    return idx.dims, idx.dtype.newbyteorder("=")


def check_idx_length(path):
  """Checks that an IDX file holds exactly the data its header declares, reading it through.

  A raw file's size was checked with its header. A gzip file is inflated in 1 MiB blocks into
  one buffer and only as far as the header declares plus one byte: nothing the size of the
  data is allocated, and a small file whose header declares gigabytes fails as fast as it
  inflates.

  Raises:
    DataError: naming the file, the dims declared and the bytes there.
  """
  path = Path(path)
  with _open_idx(path) as idx:
    if not idx.compressed:
      return
    expected = math.prod(idx.dims) * idx.dtype.itemsize
    buffer = memoryview(bytearray(READ_BLOCK))
    received = 0
    while received <= expected:
      count = idx.stream.readinto(buffer[:min(READ_BLOCK, expected + 1 - received)])
      if not count:
        break
      received += count
    if received != expected:
      raise _idx_length_error(path, idx.dims, idx.dtype, received if received < expected else None)


def iter_idx(path, rows):
  """Yields an IDX file's array `rows` entries (along its first dimension) at a time.

  The data is streamed: memory follows `rows`, not the file. A gzip file is inflated only as
  far as its header declares, and one byte more means the file is refused, so a small gzip
  file that inflates to gigabytes costs no memory.

  Args:
    path: the file, gzip-compressed or raw.
    rows: entries per block.

  Yields:
    Arrays [k, *dims[1:]] in native byte order, k <= rows.

  Raises:
    DataError: naming the file, for a bad magic number, truncated or padded data.
  """
  path = Path(path)
  with _open_idx(path) as idx:
    yield from read_rows(idx.stream, idx.dims, idx.dtype, rows,
                          lambda received: _idx_length_error(path, idx.dims, idx.dtype, received))
    if idx.stream.read(1):
      raise _idx_length_error(path, idx.dims, idx.dtype)


def read_idx(path):
  """Reads a whole IDX file (MNIST format), gzip-compressed or raw, into memory.

  For small files (tests, benchmarks); ingest streams with `iter_idx`.

  Returns:
    The array, with the dimensions of the header.

  Raises:
    DataError: naming the file, for a bad magic number, truncated or padded data.
  """
  dims, dtype = read_idx_header(path)
  blocks = list(iter_idx(path, max(dims[0], 1)))
  return blocks[0] if blocks else np.zeros(dims, dtype)


class IdxSource(Source):
  """MNIST-format IDX images and labels, read a chunk at a time."""
  name = "idx"
  settings = IdxConfig
  block_in_every_config = True
  path_fields = {"images": FILE, "labels": FILE, "eval_images": FILE, "eval_labels": FILE}
  required = ("images",)
  _PARTS = (("idx.images", "idx.labels"), ("idx.eval_images", "idx.eval_labels"))

  def __init__(self, config):
    super().__init__(config)
    self.paths = {"idx.images": require_file(config.images, "idx.images")}
    for field in ("labels", "eval_images", "eval_labels"):
      if getattr(config, field):
        self.paths[f"idx.{field}"] = require_file(getattr(config, field), f"idx.{field}")
    self.has_source_splits = bool(config.eval_images)
    self.location = str(self.paths["idx.images"])
    # The headers alone: shapes, types and counts are checked before any data is read.
    self.headers = {field: read_idx_header(path) for field, path in self.paths.items()}
    for images_field, labels_field in self._PARTS:
      if images_field not in self.paths:
        continue
      path = self.paths[images_field]
      dims, _ = self.headers[images_field]
      image_shape(dims, str(path))
      if labels_field in self.paths:
        lpath = self.paths[labels_field]
        ldims, ldtype = self.headers[labels_field]
        if len(ldims) != 1 or not np.issubdtype(ldtype, np.integer):
          raise DataError(f"{lpath}: expected a 1-D integer IDX array of labels. "
                          f"Received: shape={ldims}, dtype={ldtype}")
        if ldims[0] != dims[0]:
          raise DataError(f"{lpath}: expected {dims[0]} labels, one per image of {path}. "
                          f"Received: {ldims[0]} labels")

  def content_hash(self):
    return fingerprint({k: file_digest(p) for k, p in self.paths.items()})

  def check_data(self):
    for path in self.paths.values():
      check_idx_length(path)

  def chunks(self, use_source_splits=False):
    parts = [("train" if use_source_splits else None, *self._PARTS[0])]
    if use_source_splits:
      parts.append(("eval", *self._PARTS[1]))
    for role, images_field, labels_field in parts:
      path = self.paths[images_field]
      where = str(path)
      self.location = where
      dims, dtype = self.headers[images_field]
      shape = image_shape(dims, where)  # (N, H, W, C)
      pixel_max = 255 if dtype == np.uint8 else 1
      rows = chunk_rows(math.prod(shape[1:]) * dtype.itemsize)
      labels = iter_idx(self.paths[labels_field], rows) if labels_field in self.paths else None
      try:
        start = 0
        for images in iter_idx(path, rows):  # [n, H, W] or [n, H, W, C]
          n = len(images)
          chunk = {"images": to_pixels(images.reshape((n,) + shape[1:]), pixel_max, where),
                   "keys": np.arange(start, start + n)}
          if labels is not None:
            chunk["labels"] = next_block(labels, n, self.paths[labels_field]).astype(np.int64)
          start += n
          yield role, chunk
        if labels is not None:
          next(labels, None)  # the end of the file: data past its header is refused
      finally:
        if labels is not None:
          labels.close()
