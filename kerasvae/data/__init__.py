"""kerasvae.data: sources (idx, npz, image folder, tfds, dsprites), the ingest step, readers.

Importing this package is cheap: TensorFlow is imported by the functions that
need it.
"""

from kerasvae.data.config import (DataConfig, DSpritesConfig, IdxConfig, ImageFolderConfig,
                                  IngestConfig, NpzConfig, SplitConfig, TfdsConfig)
from kerasvae.data.dsprites import DSprites
from kerasvae.data.ingest import ingest
from kerasvae.data.reader import load_split, make_dataset, read_metadata
from kerasvae.data.sources import DataError

__all__ = [
    "DataConfig", "DSpritesConfig", "IdxConfig", "ImageFolderConfig", "IngestConfig",
    "NpzConfig", "SplitConfig", "TfdsConfig", "DSprites", "ingest", "make_dataset",
    "load_split", "read_metadata", "DataError",
]
