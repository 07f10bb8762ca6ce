"""The ingest step: one source in, one `Examples` artifact out.

Layout of the artifact (written in a temporary sibling directory and renamed
at the end, so a failed or interrupted ingest leaves nothing that looks
complete):

  <output_dir>/
    Split-<train>/data_tfrecord-00000-of-0000N.gz   gzip TFRecords of tf.train.Example
    Split-<train>/statistics.json                    count, pixel mean/std/min/max/histogram, labels,
                                                     how image files were decoded (bit depth, alpha)
    Split-<validation>/...                           model selection (early stopping)
    Split-<test>/...                                 the evaluate step's held-out examples
    schema.pbtxt                                     tensorflow_metadata Schema
    metadata.json                                    written last: source, config, hashes, counts

Each `tf.train.Example` holds `image` (raw pixel bytes, uint8 or float32 as
`metadata.json` says), `shape` ([H, W, C]), and where present `label`,
`factors` (float) and `factor_classes` (int).
"""

import logging
import time
from pathlib import Path

import numpy as np

from kerasvae import fingerprints
from kerasvae import progress
from kerasvae.artifacts import (METADATA_FILE, ArtifactError, atomic_directory, digest_files,
                                find_damage, hash_fraction, is_complete,
                                package_versions, read_json, utc_now, write_json,
                                write_metadata)
from kerasvae.config import ConfigError, from_dict, to_dict
from kerasvae.data.config import IngestConfig
from kerasvae.data.sources import DataError, open_source
from kerasvae.data.statistics import ImageStatistics

logger = logging.getLogger(__name__)

ARTIFACT_TYPE = "Examples"
FORMAT_VERSION = 2  # 2: a validation split beside train and test
SCHEMA_FILE = "schema.pbtxt"
STATISTICS_FILE = "statistics.json"


def split_dir_name(name):
  return f"Split-{name}"


def shard_name(index, num_shards):
  return f"data_tfrecord-{index:05d}-of-{num_shards:05d}.gz"


class _SplitWriter:
  """Writes one split's shards round-robin and accumulates its statistics."""

  def __init__(self, directory, num_shards, scale):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    self.directory = Path(directory)
    self.directory.mkdir()
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    self.files = [shard_name(i, num_shards) for i in range(num_shards)]
    self.writers = [tf.io.TFRecordWriter(str(self.directory / f), options) for f in self.files]
    self.count = 0
    self.stats = ImageStatistics(scale)

  def write(self, chunk):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    images = chunk["images"]  # [n, H, W, C]
    n = images.shape[0]
    self.stats.add(images, chunk.get("labels"), chunk.get("formats"))
    shape = tf.train.Feature(int64_list=tf.train.Int64List(value=list(images.shape[1:])))
    labels = chunk.get("labels")
    factors = chunk.get("factors")
    factor_classes = chunk.get("factor_classes")
    for i in range(n):
      # Built in place: the pixels are copied once into the message (the bytes object is
      # freed at once) and once into its serialization, so a large image is held about three
      # times here, not five (a Feature and a Features copy each).
      example = tf.train.Example()
      feature = example.features.feature
      feature["image"].bytes_list.value.append(images[i].tobytes())
      feature["shape"].CopyFrom(shape)
      if labels is not None:
        feature["label"].int64_list.value.append(labels[i])
      if factors is not None:
        feature["factors"].float_list.value.extend(factors[i])
      if factor_classes is not None:
        feature["factor_classes"].int64_list.value.extend(factor_classes[i])
      serialized = example.SerializeToString()
      del example
      self.writers[self.count % len(self.writers)].write(serialized)
      del serialized
      self.count += 1

  def close(self):
    for w in self.writers:
      w.close()

  def statistics(self):
    return self.stats.to_dict()


