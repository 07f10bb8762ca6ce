"""The `tfds` source: a TensorFlow Datasets image dataset, read from prepared data."""

import dataclasses
from typing import Optional

import numpy as np

from kerasvae.artifacts import fingerprint
from kerasvae.config import field
from kerasvae.data.sources.base import DataError, Source, image_array, to_pixels


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


class TfdsSource(Source):
  """A TFDS image dataset from prepared data (downloading only when asked)."""
  name = "tfds"
  settings = TfdsConfig
  block_in_every_config = True
  path_fields = {"data_dir": None}  # TFDS makes it when it downloads: not checked
  required = ("name",)

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
        images = image_array(np.asarray(batch[c.image_key]), f"tfds:{c.name}/{split}")
        n = images.shape[0]
        chunk = {"images": to_pixels(images, 255 if images.dtype == np.uint8 else 1,
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
