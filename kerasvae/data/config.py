"""Configs of the data sources and of the ingest step.

One `data:` block chooses one source by `source:` and holds one nested block
per source; only the chosen one is read. `IngestConfig()` with no arguments is
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

from kerasvae.config import ConfigError, field

SOURCES = ("idx", "npz", "image_folder", "tfds", "dsprites")
DSPRITES_SHAPES = ("square", "ellipse", "heart")


# The fields of each source that name a file or folder to read.
PATH_FIELDS = {
    "idx": ("images", "labels", "eval_images", "eval_labels"),
    "npz": ("path", "labels_path"),
    "image_folder": ("root",),
    "tfds": ("data_dir",),
}
DATA_DIR_ENV = "KERASVAE_DATA_DIR"


def bundled_data_dir():
  """The base of the bundled configs' relative data paths.

  `$KERASVAE_DATA_DIR` when set, else `../shared/data` beside the repository root
  (where the MNIST configs find `mnist/t10k-images-idx3-ubyte.gz`).
  """
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    return Path(env).expanduser().absolute()
  return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def resolve_data_paths(ingest, base):
  """Makes the relative data paths of a plain-data `ingest:` block absolute against `base`.

  Args:
    ingest: the `ingest` mapping as read from YAML (modified in place).
    base: the folder relative paths are read from: the YAML file's folder,
      `bundled_data_dir()` for a bundled config, the current directory for
      `--set` values.

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
        block[name] = os.path.normpath(Path(base).absolute() / value)
  return ingest


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
                        f"Received: eval_labels={self.eval_labels!r}, eval_images=None")


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


@dataclasses.dataclass
class ImageFolderConfig:
  """A directory of PNG/JPEG files, optionally in one subfolder per class."""
  root: str = field("", help="Directory of images.")
  labels_from_subfolders: bool = field(
      True, help="Use the sorted subfolder names as classes (when there are subfolders).")
  resize: Optional[list[int]] = field(
      None, range=(1, None), help="[height, width] to resize every image to, or null.")
  channels: Optional[int] = field(
      None, choices=(1, 3), help="1 (grey) or 3 (RGB); null: from the first image.")
  on_bad_file: str = field(
      "fail", choices=("fail", "skip"), help="A file that is not a readable image: fail or skip.")

  def validate(self):
    if self.resize is not None and len(self.resize) != 2:
      raise ConfigError(f"Expected resize=[height, width]. Received: resize={self.resize!r}")


@dataclasses.dataclass
class TfdsConfig:
  """A TensorFlow Datasets image dataset, read from prepared data in `data_dir`."""
  name: str = field("", help="TFDS name, e.g. mnist, fashion_mnist, dsprites, shapes3d.")
  train_split: str = field("train", help="TFDS split read as the training data.")
  eval_split: Optional[str] = field(
      "test", help="TFDS split read as eval data when split.method=source.")
  data_dir: Optional[str] = field(None, help="TFDS data directory; null: the TFDS default.")
  download: bool = field(
      False, help="Download and prepare if missing. Off: fail at once, never touch the network.")
  image_key: str = field("image", help="Feature holding the image.")
  label_key: Optional[str] = field("label", help="Feature holding the class label; ignored if absent.")
  factor_keys: list[str] = field(
      default_factory=list,
      help="Features holding factors; empty: every value_<name>/label_<name> pair.")
  max_examples: Optional[int] = field(None, range=(1, None), help="Read at most this many per split.")


