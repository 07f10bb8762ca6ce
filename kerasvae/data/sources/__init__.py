"""Data sources: each reads one kind of input and yields chunks of examples.

One module per source (`idx.py`, `npz.py`, `image_folder.py`, `tfds.py`, `dsprites.py`)
holds its settings block (the dataclass of `data.<name>`) and its `Source` subclass, which
declares what the rest of kerasvae needs to know about it (`base.Source`): the fields of
its block that name files or folders, those that must be set, and whether its data has a
ground-truth factor model. `SOURCES` below registers them by the names users write in
configs; `kerasvae.data.config` builds `DataConfig` from it (one field per source, its
`source:` choices, `PATH_FIELDS` and the required fields), and the code that uses a
source loops over the registry or asks the chosen one.

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

This package imports no TensorFlow (`kerasvae config` reads the registry and stays fast):
the sources that need it import it when they read.

Adding a source: see "Adding a data source" in docs/contributing.md.
"""

from kerasvae.data.sources.base import CHUNK_BYTES
from kerasvae.data.sources.base import CHUNK_SIZE
from kerasvae.data.sources.base import DIRECTORY
from kerasvae.data.sources.base import FILE
from kerasvae.data.sources.base import DataError
from kerasvae.data.sources.base import Source
from kerasvae.data.sources.base import chunk_rows
from kerasvae.data.sources.dsprites import DSpritesConfig
from kerasvae.data.sources.dsprites import DSpritesSource
from kerasvae.data.sources.idx import IdxConfig
from kerasvae.data.sources.idx import IdxSource
from kerasvae.data.sources.idx import check_idx_length
from kerasvae.data.sources.idx import iter_idx
from kerasvae.data.sources.idx import read_idx
from kerasvae.data.sources.idx import read_idx_header
from kerasvae.data.sources.image_folder import IMAGE_EXTENSIONS
from kerasvae.data.sources.image_folder import ImageFolderConfig
from kerasvae.data.sources.image_folder import ImageFolderSource
from kerasvae.data.sources.image_folder import png_bit_depth
from kerasvae.data.sources.image_folder import png_header
from kerasvae.data.sources.npz import NpzConfig
from kerasvae.data.sources.npz import NpzSource
from kerasvae.data.sources.tfds import TfdsConfig
from kerasvae.data.sources.tfds import TfdsSource

# The registry, in the order of `data.source`'s choices and of the `data:` block's fields.
SOURCES = {source.name: source for source in (
    IdxSource, NpzSource, ImageFolderSource, TfdsSource, DSpritesSource)}


def open_source(data_config):
  """Opens the source chosen by a `DataConfig`, checking its inputs exist."""
  return SOURCES[data_config.source](data_config.source_config)


def check_input_paths(data_config):
  """Names a missing input file or folder of the chosen source at once (no TensorFlow needed),
  before a command spends seconds importing TensorFlow. Reading checks the rest."""
  SOURCES[data_config.source].check_paths(data_config.source_config)


def ground_truth(examples_meta):
  """The ground-truth factor model of an Examples artifact, from the metadata ingest wrote
  (`source`, `source_config`), or None when its source has none (or is not registered)."""
  source = SOURCES.get(examples_meta.get("source"))
  if source is None or not source.has_ground_truth:
    return None
  return source.ground_truth(examples_meta.get("source_config") or {})


__all__ = [
    "CHUNK_BYTES", "CHUNK_SIZE", "DIRECTORY", "FILE", "IMAGE_EXTENSIONS", "SOURCES",
    "DSpritesConfig", "DSpritesSource", "DataError", "IdxConfig", "IdxSource",
    "ImageFolderConfig", "ImageFolderSource", "NpzConfig", "NpzSource", "Source", "TfdsConfig",
    "TfdsSource", "check_idx_length", "check_input_paths", "chunk_rows",
    "ground_truth", "iter_idx", "open_source", "png_bit_depth", "png_header", "read_idx",
    "read_idx_header",
]
