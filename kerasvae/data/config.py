"""Configs of the data sources and of the ingest step.

One `data:` block chooses one source by `source:` and holds one nested block
per source; only the chosen one is read. The sources, their blocks (which live
beside them, in `kerasvae/data/sources/`), their path fields and required fields
come from the registry `kerasvae.data.sources.SOURCES`. `IngestConfig()` with no arguments is
the quickstart: 20,000 seeded random images of the built-in dSprites generator,
split 90/10 by a hash of each image's grid index.

Example YAML:

  data:
    source: idx
    idx:
      images: mnist/t10k-images-idx3-ubyte.gz
      labels: mnist/t10k-labels-idx1-ubyte.gz
  split: {method: hash, eval_fraction: 0.1}
  binarize: dynamic

Relative data paths are read from a base that does not depend on the current
directory (`resolve_data_paths`): a YAML file's own folder, or for the bundled
configs the data directory `$KERASVAE_DATA_DIR` (by default `../shared/data`
beside the repository root).
"""

import dataclasses
import os
from pathlib import Path
from typing import Optional

import numpy as np

from kerasvae.artifacts import hash_fraction
from kerasvae.config import ConfigError, field, show
from kerasvae.data import sources
# Where the bundled configs' data is; imported from here as before.
from kerasvae.data.paths import DATA_DIR_ENV  # noqa: F401  # pylint: disable=unused-import
from kerasvae.data.paths import bundled_data_dir
# The settings blocks live beside their sources; imported from here as before.
# pylint: disable-next=unused-import
from kerasvae.data.sources import (DSpritesConfig, IdxConfig, ImageFolderConfig,  # noqa: F401
                                   NpzConfig, TfdsConfig)

# Everything below that names a source comes from the registry (`kerasvae.data.sources`).
SOURCES = tuple(sources.SOURCES)
# The fields of each source that name a file or folder to read.
PATH_FIELDS = {name: tuple(source.path_fields) for name, source in sources.SOURCES.items()
               if source.path_fields}