@dataclasses.dataclass
class DSpritesConfig:
  """The built-in dSprites generator (`kerasvae.data.dsprites.DSprites`).

  Each factor can be restricted to a list of class indices (e.g.
  `shapes: [square, heart]`, `pos_x: [0, 1, 2, 3]`); `num_examples` images are
  then drawn without replacement from the restricted grid with `seed`, and
  written in the grid's original order.
  """
  num_examples: Optional[int] = field(
      20000, range=(1, None), help="Images drawn from the grid; null: the whole (restricted) grid.")
  seed: int = field(0, help="Seed of the random subset.")
  shapes: Optional[list[str]] = field(None, help="Subset of square, ellipse, heart; null: all.")
  scales: Optional[list[int]] = field(None, range=(0, 5), help="Scale classes 0..5; null: all.")
  orientations: Optional[list[int]] = field(
      None, range=(0, 39), help="Orientation classes 0..39; null: all.")
  pos_x: Optional[list[int]] = field(None, range=(0, 31), help="posX classes 0..31; null: all.")
  pos_y: Optional[list[int]] = field(None, range=(0, 31), help="posY classes 0..31; null: all.")
  label: Optional[str] = field(
      "shape", choices=("shape",), help="Factor written as the integer label, or null.")

  def validate(self):
    for name in self.shapes or ():
      if name not in DSPRITES_SHAPES:
        raise ConfigError(f"shapes: expected names among {list(DSPRITES_SHAPES)}. "
                          f"Received: shapes={self.shapes!r}")
    for name in ("shapes", "scales", "orientations", "pos_x", "pos_y"):
      values = getattr(self, name)
      if values is not None and not values:
        raise ConfigError(f"{name}: expected a non-empty list or null. Received: {name}=[]")


@dataclasses.dataclass
class DataConfig:
  """Chooses one source; the nested block of that source configures it."""
  source: str = field("dsprites", choices=SOURCES, help="Which source to read.")
  idx: IdxConfig = field(default_factory=IdxConfig)
  npz: NpzConfig = field(default_factory=NpzConfig)
  image_folder: ImageFolderConfig = field(default_factory=ImageFolderConfig)
  tfds: TfdsConfig = field(default_factory=TfdsConfig)
  dsprites: DSpritesConfig = field(default_factory=DSpritesConfig)

  @property
  def source_config(self):
    """The nested config of the chosen source."""
    return getattr(self, self.source)

  def validate(self):
    required = {"idx": "images", "npz": "path", "image_folder": "root", "tfds": "name"}
    key = required.get(self.source)
    if key and not getattr(self.source_config, key):
      raise ConfigError(f"{self.source}.{key}: expected a value for source={self.source!r}. "
                        f"Received: {key}={getattr(self.source_config, key)!r}")


@dataclasses.dataclass
class SplitConfig:
  """How examples are divided between the train and eval splits."""
  method: str = field(
      "hash", choices=("hash", "source", "index"),
      help="hash: a deterministic hash of each example's key; source: the source's own splits; "
      "index: examples from position eval_start on (in source order) go to eval.")
  eval_fraction: float = field(0.1, range=(0.0, 0.99), help="Fraction sent to eval (method=hash).")
  salt: str = field("kerasvae", help="Salt of the split hash; change it to draw another split.")
  eval_start: int = field(0, range=(0, None),
                          help="method=index: the first example of the eval split, e.g. 9000 "
                          "for MNIST's t10k (train on the first 9,000, evaluate on the last 1,000).")

  def validate(self):
    if self.method == "index" and self.eval_start < 1:
      raise ConfigError("eval_start: expected the index of the first eval example (>= 1) with "
                        f"method=index. Received: eval_start={self.eval_start}")


@dataclasses.dataclass
class IngestConfig:
  """The ingest step: one source in, one `Examples` artifact out."""
  data: DataConfig = field(default_factory=DataConfig)
  split: SplitConfig = field(default_factory=SplitConfig)
  train_split_name: str = field("train", help="Name of the training split (Split-<name>/).")
  eval_split_name: str = field("eval", help="Name of the evaluation split (Split-<name>/).")
  num_shards: int = field(4, range=(1, 1024), help="TFRecord shards per split.")
  scale_to_unit: bool = field(True, help="Readers return images in [0, 1] (else raw pixel values).")
  binarize: str = field(
      "none", choices=("none", "static", "dynamic"),
      help="none; static: x > threshold once at ingest; dynamic: Bernoulli(x) drawn by the reader each epoch.")
  threshold: float = field(0.5, range=(0.0, 1.0), help="Threshold of static binarisation.")

  def validate(self):
    if self.train_split_name == self.eval_split_name:
      raise ConfigError("Expected different train and eval split names. Received: "
                        f"train_split_name={self.train_split_name!r}, "
                        f"eval_split_name={self.eval_split_name!r}")
    for name in (self.train_split_name, self.eval_split_name):
      if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"Expected a split name usable as a folder name. Received: {name!r}")
    if self.binarize != "none" and not self.scale_to_unit:
      raise ConfigError("Expected scale_to_unit=true when binarizing. "
                        f"Received: binarize={self.binarize!r}, scale_to_unit=False")