def _check_chunk(chunk, first, where):
  """Checks a chunk against the first one: shapes, dtypes, fields, finite values."""
  images = chunk["images"]
  if images.dtype != np.uint8 and not np.isfinite(images).all():
    bad = np.argwhere(~np.isfinite(images))[0]
    raise DataError(f"{where}: expected finite pixel values. Received: {images[tuple(bad)]} "
                    f"in an image of the chunk at offset {bad[0]}")
  if "factors" in chunk and not np.isfinite(chunk["factors"]).all():
    raise DataError(f"{where}: expected finite factor values. Received: NaN or infinity in factors")
  if first is None:
    return
  if images.shape[1:] != first["images"].shape[1:] or images.dtype != first["images"].dtype:
    raise DataError(f"{where}: expected every image of shape {first['images'].shape[1:]} and "
                    f"dtype {first['images'].dtype}. Received: shape={images.shape[1:]}, "
                    f"dtype={images.dtype}")
  for key in ("labels", "factors", "factor_classes"):
    if (key in chunk) != (key in first):
      raise DataError(f"{where}: expected {key} for every example or none.")
    if key in chunk and chunk[key].shape[1:] != first[key].shape[1:]:
      raise DataError(f"{where}: expected {key} of shape {first[key].shape[1:]} per example. "
                      f"Received: {chunk[key].shape[1:]}")


def _preprocess(images, config, where):
  """Applies scaling checks and static binarisation; returns the stored pixels."""
  if images.dtype != np.uint8 and config.scale_to_unit and images.size:
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
      raise DataError(f"{where}: expected float pixels in [0, 1] with scale_to_unit=true "
                      f"(set npz.pixel_max to the white value). Received: min={low}, max={high}")
  if config.binarize == "static":
    unit = images / 255.0 if images.dtype == np.uint8 else images
    return (unit > config.threshold).astype(np.uint8) * np.uint8(255)
  return images


def _schema(image_shape, has_labels, num_classes, num_factors):
  """The tensorflow_metadata Schema of the examples."""
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=import-outside-toplevel
  schema = schema_pb2.Schema()

  def add(name, kind, size):
    feature = schema.feature.add()
    feature.name = name
    feature.type = kind
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.shape.dim.add().size = size
    return feature

  add("image", schema_pb2.BYTES, 1)
  shape = add("shape", schema_pb2.INT, 3)
  shape.int_domain.min = 1
  if has_labels:
    label = add("label", schema_pb2.INT, 1)
    label.int_domain.min = 0
    if num_classes:
      label.int_domain.max = num_classes - 1
    label.int_domain.is_categorical = True
  if num_factors:
    add("factors", schema_pb2.FLOAT, num_factors)
    add("factor_classes", schema_pb2.INT, num_factors)
  schema.annotation.comment.append(f"image: raw pixel bytes of shape {list(image_shape)}")
  return schema


# The Examples artifact's fingerprint, the ingest step's: the ingest config and the source's
# content. Reading the source is what gives the content hash, so `ingest` computes it (and
# reuses the shared artifact by it), not the step executor before it.
FINGERPRINT = fingerprints.Fingerprint(
    parts=(fingerprints.Part("format_version", lambda given: FORMAT_VERSION,
                             "the artifact's layout: a new layout is written anew"),
           fingerprints.Part("config", lambda given: to_dict(given.config),
                             "the whole ingest config: source, split, preprocessing, shards"),
           fingerprints.Part("content_hash", lambda given: given.content_hash,
                             "the source's bytes (`Source.content_hash`): changed data is "
                             "ingested again")),
    left_out={"run.*": "Examples are shared by every run (and study trial) with the same "
                       "ingest config: the run's name and folder are not in them",
              "model, train, evaluate, export": "later steps: they do not change the data"},
    by_body=True)


def _source_fingerprint(config, content_hash):
  return FINGERPRINT.compute(config=config, content_hash=content_hash)


