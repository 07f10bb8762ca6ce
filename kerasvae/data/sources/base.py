"""What every data source shares: the `Source` base class, errors, chunk sizes, readers.

A source module (`idx.py`, `npz.py`, ...) declares a `Source` subclass: the name users write
in `data.source`, its settings block, the fields of that block that name files or folders,
those that must be set, and whether its data has a ground-truth factor model. The registry
(`kerasvae.data.sources.SOURCES`) lists the subclasses; the config, the path checks, ingest
and the evaluate step read what they declare instead of asking which source they hold.
"""

import math
import os
from pathlib import Path

import numpy as np

from kerasvae.config import ConfigError

# What a path field of a settings block must name (`Source.path_fields`): checked before
# TensorFlow's import (`check_paths`). None: resolved against the config's folder like the
# others, but not checked (TFDS makes its data_dir when it downloads).
FILE = "file"
DIRECTORY = "directory"

CHUNK_SIZE = 4096
CHUNK_BYTES = 32 << 20  # the stored pixels of one chunk, at most (but one example)


class DataError(ValueError):
  """The input data is invalid. The message names the file or field."""


def chunk_rows(example_bytes):
  """Examples per chunk of examples of `example_bytes` stored bytes: CHUNK_SIZE, fewer when
  that many would pass CHUNK_BYTES, at least one."""
  return max(1, min(CHUNK_SIZE, CHUNK_BYTES // max(example_bytes, 1)))


def require_file(path, field):
  """`path` as a Path if it is a regular file, else FileNotFoundError naming `field`."""
  path = Path(path).expanduser()
  if not path.is_file():
    what = ("a directory" if path.is_dir() else "something that is not a regular file"
            if path.exists() else "nothing")
    raise FileNotFoundError(
        f"{field}: expected a file at {path}. Received: {what} there." + _data_dir_hint(path))
  return path


def require_directory(path, field, hint=True):
  """`path` as a Path if it is a directory, else FileNotFoundError naming `field` (and, with
  `hint`, where a bundled config's relative paths point)."""
  path = Path(path).expanduser()
  if not path.is_dir():
    raise FileNotFoundError(f"{field}: expected a directory at {path}. "
                            f"Received: {'a file' if path.exists() else 'nothing'} there."
                            + (_data_dir_hint(path) if hint else ""))
  return path


def _data_dir_hint(path):
  """Where a bundled config's relative data paths point, for a file that is not there."""
  from kerasvae.data.paths import DATA_DIR_ENV  # pylint: disable=import-outside-toplevel
  from kerasvae.data.paths import bundled_data_dir  # pylint: disable=import-outside-toplevel
  base = bundled_data_dir()
  if not Path(os.path.abspath(path)).is_relative_to(base):
    return ""
  return (f" A bundled config reads its data below ${DATA_DIR_ENV} (now {base}): set it to the "
          "folder holding the data set's folder, or point the path elsewhere with --set.")


def image_shape(shape, where):
  """(N, H, W) or (N, H, W, C) -> (N, H, W, C), or DataError naming `where`."""
  shape = tuple(shape)
  full = shape + (1,) if len(shape) == 3 else shape
  if len(full) != 4 or full[-1] not in (1, 3, 4) or min(full[1:3]) < 1:
    raise DataError(f"{where}: expected images of shape [N, H, W] or [N, H, W, C] with H, W at "
                    f"least 1 and C in 1, 3, 4. Received: shape={shape}")
  return full


def image_array(images, where):
  """[n, H, W] or [n, H, W, C] -> [n, H, W, C], or DataError naming `where`."""
  return images.reshape(image_shape(images.shape, where))


def to_pixels(images, pixel_max, where):
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


READ_BLOCK = 1 << 20


def read_exactly(stream, size):
  """Reads `size` bytes in blocks: memory grows with the data present, not with a header's claim."""
  data = bytearray()
  while len(data) < size:
    block = stream.read(min(READ_BLOCK, size - len(data)))
    if not block:
      break
    data += block
  return data


def read_rows(stream, shape, dtype, rows, truncated):
  """Yields the array of `shape` and `dtype` (as stored) that `stream` holds in C order, in
  blocks of at most `rows` rows along its first axis, in native byte order.

  Data that ends early raises `truncated(bytes_received)`.
  """
  row_bytes = math.prod(shape[1:]) * dtype.itemsize
  rows = rows if row_bytes else max(shape[0], 1)  # rows of no bytes: one block
  received = 0
  for start in range(0, shape[0], rows):
    count = min(rows, shape[0] - start)
    data = read_exactly(stream, count * row_bytes)
    received += len(data)
    if len(data) < count * row_bytes:
      raise truncated(received)
    block = np.frombuffer(data, dtype).reshape((count,) + tuple(shape[1:]))  # [count, ...]
    yield block.astype(dtype.newbyteorder("="), copy=False)


def next_block(blocks, n, where):
  """The next block of an array read beside the images (labels, factors): `n` rows."""
  block = next(blocks, None)
  if block is None or len(block) != n:
    raise DataError(f"{where}: expected {n} more rows, as many as the images' next chunk. "
                    f"Received: {0 if block is None else len(block)} (the file changed while "
                    "it was read)")
  return block


class Source:
  """One kind of input: what it declares to the registry, and how it reads its data.

  Class attributes (the declaration; `tests/data/test_source_registry.py` checks it):
    name: the `data.source` value, and the name of its settings block (`data.<name>`).
    settings: the dataclass of that block; `DataConfig` gets one field per source.
    path_fields: `{field: FILE | DIRECTORY | None}`, the fields of the block that name a file
      or folder: relative values are read from the config's folder (`resolve_data_paths`), and
      a value set is checked to exist before TensorFlow's import (`check_paths`; None: not
      checked).
    required: the fields of the block that must be set when the source is chosen
      (`DataConfig.validate` names the missing one).
    has_ground_truth: its data comes with a ground-truth factor model the disentanglement
      metrics can sample (`ground_truth`).
    has_source_splits: its data has its own train and eval splits (set per instance).
    block_in_every_config: its block is in every `data:` block, chosen or not (so in every
      ingest fingerprint): true for the sources that were there when the fingerprints were
      fixed. A source added since has its block only when chosen or written (False, the
      default), as a model kind's, so that adding it moves no existing run's fingerprint.

  An instance is opened from its settings block (checking its inputs exist) and reads the
  data: `content_hash`, `check_data`, `chunks`.
  """
  name = ""
  settings = None
  path_fields = {}
  required = ()
  has_ground_truth = False
  has_source_splits = False
  block_in_every_config = False

  def __init__(self, config):
    self.config = config
    self.label_names = None  # class names, if known
    self.factor_names = None  # names of the F factors, if any
    self.location = ""  # what to name in errors about the data

  @classmethod
  def check_paths(cls, config):
    """Names a missing input file or folder of the settings block `config` at once, in the
    order of `path_fields`: FileNotFoundError("<name>.<field>: expected a file at ...")."""
    for field, kind in cls.path_fields.items():
      value = getattr(config, field)
      if value and kind == FILE:
        require_file(value, f"{cls.name}.{field}")
      elif value and kind == DIRECTORY:
        require_directory(value, f"{cls.name}.{field}")

  @classmethod
  def ground_truth(cls, source_config):
    """The ground-truth factor model of data this source ingested (an object of the protocol of
    `kerasvae.metrics.ground_truth`), or None when it has none.

    Args:
      source_config: the settings block as the Examples artifact's metadata records it (plain
        data: `examples_meta["source_config"]`).
    """
    del source_config  # a source without ground truth reads nothing of it
    return None

  @classmethod
  def artifact_identity(cls):
    """What besides the ingest config names the folder an Examples artifact of this source is
    shared in (`steps.common.examples_directory`), e.g. a generator's version: {} for none."""
    return {}

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