# Where operating-system packages install the data sets the bundled configs read, for paths
# missing from the data directory: Debian's `dataset-fashion-mnist` puts Fashion-MNIST's four
# IDX files in /usr/share/datasets/fashion-mnist.
SYSTEM_DATA_DIRS = {"fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),)}


def bundled_data_path(relative, base=None):
  """The file a bundled config's relative data path names.

  `base / relative` (base: `bundled_data_dir()`) when it exists, else the same file where an
  operating-system package installs that data set (`SYSTEM_DATA_DIRS`), else `base / relative`
  (so the missing-file error names the data directory).
  """
  base = Path(base) if base is not None else bundled_data_dir()
  path = base.absolute() / relative
  parts = Path(relative).parts
  if not path.exists() and len(parts) > 1:
    for folder in SYSTEM_DATA_DIRS.get(parts[0], ()):
      candidate = folder.joinpath(*parts[1:])
      if candidate.exists():
        return Path(os.path.normpath(candidate))
  return Path(os.path.normpath(path))


def resolve_data_paths(ingest, base, bundled=False):
  """Makes the relative data paths of a plain-data `ingest:` block absolute against `base`.

  Args:
    ingest: the `ingest` mapping as read from YAML (modified in place).
    base: the folder relative paths are read from: the YAML file's folder,
      `bundled_data_dir()` for a bundled config, the current directory for
      `--set` values.
    bundled: `ingest` is a bundled config's: a file missing from `base` is also looked for
      where an operating-system package installs its data set (`bundled_data_path`).

  Returns:
    `ingest`. Absolute and `~` paths, and values that are not strings, are left as they are.
  """
  data = ingest.get("data") if isinstance(ingest, dict) else None
  if not isinstance(data, dict):
    return ingest
  for source, fields in PATH_FIELDS.items():
    block = data.get(source)
    if not isinstance(block, dict):
      continue
    for name in fields:
      value = block.get(name)
      if isinstance(value, str) and value and not value.startswith("~") \
          and not Path(value).is_absolute():
        block[name] = str(bundled_data_path(value, base)) if bundled else os.path.normpath(
            Path(base).absolute() / value)
  return ingest


def relative_data_paths(ingest, base):
  """The inverse of `resolve_data_paths` for paths under `base`: made relative to it, in place.

  A compiled Kubeflow sweep carries its trials' configs with the paths inside the data
  directory relative to it, so each task resolves them against its own `$KERASVAE_DATA_DIR`
  (the image's); other paths stay as they are.
  """
  data = ingest.get("data") if isinstance(ingest, dict) else None
  if not isinstance(data, dict):
    return ingest
  base = Path(base).absolute()
  for source, fields in PATH_FIELDS.items():
    block = data.get(source)
    for name in fields if isinstance(block, dict) else ():
      value = block.get(name)
      if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(base):
        block[name] = Path(value).relative_to(base).as_posix()
  return ingest


def _with_source_blocks(cls, registry=None):
  """Adds one field per registered source (`sources.SOURCES`, or `registry`) to `cls`: its
  settings block.

  The blocks of the first five sources are in every config, chosen or not, and so in every
  ingest fingerprint; a source added since (`Source.block_in_every_config` false) has its
  block only when it is chosen (`DataConfig.__post_init__`) or written, so that adding it
  moves no existing run's fingerprint.
  """
  for source in (registry or sources.SOURCES).values():
    if source.block_in_every_config:
      cls.__annotations__[source.name] = source.settings
      setattr(cls, source.name, field(default_factory=source.settings))
    else:
      cls.__annotations__[source.name] = Optional[source.settings]
      setattr(cls, source.name, field(None, omit_none=True,
                                      help=f"Settings of data.source={source.name}."))
  return cls


@dataclasses.dataclass
@_with_source_blocks
class DataConfig:
  """Chooses one source; the nested block of that source configures it."""
  source: str = field("dsprites", choices=SOURCES, help="Which source to read.")

  def __post_init__(self):
    source = sources.SOURCES.get(self.source)
    if source is not None and getattr(self, self.source, None) is None:
      setattr(self, self.source, source.settings())

  @property
  def source_config(self):
    """The nested config of the chosen source."""
    return getattr(self, self.source)

  def validate(self):
    source = sources.SOURCES.get(self.source)  # (a name not registered is refused by choices)
    for key in source.required if source else ():
      if not getattr(self.source_config, key):
        raise ConfigError(f"{self.source}.{key}: expected a value for source={self.source!r}. "
                          f"Received: {key}={show(getattr(self.source_config, key))}")


@dataclasses.dataclass
class SplitConfig:
  """How examples are divided between three disjoint splits: train, validation and test.

  Training reads the train split; early stopping, the best-checkpoint choice and the per-epoch
  metrics read the validation split only; the evaluate step reports on the test split (the
  artifact's `eval` role), which nothing selects on.
  """
  method: str = field(
      "hash", choices=("hash", "source", "index"),
      help="hash: a deterministic hash of each example's key; source: the source's own splits "
      "(its eval split is the test split, validation is carved from its train split); "
      "index: positions in source order (validation_start..eval_start validate, eval_start.. test).")
  eval_fraction: float = field(0.1, range=(0.0, 0.99),
                               help="Fraction sent to the test split (method=hash).")
  validation_fraction: float = field(
      0.1, range=(0.0, 0.99),
      help="Fraction sent to the validation split (method=hash; method=source without "
      "validation_start: of the source's train split). 0: no validation split, so no early "
      "stopping.")
  salt: str = field("kerasvae", help="Salt of the split hash; change it to draw another split.")
  eval_start: int = field(0, range=(0, None),
                          help="method=index: the first example of the test split, e.g. 9000 "
                          "for MNIST's t10k (the last 1,000 digits are the test split).")
  validation_start: Optional[int] = field(
      None, range=(0, None),
      help="method=index: the first validation example (validation runs up to eval_start), e.g. "
      "8000 for MNIST's t10k; method=source: the first validation example of the source's own "
      "train split, e.g. 55000 for Fashion-MNIST's 60,000.")

  def validate(self):
    if self.method == "index":
      if self.eval_start < 1:
        raise ConfigError("eval_start: expected the index of the first test example (>= 1) with "
                          f"method=index. Received: eval_start={self.eval_start}")
      if self.validation_start is None or not 1 <= self.validation_start <= self.eval_start:
        raise ConfigError(
            "validation_start: expected the index of the first validation example, between 1 "
            f"and eval_start={self.eval_start}, with method=index (equal to eval_start: no "
            f"validation split). Received: validation_start={self.validation_start}")
    if self.method == "hash" and self.eval_fraction + self.validation_fraction >= 1.0:
      raise ConfigError(
          "Expected eval_fraction + validation_fraction < 1 (some examples must train). "
          f"Received: eval_fraction={self.eval_fraction}, "
          f"validation_fraction={self.validation_fraction}")

  def validation_mask(self, positions, keys, hashes=None):
    """Which examples of the training part go to validation (bool [n]).

    Args:
      positions: int [n] positions in source order (method=index: in the whole source;
        method=source: in the source's train split).
      keys: [n] the examples' split keys (the hash is read only where needed).
      hashes: `hash_fraction(keys, salt)` when the caller has it already.
    """
    if self.validation_start is not None and self.method in ("index", "source"):
      return positions >= self.validation_start
    if self.method == "index":
      return np.zeros(len(positions), bool)
    # method=hash reads the band [eval_fraction, eval_fraction + validation_fraction) of the
    # same hash as the test split, so the three splits are disjoint by construction.
    low = self.eval_fraction if self.method == "hash" else 0.0
    h = hashes if hashes is not None else hash_fraction(keys, self.salt)
    return (h >= low) & (h < low + self.validation_fraction)


@dataclasses.dataclass
class IngestConfig:
  """The ingest step: one source in, one `Examples` artifact out."""
  data: DataConfig = field(default_factory=DataConfig)
  split: SplitConfig = field(default_factory=SplitConfig)
  train_split_name: str = field("train", help="Name of the training split (Split-<name>/).")
  validation_split_name: str = field(
      "validation", help="Name of the validation split (Split-<name>/): model selection.")
  eval_split_name: str = field("test", help="Name of the test split (Split-<name>/): "
                               "the evaluate step's held-out examples.")
  num_shards: int = field(4, range=(1, 1024), help="TFRecord shards per split.")
  scale_to_unit: bool = field(True, help="Readers return images in [0, 1] (else raw pixel values).")
  binarize: str = field(
      "none", choices=("none", "static", "dynamic"),
      help="none; static: x > threshold once at ingest; dynamic: Bernoulli(x) drawn by the reader each epoch.")
  threshold: float = field(0.5, range=(0.0, 1.0), help="Threshold of static binarisation.")

  def validate(self):
    names = (self.train_split_name, self.validation_split_name, self.eval_split_name)
    if len(set(names)) != 3:
      raise ConfigError("Expected different train, validation and test split names. Received: "
                        f"train_split_name={show(self.train_split_name)}, "
                        f"validation_split_name={show(self.validation_split_name)}, "
                        f"eval_split_name={show(self.eval_split_name)}")
    for name in names:
      if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"Expected a split name usable as a folder name. Received: {show(name)}")
    if self.binarize != "none" and not self.scale_to_unit:
      raise ConfigError("Expected scale_to_unit=true when binarizing. "
                        f"Received: binarize={self.binarize!r}, scale_to_unit=False")