def ingest(config, output_dir, force=False):
  """Reads the configured source and writes an `Examples` artifact.

  Args:
    config: an `IngestConfig` (or a plain mapping for `from_dict`).
    output_dir: where the artifact appears, atomically.
    force: rewrite even when `output_dir` holds an artifact (same or different).

  Returns:
    The `Path` of the artifact.

  Raises:
    FileExistsError: `output_dir` holds something else and `force` is False.
    FileNotFoundError, DataError, ConfigError: bad input; nothing is left behind.
  """
  if not isinstance(config, IngestConfig):
    config = from_dict(IngestConfig, config)
  output_dir = Path(output_dir)
  started = time.time()
  source = open_source(config.data)
  use_source_splits = config.split.method == "source"
  if use_source_splits:
    source.check_source_splits()
  content_hash = source.content_hash()
  artifact_fingerprint = _source_fingerprint(config, content_hash)

  if output_dir.exists() and not force:
    if is_complete(output_dir):
      try:
        old = read_json(output_dir / METADATA_FILE, redo="kerasvae ingest --force")
      except ArtifactError as error:
        if not (output_dir / SCHEMA_FILE).is_file():  # not laid out as an Examples artifact
          raise
        # Its own metadata is damaged, so it cannot be reused; in the pipeline the folder is
        # named by the hash of this ingest config, and rewriting it is what `--force` does.
        old, same, damage = {}, True, error.problem
      else:
        same = old.get("fingerprint") == artifact_fingerprint
        damage = find_damage(output_dir, old.get("digests") or {}) if same else None
      if same and damage is None:
        logger.info("Reusing the Examples artifact at %s (same config and source content, "
                    "fingerprint %s).", output_dir, artifact_fingerprint[:12])
        return output_dir
      if same:
        # Rewriting it from the source is safe: the same config gives the same artifact.
        print(f"ingest: the Examples artifact {output_dir} is damaged ({damage}); "
              "writing it again from the source", flush=True)
        force = True
      else:
        raise FileExistsError(
            f"Expected {output_dir} to be empty or to hold this config's artifact. Received: an "
            f"artifact of another config or source (fingerprint "
            f"{str(old.get('fingerprint'))[:12]}, this one {artifact_fingerprint[:12]}). "
            "Pass force=True or use another directory.")
    else:
      raise FileExistsError(f"Expected {output_dir} not to exist or to hold a complete artifact. "
                            "Received: a directory without metadata.json. Remove it or pass "
                            "force=True.")

  # Data shorter or longer than its header declares is named before TensorFlow is imported and
  # before anything is written (the chunks would find it too, after writing part of a split).
  source.check_data()
  try:
    return _write(config, source, output_dir, force, artifact_fingerprint, content_hash, started)
  except FileExistsError:
    # Another process (a run with the same data) finished this artifact while we wrote ours:
    # its artifact is the same, so it is used.
    if (not force and is_complete(output_dir)
        and read_json(output_dir / METADATA_FILE).get("fingerprint") == artifact_fingerprint):
      logger.info("Another process wrote the same Examples artifact %s first; using it.",
                  output_dir)
      return output_dir
    raise


