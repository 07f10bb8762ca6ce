"""Data sources: each reads one kind of input and yields chunks of examples.

A source is opened from its config block; opening checks that its inputs exist
and what their headers declare (shapes, types, counts, and sizes where the file
system or a zip directory states them) without reading their data.
`content_hash()` digests the inputs (so ingest can reuse an artifact) and
`check_data()` reads through data whose length only reading tells (a gzip IDX
file); ingest calls both before anything is written. `chunks()` then yields
`(role, chunk)` pairs: `role` is None, or 'train' / 'eval' when the source's
own splits are asked for; `chunk` is a dict with

  images:          uint8 [n, H, W, C] (0..255), or float32 [n, H, W, C]
                   already divided by the source's white value;
  keys:            [n] stable per-example keys for the split hash;
  labels:          int64 [n] (optional);
  factors:         float32 [n, F] (optional);
  factor_classes:  int64 [n, F] (optional).

Memory: every source reads its data a chunk at a time (`chunk_rows`: at most
CHUNK_SIZE examples and CHUNK_BYTES of stored pixels), so an ingest's peak
memory does not grow with the dataset (`benchmarks/ingest_throughput.py`
measures it). Arrays are read through streams, not memory maps: a mapped page
that was read stays in the process's resident set, which then grows to the
size of the file.

Sources are registered by the names users write in configs (`SOURCES`).
"""

import contextlib
import gzip
import itertools
import logging
import math
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kerasvae.artifacts import file_digest, fingerprint, fingerprint_items, hash_fraction
from kerasvae.config import ConfigError
from kerasvae.data import dsprites as dsprites_lib

logger = logging.getLogger(__name__)

CHUNK_SIZE = 4096
CHUNK_BYTES = 32 << 20  # the stored pixels of one chunk, at most (but one example)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class DataError(ValueError):
  """The input data is invalid. The message names the file or field."""


