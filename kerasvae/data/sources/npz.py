"""The `npz` source: arrays in a `.npz` archive or a `.npy` file, read a chunk at a time."""

import contextlib
import dataclasses
import math
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from kerasvae.artifacts import file_digest, fingerprint
from kerasvae.config import field
from kerasvae.data import dsprites as dsprites_lib
from kerasvae.data.sources.base import (FILE, DataError, Source, chunk_rows, image_shape,
                                        next_block, read_rows, require_file, to_pixels)


@dataclasses.dataclass
class NpzConfig:
  """Arrays in a `.npz` archive or a `.npy` file.

  A `.npz` holding `imgs`, `latents_values` and `latents_classes` is read as the
  original DeepMind dSprites archive: binary images, factor values and classes.
  """
  path: str = field("", help=".npz archive or .npy array of images.")
  images_key: str = field("images", help="Key of the images in the .npz.")
  labels_key: Optional[str] = field("labels", help="Key of integer labels; ignored if absent.")
  factors_key: Optional[str] = field("factors", help="Key of float factors [N, F]; ignored if absent.")
  factor_classes_key: Optional[str] = field(
      "factor_classes", help="Key of integer factor classes [N, F]; ignored if absent.")
  factor_names: list[str] = field(default_factory=list, help="Names of the F factors.")
  labels_path: Optional[str] = field(None, help="A .npy of labels next to a .npy of images.")
  pixel_max: Optional[float] = field(
      None, range=(0, None),
      help="Value of a white pixel; null: 255 for integer images, 1 for floats and dSprites.")


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
        whole = next(read_rows(stream, (math.prod(shape),), dtype, math.prod(shape) or 1,
                                truncated), np.zeros(0, dtype))
        whole = whole.reshape(shape[::-1]).T
        for start in range(0, shape[0], rows):
          yield np.ascontiguousarray(whole[start:start + rows])
      else:
        yield from read_rows(stream, shape, dtype, rows, truncated)
      if stream.read(1):
        raise DataError(f"{self.where}: expected {math.prod(shape) * dtype.itemsize} bytes of "
                        f"data for an array of shape {list(shape)}. Received: more (the file "
                        "changed while it was read)")


class NpzSource(Source):
  """Arrays in a .npz or .npy, read a chunk at a time; also the original dSprites archive layout."""
  name = "npz"
  settings = NpzConfig
  block_in_every_config = True
  path_fields = {"path": FILE, "labels_path": FILE}
  required = ("path",)

  def __init__(self, config):
    super().__init__(config)
    c = config
    self.path = require_file(c.path, "npz.path")
    self.labels_path = (require_file(c.labels_path, "npz.labels_path")
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
    self.image_shape = image_shape(images.shape, self.location)  # (N, H, W, C)
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
        chunk = {"images": to_pixels(images.reshape((n,) + shape[1:]), self.pixel_max, where),
                 "keys": np.arange(start, start + n)}
        for field, blocks in others.items():
          values = next_block(blocks, n, self.arrays[field].where)
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