def _write(config, source, output_dir, force, artifact_fingerprint, content_hash, started):
  use_source_splits = config.split.method == "source"
  names = {"train": config.train_split_name, "validation": config.validation_split_name,
           "eval": config.eval_split_name}
  with atomic_directory(output_dir, overwrite=force) as tmp:
    scale = 1.0 / 255.0 if config.scale_to_unit else 1.0
    writers = {}
    first = None
    stored = None  # the first image as written
    float_scale = 1.0  # float pixels are already in source units
    position = 0  # examples seen, in source order (of the source's train split: method=source)
    try:
      for role in names:
        writers[role] = _SplitWriter(tmp / split_dir_name(names[role]), config.num_shards, scale)
      bar = progress.Progress(f"ingest: reading the {config.data.source} source",
                              unit_name="image")
      for role, chunk in source.chunks(use_source_splits):
        bar.advance(len(chunk["images"]))
        where = source.location
        _check_chunk(chunk, first, where)
        if first is None:  # no rows, only shapes and types: a view would keep a large image
          first = {k: v[:0].copy() for k, v in chunk.items()}
        chunk["images"] = _preprocess(chunk["images"], config, where)
        if stored is None:
          stored = chunk["images"][:0].copy()
          for w in writers.values():
            w.stats.scale = scale if stored.dtype == np.uint8 else float_scale
        n = len(chunk["images"])
        if role == "eval":  # the source's own test split
          writers["eval"].write(chunk)
          del chunk  # not held while the source reads the next one
          continue
        positions = position + np.arange(n)  # in source order (of its train split: method=source)
        position += n
        hashes = None  # the split hash, computed once per chunk where a split reads it
        if role is None and config.split.method == "index":
          to_test = positions >= config.split.eval_start
        elif role is None:
          hashes = hash_fraction(chunk["keys"], config.split.salt)
          to_test = hashes < config.split.eval_fraction
        else:
          to_test = np.zeros(n, bool)
        to_validation = ~to_test & config.split.validation_mask(positions, chunk["keys"], hashes)
        for role_name, mask in (("train", ~to_test & ~to_validation),
                                ("validation", to_validation), ("eval", to_test)):
          if mask.all():  # no copy (a chunk of one large image)
            writers[role_name].write(chunk)
          elif mask.any():
            writers[role_name].write({k: v[mask] for k, v in chunk.items()})
        del chunk
      bar.close()
    finally:
      for w in writers.values():
        w.close()
    total = sum(w.count for w in writers.values())
    if first is None or total == 0:
      raise DataError(f"{source.location}: expected at least one image in the "
                      f"{config.data.source} source. Received: 0 images")
    if writers["train"].count == 0:
      raise DataError(f"split: expected some training examples. Received: all {total} examples "
                      f"in {names['validation']!r} and {names['eval']!r}")
    image_shape = list(stored.shape[1:])
    image_dtype = str(stored.dtype)
    has_labels = "labels" in first
    num_factors = first["factors"].shape[1] if "factors" in first else (
        first["factor_classes"].shape[1] if "factor_classes" in first else 0)
    label_names = source.label_names if has_labels else None
    statistics = {}
    for role, w in writers.items():
      statistics[names[role]] = w.statistics()
      write_json(w.directory / STATISTICS_FILE, statistics[names[role]])
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    schema = _schema(image_shape, has_labels, len(label_names) if label_names else None, num_factors)
    (tmp / SCHEMA_FILE).write_text(text_format.MessageToString(schema))
    seconds = time.time() - started
    metadata = {
        "artifact_type": ARTIFACT_TYPE,
        "format_version": FORMAT_VERSION,
        "fingerprint": artifact_fingerprint,
        "content_hash": content_hash,
        "source": config.data.source,
        "source_config": to_dict(config.data.source_config),
        "config": to_dict(config),
        "split_names": names,
        "splits": {
            names[role]: {"directory": split_dir_name(names[role]), "files": w.files,
                          "num_examples": w.count}
            for role, w in writers.items()
        },
        "split_method": config.split.method,
        "image_shape": image_shape,
        "image_dtype": image_dtype,
        "has_labels": has_labels,
        "label_names": label_names,
        "num_classes": len(label_names) if label_names else (
            1 + max(int(k) for s in statistics.values() for k in (s["label_histogram"] or {"-1": 0}))
            if has_labels else None),
        "factor_names": list(source.factor_names) if num_factors else None,
        "has_factors": "factors" in first,
        "has_factor_classes": "factor_classes" in first,
        "preprocessing": {"scale_to_unit": config.scale_to_unit, "binarize": config.binarize,
                          "threshold": config.threshold},
        "statistics": statistics,
        # Size and SHA-256 of every file, checked by ingest before reusing the artifact and by
        # the steps that read it: a damaged shard gets a named error, not a parse error.
        "digests": digest_files(tmp),
        "package_versions": package_versions(),
        "timing": {"finished": utc_now(), "seconds": round(seconds, 3),
                   "images_per_second": round(total / max(seconds, 1e-9), 1)},
    }
    write_metadata(tmp / METADATA_FILE, metadata)
  logger.info("Wrote the Examples artifact %s: %s in %.1f s.", output_dir,
              ", ".join(f"{k}={w.count}" for k, w in writers.items()), seconds)
  return output_dir


__all__ = ["ingest", "hash_fraction", "DataError", "ConfigError"]