def chunk_rows(example_bytes):
  """Examples per chunk of examples of `example_bytes` stored bytes: CHUNK_SIZE, fewer when
  that many would pass CHUNK_BYTES, at least one."""
  return max(1, min(CHUNK_SIZE, CHUNK_BYTES // max(example_bytes, 1)))


def _require_file(path, field):
  path = Path(path).expanduser()
  if not path.is_file():
    what = ("a directory" if path.is_dir() else "something that is not a regular file"
            if path.exists() else "nothing")
    raise FileNotFoundError(
        f"{field}: expected a file at {path}. Received: {what} there." + _data_dir_hint(path))
  return path


def check_input_paths(data_config):
  """Names a missing input file or folder of the chosen source at once (no TensorFlow needed),
  before a command spends seconds importing TensorFlow. Reading checks the rest."""
  source = data_config.source
  block = data_config.source_config
  if source == "image_folder":
    root = Path(block.root).expanduser()
    if not root.is_dir():
      raise FileNotFoundError(f"image_folder.root: expected a directory at {root}. "
                              f"Received: {'a file' if root.exists() else 'nothing'} there."
                              + _data_dir_hint(root))
    return
  from kerasvae.data.config import PATH_FIELDS  # pylint: disable=import-outside-toplevel
  for name in PATH_FIELDS.get(source, ()):
    value = getattr(block, name)
    if value and source in ("idx", "npz"):
      _require_file(value, f"{source}.{name}")


def _data_dir_hint(path):
  """Where a bundled config's relative data paths point, for a file that is not there."""
  from kerasvae.data.config import DATA_DIR_ENV  # pylint: disable=import-outside-toplevel
  from kerasvae.data.config import bundled_data_dir  # pylint: disable=import-outside-toplevel
  base = bundled_data_dir()
  if not Path(os.path.abspath(path)).is_relative_to(base):
    return ""
  return (f" A bundled config reads its data below ${DATA_DIR_ENV} (now {base}): set it to the "
          "folder holding the data set's folder, or point the path elsewhere with --set.")


def _image_shape(shape, where):
  """(N, H, W) or (N, H, W, C) -> (N, H, W, C), or DataError naming `where`."""
  shape = tuple(shape)
  full = shape + (1,) if len(shape) == 3 else shape
  if len(full) != 4 or full[-1] not in (1, 3, 4) or min(full[1:3]) < 1:
    raise DataError(f"{where}: expected images of shape [N, H, W] or [N, H, W, C] with H, W at "
                    f"least 1 and C in 1, 3, 4. Received: shape={shape}")
  return full


def _image_array(images, where):
  """[n, H, W] or [n, H, W, C] -> [n, H, W, C], or DataError naming `where`."""
  return images.reshape(_image_shape(images.shape, where))


def _to_pixels(images, pixel_max, where):
  """Images as uint8 0..255 when exact, else float32 divided by `pixel_max`."""
  if np.issubdtype(images.dtype, np.integer) and pixel_max in (1, 255):
    if images.size and (images.min() < 0 or images.max() > pixel_max):
      raise DataError(f"{where}: expected integer pixels in [0, {int(pixel_max)}]. "
                      f"Received: min={images.min()}, max={images.max()}")
    images = images.astype(np.uint8)
    return images * np.uint8(255) if pixel_max == 1 else images
  if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
    raise DataError(f"{where}: expected integer or float images. Received: dtype={images.dtype}")
  return (images.astype(np.float64) / pixel_max).astype(np.float32)


_READ_BLOCK = 1 << 20


def _read_exactly(stream, size):
  """Reads `size` bytes in blocks: memory grows with the data present, not with a header's claim."""
  data = bytearray()
  while len(data) < size:
    block = stream.read(min(_READ_BLOCK, size - len(data)))
    if not block:
      break
    data += block
  return data


def _read_rows(stream, shape, dtype, rows, truncated):
  """Yields the array of `shape` and `dtype` (as stored) that `stream` holds in C order, in
  blocks of at most `rows` rows along its first axis, in native byte order.

  Data that ends early raises `truncated(bytes_received)`.
  """
  row_bytes = math.prod(shape[1:]) * dtype.itemsize
  rows = rows if row_bytes else max(shape[0], 1)  # rows of no bytes: one block
  received = 0
  for start in range(0, shape[0], rows):
    count = min(rows, shape[0] - start)
    data = _read_exactly(stream, count * row_bytes)
    received += len(data)
    if len(data) < count * row_bytes:
      raise truncated(received)
    block = np.frombuffer(data, dtype).reshape((count,) + tuple(shape[1:]))  # [count, ...]
    yield block.astype(dtype.newbyteorder("="), copy=False)


def _next_block(blocks, n, where):
  """The next block of an array read beside the images (labels, factors): `n` rows."""
  block = next(blocks, None)
  if block is None or len(block) != n:
    raise DataError(f"{where}: expected {n} more rows, as many as the images' next chunk. "
                    f"Received: {0 if block is None else len(block)} (the file changed while "
                    "it was read)")
  return block


class Source:
  """Base class: a name, a content hash, names of labels and factors, chunks."""
  name = ""
  has_source_splits = False

  def __init__(self, config):
    self.config = config
    self.label_names = None  # class names, if known
    self.factor_names = None  # names of the F factors, if any
    self.location = ""  # what to name in errors about the data

  def content_hash(self):
    raise NotImplementedError

  def check_data(self):
    """Checks, in bounded memory, what opening could not: the length of data that only reading
    tells. DataError naming the file for data shorter or longer than its header declares."""

  def chunks(self, use_source_splits=False):
    raise NotImplementedError

  def check_source_splits(self):
    if not self.has_source_splits:
      raise ConfigError(f"split.method: expected 'hash' for a {self.name} source without its "
                        "own eval split. Received: method='source'")


# ---------------------------------------------------------------------- IDX

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
  magic = _read_exactly(stream, 4)
  if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or not (
      1 <= magic[3] <= 4):
    raise DataError(f"{path}: expected an IDX magic number 0x0000TTDD (TT a data type among "
                    f"{', '.join(hex(t) for t in _IDX_DTYPES)}, DD = 1..4 dimensions, e.g. "
                    f"0x00000803 for MNIST images). Received: magic=0x{bytes(magic).hex()}")
  ndim = magic[3]
  header = 4 + 4 * ndim
  dims_bytes = _read_exactly(stream, 4 * ndim)
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
    buffer = memoryview(bytearray(_READ_BLOCK))
    received = 0
    while received <= expected:
      count = idx.stream.readinto(buffer[:min(_READ_BLOCK, expected + 1 - received)])
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
    yield from _read_rows(idx.stream, idx.dims, idx.dtype, rows,
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
  _PARTS = (("idx.images", "idx.labels"), ("idx.eval_images", "idx.eval_labels"))

  def __init__(self, config):
    super().__init__(config)
    self.paths = {"idx.images": _require_file(config.images, "idx.images")}
    for field in ("labels", "eval_images", "eval_labels"):
      if getattr(config, field):
        self.paths[f"idx.{field}"] = _require_file(getattr(config, field), f"idx.{field}")
    self.has_source_splits = bool(config.eval_images)
    self.location = str(self.paths["idx.images"])
    # The headers alone: shapes, types and counts are checked before any data is read.
    self.headers = {field: read_idx_header(path) for field, path in self.paths.items()}
    for images_field, labels_field in self._PARTS:
      if images_field not in self.paths:
        continue
      path = self.paths[images_field]
      dims, _ = self.headers[images_field]
      _image_shape(dims, str(path))
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
      shape = _image_shape(dims, where)  # (N, H, W, C)
      pixel_max = 255 if dtype == np.uint8 else 1
      rows = chunk_rows(math.prod(shape[1:]) * dtype.itemsize)
      labels = iter_idx(self.paths[labels_field], rows) if labels_field in self.paths else None
      try:
        start = 0
        for images in iter_idx(path, rows):  # [n, H, W] or [n, H, W, C]
          n = len(images)
          chunk = {"images": _to_pixels(images.reshape((n,) + shape[1:]), pixel_max, where),
                   "keys": np.arange(start, start + n)}
          if labels is not None:
            chunk["labels"] = _next_block(labels, n, self.paths[labels_field]).astype(np.int64)
          start += n
          yield role, chunk
        if labels is not None:
          next(labels, None)  # the end of the file: data past its header is refused
      finally:
        if labels is not None:
          labels.close()


# ---------------------------------------------------------------- NPZ / NPY

_NPY_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _read_npy_header(stream, size, where):
  """(shape, fortran_order, dtype as stored) of a .npy stream of `size` bytes, refused unless
  the header declares exactly that size, before any data is read or allocated (numpy
  allocates what the header declares)."""
  version = np.lib.format.read_magic(stream)
  read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                 else np.lib.format.read_array_header_2_0)
  shape, fortran_order, dtype = read_header(stream)
  if dtype.hasobject:
    raise DataError(f"{where}: expected an array of numbers. Received: dtype={dtype} (pickled "
                    "Python objects, which kerasvae does not load)")
  expected = stream.tell() + math.prod(shape) * dtype.itemsize
  if size != expected:
    raise DataError(f"{where}: expected {expected} bytes for an array of shape {list(shape)} and "
                    f"dtype {dtype}, as its header declares. Received: {size} bytes (a "
                    f"{'truncated' if size < expected else 'padded'} array; not read)")
  return shape, fortran_order, dtype


class _NpyArray:
  """A .npy array, a file or a member of a .npz archive, read a block of rows at a time.

  Made from its header alone, checked against the size the file system (or the zip
  directory) gives. Read through a stream, not a memory map, so memory follows the block.
  """

  def __init__(self, path, member=None):
    self.path = Path(path)
    self.member = member  # the array's name in a .npz archive (its file is `<member>.npy`)
    self.where = f"{path}[{member!r}]" if member else str(path)
    with self._open() as (stream, size):
      self.shape, self.fortran_order, self.stored_dtype = _read_npy_header(stream, size,
                                                                           self.where)
    self.dtype = self.stored_dtype.newbyteorder("=")

  @contextlib.contextmanager
  def _open(self):
    """Yields (stream, size in bytes); a read error becomes a DataError naming the file."""
    try:
      if self.member is None:
        with open(self.path, "rb") as f:
          yield f, self.path.stat().st_size
      else:
        with zipfile.ZipFile(self.path) as archive:
          info = archive.getinfo(f"{self.member}.npy")
          with archive.open(info) as f:
            yield f, info.file_size
    except _NPY_ERRORS as e:
      if isinstance(e, DataError):
        raise
      if self.member is None:
        raise DataError(f"{self.path}: expected a readable .npy array without pickled objects. "
                        f"Received: {e}") from None
      raise DataError(f"{self.path}: expected a complete .npz archive (a zip of .npy arrays) "
                      f"without pickled objects. Received: {type(e).__name__}: {e}") from None

  def blocks(self, rows):
    """Yields the array in blocks of at most `rows` rows along its first axis, native order."""
    with self._open() as (stream, size):
      shape, fortran_order, dtype = _read_npy_header(stream, size, self.where)

      def truncated(received):
        return DataError(f"{self.where}: expected {math.prod(shape) * dtype.itemsize} bytes "
                         f"of data for an array of shape {list(shape)}. Received: {received} "
                         "bytes (the file changed while it was read)")

      if fortran_order and len(shape) > 1:
        # A row of a Fortran-order array is not contiguous in the file: such an array (numpy
        # writes C order unless asked) is read whole, its memory that of the array.
        whole = next(_read_rows(stream, (math.prod(shape),), dtype, math.prod(shape) or 1,
                                truncated), np.zeros(0, dtype))
        whole = whole.reshape(shape[::-1]).T
        for start in range(0, shape[0], rows):
          yield np.ascontiguousarray(whole[start:start + rows])
      else:
        yield from _read_rows(stream, shape, dtype, rows, truncated)
      if stream.read(1):
        raise DataError(f"{self.where}: expected {math.prod(shape) * dtype.itemsize} bytes of "
                        f"data for an array of shape {list(shape)}. Received: more (the file "
                        "changed while it was read)")


class NpzSource(Source):
  """Arrays in a .npz or .npy, read a chunk at a time; also the original dSprites archive layout."""
  name = "npz"

  def __init__(self, config):
    super().__init__(config)
    c = config
    self.path = _require_file(c.path, "npz.path")
    self.labels_path = (_require_file(c.labels_path, "npz.labels_path")
                        if c.labels_path else None)
    if self.path.suffix not in (".npz", ".npy"):
      raise DataError(f"npz.path: expected a .npz or .npy file. Received: path={str(self.path)!r}")
    self.location = str(self.path)
    self.dsprites_layout = False
    # The headers alone: shapes, types and counts are checked before any data is read.
    if self.path.suffix == ".npy":
      self.arrays = {"images": _NpyArray(self.path)}
    else:
      self.arrays = self._open_npz()
    if self.labels_path is not None and not self.dsprites_layout:
      self.arrays["labels"] = _NpyArray(self.labels_path)
    images = self.arrays["images"]
    self.image_shape = _image_shape(images.shape, self.location)  # (N, H, W, C)
    default_max = 1 if self.dsprites_layout or not np.issubdtype(images.dtype, np.integer) else 255
    self.pixel_max = c.pixel_max or default_max
    self._check_shapes()

  def _open_npz(self):
    c = self.config
    where = str(self.path)
    if not zipfile.is_zipfile(self.path):
      raise DataError(f"{where}: expected a complete .npz archive (a zip of .npy arrays). "
                      "Received: a file without a zip directory at its end (truncated, or not "
                      "a .npz)")
    try:
      with zipfile.ZipFile(self.path) as archive:
        names = archive.namelist()
    except _NPY_ERRORS as e:
      raise DataError(f"{where}: expected a complete .npz archive (a zip of .npy arrays) "
                      f"without pickled objects. Received: {type(e).__name__}: {e}") from None
    keys = {n[:-len(".npy")] if n.endswith(".npy") else n for n in names}  # as np.load names them
    members = {n[:-len(".npy")] for n in names if n.endswith(".npy")}
    self.dsprites_layout = ({"imgs", "latents_values", "latents_classes"} <= keys
                            and c.images_key not in keys)
    if self.dsprites_layout:
      # The original DeepMind dSprites archive: binary images, 6 factors, the shape as label.
      wanted = {"images": "imgs", "factors": "latents_values", "factor_classes": "latents_classes"}
      self.factor_names = list(c.factor_names or dsprites_lib.FACTOR_NAMES)
      self.label_names = list(dsprites_lib.SHAPE_NAMES)
    elif c.images_key not in keys:
      raise DataError(f"{where}: expected an array named npz.images_key={c.images_key!r}. "
                      f"Received: keys {sorted(keys)}")
    else:
      wanted = {field: name for field, name in (
          ("images", c.images_key), ("labels", c.labels_key), ("factors", c.factors_key),
          ("factor_classes", c.factor_classes_key)) if name and name in keys}
    arrays = {}
    for field, name in wanted.items():
      if name not in members:
        raise DataError(f"{where}: expected {name!r} to be a .npy array in the archive. "
                        f"Received: a member {name!r} of another kind")
      arrays[field] = _NpyArray(self.path, name)
    return arrays

  def _check_shapes(self):
    where = str(self.path)
    n = self.image_shape[0]
    if "labels" in self.arrays:
      labels = self.arrays["labels"]
      lwhere = str(self.labels_path or where)
      if len(labels.shape) != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{lwhere}: expected 1-D integer labels. "
                        f"Received: shape={labels.shape}, dtype={labels.dtype}")
      if labels.shape[0] != n:
        raise DataError(f"{lwhere}: expected {n} labels, one per image. "
                        f"Received: {labels.shape[0]} labels")
    widths = {}
    for field in ("factors", "factor_classes"):
      if field in self.arrays:
        shape = self.arrays[field].shape
        shape = shape + (1,) if len(shape) == 1 else shape  # one factor: [N] -> [N, 1]
        if len(shape) != 2 or shape[0] != n:
          raise DataError(f"{where}: expected {field} of shape [{n}, F]. Received: shape={shape}")
        widths[field] = shape[1]
    if widths:
      width = widths.get("factors", widths.get("factor_classes"))
      if len(set(widths.values())) > 1:
        raise DataError(f"{where}: expected factors and factor_classes with the same number of "
                        f"columns. Received: {width} and {widths['factor_classes']}")
      names = (self.factor_names or list(self.config.factor_names)
               or [f"factor_{i}" for i in range(width)])
      if len(names) != width:
        raise DataError(f"npz.factor_names: expected {width} names. Received: {names!r}")
      self.factor_names = names

  def content_hash(self):
    digests = {"path": file_digest(self.path)}
    if self.labels_path:
      digests["labels_path"] = file_digest(self.labels_path)
    return fingerprint(digests)

  def chunks(self, use_source_splits=False):
    where = str(self.path)
    shape = self.image_shape  # (N, H, W, C)
    rows = chunk_rows(math.prod(shape[1:]) * self.arrays["images"].dtype.itemsize)
    others = {field: array.blocks(rows) for field, array in self.arrays.items()
              if field != "images"}
    try:
      start = 0
      for images in self.arrays["images"].blocks(rows):  # [n, H, W] or [n, H, W, C]
        n = len(images)
        chunk = {"images": _to_pixels(images.reshape((n,) + shape[1:]), self.pixel_max, where),
                 "keys": np.arange(start, start + n)}
        for field, blocks in others.items():
          values = _next_block(blocks, n, self.arrays[field].where)
          if field == "labels":
            chunk[field] = values.astype(np.int64)
          else:
            values = values[:, None] if values.ndim == 1 else values  # [n, F]
            chunk[field] = values.astype(np.float32 if field == "factors" else np.int64)
        if self.dsprites_layout:
          chunk["labels"] = chunk["factor_classes"][:, 1].copy()  # the shape
        start += n
        yield None, chunk
      for blocks in others.values():
        next(blocks, None)  # the end of each array: data past its header is refused
    finally:
      for blocks in others.values():
        blocks.close()


# -------------------------------------------------------------- image folder

def _printable(text):
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True


class _BadImage(Exception):
  """A file the image decoder refuses; the message is the `Received:` part."""


# What a PNG's IHDR colour type holds, for the statistics.
_PNG_COLOURS = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
_JPEG_MODES = {"L": "grey", "RGB": "RGB", "CMYK": "CMYK", "YCbCr": "YCbCr", "1": "1-bit grey"}


def png_header(path):
  """`(bit depth, colour type)` from a PNG's IHDR, or None if `path` does not start like one."""
  try:
    with open(path, "rb") as f:
      head = f.read(26)
  except OSError:
    return None
  if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
    return None
  return head[24], head[25]


def png_bit_depth(path):
  """The bit depth of a PNG's samples (1, 2, 4, 8 or 16), or None if `path` is not a PNG."""
  header = png_header(path)
  return header and header[0]


class _ImageDecoder:
  """Decodes PNG/JPEG files at their real bit depth and channel count.

  PNGs go through TensorFlow's libpng decoder at their own depth (Pillow cuts 16-bit colour
  to 8 bits): 1-, 2-, 4- and 8-bit samples as uint8 0..255, 16-bit ones as uint16, palettes
  looked up (with their transparency as alpha). JPEGs go through Pillow (8 bits). Pixels come
  out [H, W, C] as uint8 (0..255) or, with `floats` (a folder holding a 16-bit PNG), float32
  value / white (65535 or 255). Alpha: fully opaque alpha is dropped; transparent pixels are
  refused or composited onto `background` (`alpha`). Each image is described for the
  statistics (`"16-bit RGBA, alpha composited"`).

  Memory, one image at a time: the file's bytes, the decoded samples (H·W·C bytes, twice that
  at 16 bits: used in place, not copied), and float32 working copies only where a value changes
  (16-bit scaling, compositing, colour to grey, resizing): at most two, 4 bytes a sample each.
  """

  def __init__(self, channels, size, floats, alpha, background):
    self.channels = channels  # None: from the first image
    self.size = size  # (height, width) or None
    self.floats = floats
    self.alpha = alpha
    self.background = float(background)

  def decode(self, path):
    from PIL import Image, UnidentifiedImageError  # pylint: disable=import-outside-toplevel
    try:
      # A decompression bomb (an image whose header declares more than Image.MAX_IMAGE_PIXELS)
      # is refused before its pixels are decoded: the warning is made an error.
      with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
          if img.format == "PNG":
            header = png_header(path)
          else:
            img.load()
            return self._finish(*self._jpeg_pixels(img))
      return self._finish(*self._png_pixels(path, *header))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
      raise _BadImage(f"a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
      raise _BadImage(f"an unreadable image ({type(e).__name__}: {e})") from None

  def _jpeg_pixels(self, img):
    mode = img.mode
    described = "8-bit " + _JPEG_MODES.get(mode, mode)
    img = img.convert("L" if mode in ("1", "L") else "RGB")
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1), 255, described

  def _png_pixels(self, path, depth, colour):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    data = Path(path).read_bytes()
    try:
      decoded = tf.io.decode_png(data, channels=0,
                                 dtype=tf.uint16 if depth == 16 else tf.uint8)  # [H, W, C]
    except tf.errors.OpError as e:
      raise _BadImage(f"an unreadable image ({type(e).__name__}: {e.message})") from None
    del data
    described = f"{depth}-bit {_PNG_COLOURS.get(colour, f'colour type {colour}')}"
    # The tensor's own buffer (read-only), not a copy.
    return np.asarray(decoded), 65535 if depth == 16 else 255, described

  def _finish(self, pixels, white, described):
    """Alpha, channels, size and stored type of decoded `pixels` [H, W, C] (0..white)."""
    c = pixels.shape[-1]
    if c in (2, 4):
      transparent = int(np.count_nonzero(pixels[..., -1] < white))
      if transparent and self.alpha == "refuse":
        raise _BadImage(
            f"a {described} image with {transparent} transparent pixels: its alpha would be "
            "lost. Set image_folder.alpha=composite (and image_folder.background) to composite "
            "it, or remove the alpha channel")
      if transparent:
        described += ", alpha composited"
        alpha = pixels[..., -1:].astype(np.float32) / np.float32(white)  # [H, W, 1]
        colour = pixels[..., :-1].astype(np.float32)
        colour *= alpha
        colour += np.float32(self.background * white) * (1 - alpha)
        del alpha
        pixels = colour  # [H, W, C - 1], 0..white
      else:
        described += ", opaque alpha dropped"
        pixels = pixels[..., :-1]
      c -= 1
    channels = self.channels = self.channels or (1 if c == 1 else 3)
    if c == 3 and channels == 1:
      pixels = self._luma(pixels)
    elif c == 1 and channels == 3:
      pixels = np.repeat(pixels, 3, axis=-1)
    if self.size is not None and pixels.shape[:2] != tuple(self.size):
      pixels = self._resize(pixels, white)
    if self.floats:
      return (pixels.astype(np.float32) / np.float32(white)), described
    if pixels.dtype != np.uint8:  # composited or 16-bit in an 8-bit folder (not possible)
      pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels), described

  @staticmethod
  def _luma(rgb):
    """ITU-R 601-2 luma, [H, W, 3] -> [H, W, 1]; for uint8 exactly as Pillow's "L"."""
    if rgb.dtype == np.uint8:  # Pillow's fixed point: (19595 R + 38470 G + 7471 B + 2^15) >> 16
      weights = np.array([19595, 38470, 7471], np.uint32)
      return ((rgb @ weights + (1 << 15)) >> 16).astype(np.uint8)[..., None]
    return rgb.astype(np.float32) @ np.array([[0.299], [0.587], [0.114]], np.float32)

  def _resize(self, pixels, white):
    """Bilinear resizing to `size`: uint8 through Pillow's L/RGB (as before), others per
    channel in float."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    h, w = self.size
    if pixels.dtype == np.uint8:
      img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
      return np.asarray(img.resize((w, h), Image.BILINEAR)).reshape(h, w, -1)
    return np.stack([np.asarray(Image.fromarray(np.asarray(pixels[..., i], np.float32), mode="F")
                                .resize((w, h), Image.BILINEAR))
                     for i in range(pixels.shape[-1])], -1)


class ImageFolderSource(Source):
  """PNG/JPEG files in a directory, optionally one subfolder per class.

  Pixels are read file by file and the content hash is made file by file; the listing (a path
  and a label per file, in the stored order) is held, about 370 bytes a file.
  """
  name = "image_folder"

  def __init__(self, config):
    super().__init__(config)
    root = Path(config.root).expanduser()
    if not root.is_dir():
      raise FileNotFoundError(f"image_folder.root: expected a directory at {root}. "
                              f"Received: {'a file' if root.exists() else 'nothing'} there.")
    self.root = root
    self.location = str(root)
    real_root = root.resolve()
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and self._inside(p, real_root))
    self.use_classes = bool(config.labels_from_subfolders and subdirs)
    if self.use_classes:
      self.label_names = subdirs
      self.files = []
      for label, name in enumerate(subdirs):
        self.files += [(p, label) for p in sorted((root / name).rglob("*"))
                       if p.is_file() and not p.name.startswith(".")
                       and self._inside(p, real_root)]
    else:
      self.files = [(p, None) for p in sorted(root.rglob("*"))
                    if p.is_file() and not p.name.startswith(".") and self._inside(p, real_root)]
    # Stored in an order that mixes the classes (a stable hash of each path), not class by
    # class: a split past the reader's in-memory budget is shuffled through a buffer that
    # would otherwise hold one class at a time.
    self.files = self._decodable_names(self.files)
    order = hash_fraction([p.relative_to(root).as_posix() for p, _ in self.files], "order")
    self.files = [self.files[i] for i in np.argsort(order, kind="stable")]
    self._has_16_bit = None

  def _decodable_names(self, files):
    """`files` without those whose names are not valid UTF-8 (refused, or skipped with
    on_bad_file=skip): a name is a key of the split hash and of the metadata, written as text."""
    kept = []
    for path, label in files:
      name = str(path.relative_to(self.root))
      try:
        name.encode("utf-8")
      except UnicodeEncodeError:
        raw = os.fsencode(name)
        self._bad(path, f"a file name that is not valid UTF-8 ({raw!r}): rename the file")
        continue
      kept.append((path, label))
    return kept

  def _inside(self, path, real_root):
    """True; a DataError if `path` is a symbolic link, or in one, that leads out of the root.

    Links that stay inside the root are read (a root that is itself a link is the user's
    choice); one that leads out would read whatever it names (a system folder) as images.
    """
    if not path.is_symlink() and not path.parent.is_symlink():
      return True  # rglob does not enter linked folders below the one it starts from
    real = path.resolve()
    if real.is_relative_to(real_root):
      return True
    raise DataError(f"{path}: expected a file or folder inside image_folder.root={self.root}: "
                    f"symbolic links are followed only within it. Received: a link to {real}")

  def content_hash(self):
    items = ((str(p.relative_to(self.root)), label, file_digest(p)) for p, label in self.files)
    if self._sixteen_bit():  # an artifact ingested before 16-bit PNGs were read at 16 bits differs
      items = itertools.chain([("decoded", "16-bit PNG / 65535")], items)
    return fingerprint_items(items)

  def _bad(self, path, reason):
    path = repr(str(path))[1:-1] if not _printable(str(path)) else path
    message = (f"{path}: expected a PNG or JPEG image (image_folder.on_bad_file="
               f"{self.config.on_bad_file!r}). Received: {reason}")
    if self.config.on_bad_file == "fail":
      raise DataError(message)
    warnings.warn(f"Skipping {message}", stacklevel=3)
    logger.warning("Skipping %s", message)

  def _sixteen_bit(self):
    """Whether any PNG of the folder stores 16 bits per sample (read from the headers)."""
    if self._has_16_bit is None:
      self._has_16_bit = any(png_bit_depth(p) == 16 for p, _ in self.files
                             if p.suffix.lower() == ".png")
    return self._has_16_bit

  def chunks(self, use_source_splits=False):
    c = self.config
    size = tuple(c.resize) if c.resize else None  # (height, width)
    # One stored type for the folder: uint8 when every image has 8 bits, float32 (value / white)
    # as soon as one PNG has 16, so that no image is cut to 8 bits and none is mixed up.
    floats = self._sixteen_bit()
    decoder = _ImageDecoder(c.channels, size, floats, c.alpha or "refuse", c.background or 0.0)
    first = None
    buf = {"images": [], "labels": [], "keys": [], "formats": []}
    for path, label in self.files:
      if path.suffix.lower() not in IMAGE_EXTENSIONS:
        self._bad(path, f"a file with extension {path.suffix!r}")
        continue
      try:
        pixels, described = decoder.decode(path)  # [H, W, C]
      except _BadImage as e:
        self._bad(path, str(e))
        continue
      if first is None:
        first = (path, pixels.shape)
        rows = chunk_rows(pixels.nbytes)
      elif pixels.shape != first[1]:
        raise DataError(f"{path}: expected an image of {first[1][0]}x{first[1][1]} pixels like "
                        f"{first[0]}, or image_folder.resize set. Received: "
                        f"{pixels.shape[0]}x{pixels.shape[1]}")
      buf["images"].append(pixels)
      buf["labels"].append(label)
      buf["keys"].append(str(path.relative_to(self.root)))
      buf["formats"].append(described)
      del pixels  # the buffer holds the only reference: a flushed chunk frees it
      if len(buf["images"]) == rows:
        yield None, self._flush(buf)
    if buf["images"]:
      yield None, self._flush(buf)

  def _flush(self, buf):
    images = buf["images"]
    # One image per chunk (a large one) is used as it is: stacking would copy it.
    chunk = {"images": images[0][None] if len(images) == 1 else np.stack(images),
             "keys": np.array(buf["keys"]), "formats": np.array(buf["formats"])}
    if self.use_classes:
      chunk["labels"] = np.array(buf["labels"], np.int64)
    for v in buf.values():
      v.clear()
    return chunk


# --------------------------------------------------------------------- TFDS

class TfdsSource(Source):
  """A TFDS image dataset from prepared data (downloading only when asked)."""
  name = "tfds"

  def __init__(self, config):
    super().__init__(config)
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    self.location = f"tfds:{config.name}"
    try:
      self.builder = tfds.builder(config.name, data_dir=config.data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
      first = str(e).strip().splitlines()[0]
      raise DataError(f"tfds.name: expected a TFDS dataset name such as mnist, fashion_mnist, "
                      f"dsprites. Received: name={config.name!r} ({first})") from None
    self.has_source_splits = bool(config.eval_split)
    features = self.builder.info.features
    if config.image_key not in features:
      raise DataError(f"tfds.image_key: expected a feature of {config.name} among "
                      f"{sorted(features.keys())}. Received: image_key={config.image_key!r}")
    self.label_key = config.label_key if config.label_key in features else None
    if self.label_key is not None and hasattr(features[self.label_key], "names"):
      self.label_names = list(features[self.label_key].names)
    keys = list(config.factor_keys)
    self.factor_class_keys = []
    if not keys:
      names = sorted(k[len("value_"):] for k in features if k.startswith("value_"))
      keys = [f"value_{n}" for n in names]
      self.factor_class_keys = [f"label_{n}" for n in names if f"label_{n}" in features]
      if len(self.factor_class_keys) != len(keys):
        self.factor_class_keys = []
    for key in keys:
      if key not in features:
        raise DataError(f"tfds.factor_keys: expected features of {config.name} among "
                        f"{sorted(features.keys())}. Received: {key!r}")
    self.factor_keys = keys
    self.factor_names = [k[len("value_"):] if k.startswith("value_") else k for k in keys] or None

  def content_hash(self):
    info = self.builder.info
    return fingerprint({"name": info.full_name,
                        "splits": {k: v.num_examples for k, v in info.splits.items()}})

  def _dataset(self, split, field):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    c = self.config
    known = list(self.builder.info.splits.keys())
    base = split.split("[")[0]
    if known and base not in known:
      raise DataError(f"tfds.{field}: expected a split of {c.name} among {known}. "
                      f"Received: {field}={split!r}")
    if c.download:
      self.builder.download_and_prepare()
    try:
      ds = self.builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as e:
      raise DataError(
          f"tfds.name: expected prepared data for {c.name!r} in data_dir="
          f"{self.builder.data_dir_root if hasattr(self.builder, 'data_dir_root') else c.data_dir}. "
          f"Received: no prepared data ({str(e).splitlines()[0]}). Prepare it where there is "
          f"network access with `tfds build {c.name} --data_dir=<dir>` (or "
          f"`tfds.builder({c.name!r}, data_dir=<dir>).download_and_prepare()`) and copy the "
          "folder here, or set tfds.download: true.") from None
    except ValueError as e:
      raise DataError(f"tfds.{field}: expected a valid split of {c.name}. "
                      f"Received: {field}={split!r} ({str(e).splitlines()[0]})") from None
    if c.max_examples:
      ds = ds.take(c.max_examples)
    return tfds.as_numpy(ds.batch(1024))

  def chunks(self, use_source_splits=False):
    c = self.config
    parts = [("train" if use_source_splits else None, c.train_split, "train_split")]
    if use_source_splits:
      parts.append(("eval", c.eval_split, "eval_split"))
    for role, split, field in parts:
      start = 0
      for batch in self._dataset(split, field):
        images = _image_array(np.asarray(batch[c.image_key]), f"tfds:{c.name}/{split}")
        n = images.shape[0]
        chunk = {"images": _to_pixels(images, 255 if images.dtype == np.uint8 else 1,
                                      f"tfds:{c.name}/{split}"),
                 "keys": np.array([f"{split}:{i}" for i in range(start, start + n)])}
        if self.label_key:
          chunk["labels"] = np.asarray(batch[self.label_key]).astype(np.int64).reshape(n)
        if self.factor_keys:
          chunk["factors"] = np.stack([np.asarray(batch[k], np.float32).reshape(n)
                                       for k in self.factor_keys], axis=1)
        if self.factor_class_keys:
          chunk["factor_classes"] = np.stack([np.asarray(batch[k]).astype(np.int64).reshape(n)
                                              for k in self.factor_class_keys], axis=1)
        start += n
        yield role, chunk


# ------------------------------------------------------------------ dSprites

class DSpritesSource(Source):
  """A seeded subset of the built-in dSprites grid, in a seeded random order.

  Not the grid's order: a split larger than the reader's in-memory budget is shuffled through
  a buffer of 16,384 examples, a window of 2 % of the full grid in which, in grid order, every
  image has the same shape and scale; an epoch then visits the shapes one after another, and
  the model forgets each while it trains on the next.

  The index of the chosen examples is held (int64 [N, 6]: 35 MB for the whole grid of 737,280,
  the most there is); images are rendered a chunk at a time.
  """
  name = "dsprites"

  def __init__(self, config):
    super().__init__(config)
    self.data = dsprites_lib.DSprites()
    self.factor_names = list(self.data.factor_names)
    self.label_names = list(self.data.shape_names) if config.label else None
    self.location = "dsprites"
    self.allowed = dsprites_lib.allowed_classes(config.shapes, config.scales,
                                                config.orientations, config.pos_x, config.pos_y)
    total = int(np.prod([len(a) for a in self.allowed]))
    if config.num_examples is not None and config.num_examples > total:
      raise ConfigError(f"dsprites.num_examples: expected at most {total}, the size of the "
                        f"(restricted) grid. Received: num_examples={config.num_examples}")
    self.total = total

  def content_hash(self):
    return fingerprint({"renderer": dsprites_lib.RENDERER_VERSION, "order": "permuted"})

  def classes(self):
    """int64 [N, 6] classes of the chosen subset, in a random order fixed by the seed."""
    c = self.config
    rng = np.random.RandomState(c.seed)
    if c.num_examples is not None and c.num_examples < self.total:
      sub = rng.choice(self.total, c.num_examples, replace=False)  # already in random order
    else:
      sub = rng.permutation(self.total)
    local = np.unravel_index(sub, [len(a) for a in self.allowed])
    return np.stack([a[i] for a, i in zip(self.allowed, local)], axis=1).astype(np.int64)

  def chunks(self, use_source_splits=False):
    classes = self.classes()  # [N, 6]
    for start in range(0, classes.shape[0], CHUNK_SIZE):
      part = classes[start:start + CHUNK_SIZE]
      chunk = {"images": self.data.render(part) * np.uint8(255),
               "keys": self.data.index_of(part),
               "factors": self.data.factor_values(part).astype(np.float32),
               "factor_classes": part}
      if self.config.label:
        chunk["labels"] = part[:, 1].copy()
      yield None, chunk


SOURCES = {
    "idx": IdxSource,
    "npz": NpzSource,
    "image_folder": ImageFolderSource,
    "tfds": TfdsSource,
    "dsprites": DSpritesSource,
}


def open_source(data_config):
  """Opens the source chosen by a `DataConfig`, checking its inputs exist."""
  return SOURCES[data_config.source](data_config.source_config)
