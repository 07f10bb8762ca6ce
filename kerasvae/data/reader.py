"""Readers of `Examples` artifacts: a `tf.data` pipeline for training, NumPy for evaluation.

The pipeline reads the gzip TFRecord shards interleaved, parses them in large
batches (one `parse_example` and one `decode_raw` per batch rather than per
image) and keeps the decoded examples in memory in their stored dtype (uint8
pixels stay uint8), then shuffles, batches, converts to float (with dynamic
binarisation; the train step converts static pixels inside its compiled step
instead) and prefetches. Parsing once rather than every epoch made the
reader 1.5x faster (MNIST, batch 128, 2 CPU cores), CPU it leaves to the
training step, which shares the same cores.

A training split of up to `IN_MEMORY_BYTES` is shuffled without touching single
examples: each epoch draws one permutation of the indices, cuts it into batches
and gathers each batch with one `tf.gather` per feature. That is a full
shuffle, and it spends 0.9 µs of CPU per example at batch 1024 (2.0-2.2 at
batch 128) where a per-element shuffle buffer and `batch` spent 1.9 (3.4-3.5;
MNIST, the reader alone). Larger splits stream through `cache()` and a shuffle
buffer of `DEFAULT_SHUFFLE_BUFFER`, which mixes only neighbours in the stored
order: the generated sources (dSprites, image folders) store their examples in
a hashed order for that reason, and NPZ/IDX arrays sorted by class and larger
than `IN_MEMORY_BYTES` should be shuffled before ingest.

Dynamic binarisation [1] draws x_b ~ Bernoulli(x) afresh for every batch of
every epoch: `tf.data.Dataset.random(..., rerandomize_each_iteration=True)`
gives each batch its own stateless seed, so draws differ between epochs and
are still reproducible from `seed`.

[1]: Tomczak & Welling, VAE with a VampPrior, AISTATS 2018 (dynamic MNIST).
"""

import re
from pathlib import Path

import numpy as np

from kerasvae.artifacts import METADATA_FILE, ArtifactError, is_complete, read_json

DEFAULT_SHUFFLE_BUFFER = 16384
IN_MEMORY_BYTES = 1 << 30  # decoded training splits up to this size are shuffled by index


def read_metadata(artifact_dir):
  """Reads `metadata.json` of an `Examples` artifact.

  Args:
    artifact_dir: the artifact written by `kerasvae.data.ingest.ingest`.

  Returns:
    The metadata dict.

  Raises:
    FileNotFoundError: no directory at `artifact_dir`.
    ValueError: the directory is not a complete `Examples` artifact.
  """
  path = Path(artifact_dir)
  if not path.is_dir():
    raise FileNotFoundError(f"Expected an Examples artifact directory at {path}. "
                            "Received: nothing there. Run the ingest step first.")
  if not is_complete(path):
    raise ValueError(f"Expected a complete Examples artifact at {path} (with {METADATA_FILE}, "
                     "written last by ingest). Received: a directory without it; an "
                     "interrupted ingest? Run ingest again.")
  metadata = read_json(path / METADATA_FILE, redo="kerasvae ingest --force")
  if metadata.get("artifact_type") != "Examples":
    raise ValueError(f"Expected artifact_type='Examples' in {path / METADATA_FILE}. "
                     f"Received: artifact_type={metadata.get('artifact_type')!r}")
  return metadata


def split_name(metadata, split):
  """Resolves a role ('train', 'validation', 'eval' or its alias 'test') or a literal split
  name to the artifact's split name."""
  names = metadata["split_names"]
  if split in metadata["splits"]:
    return split
  role = "eval" if split == "test" else split
  if role in names:
    return names[role]
  if role == "validation":
    raise ValueError("Expected a validation split in the Examples artifact (model selection "
                     "reads it, never the test split). Received: an artifact written before "
                     f"validation splits existed, with splits {sorted(metadata['splits'])}; "
                     "run `kerasvae ingest --force`.")
  raise ValueError(f"Expected a split among {sorted(set(names) | set(metadata['splits']))}. "
                   f"Received: split={split!r}")


def _split_files(artifact_dir, metadata, split):
  name = split_name(metadata, split)
  info = metadata["splits"][name]
  directory = Path(artifact_dir) / info["directory"]
  files = [str(directory / f) for f in info["files"]]
  missing = [f for f in files if not Path(f).is_file()]
  if missing:
    raise FileNotFoundError(f"Expected the shard {missing[0]} listed in "
                            f"{Path(artifact_dir) / METADATA_FILE}. Received: no such file.")
  return name, files, info["num_examples"]


def _decode_fn(metadata):
  """`serialized [B] -> dict`: one `parse_example` and one `decode_raw` for a whole batch.

  The image stays in its stored dtype and flat (`pixels` [B, H*W*C]): uint8 pixels are a
  quarter of the memory of floats in the reader's cache.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  dtype = tf.uint8 if metadata["image_dtype"] == "uint8" else tf.float32
  num_factors = len(metadata["factor_names"] or ())
  spec = {"image": tf.io.FixedLenFeature([], tf.string)}
  if metadata["has_labels"]:
    spec["label"] = tf.io.FixedLenFeature([], tf.int64)
  if metadata.get("has_factors"):
    spec["factors"] = tf.io.FixedLenFeature([num_factors], tf.float32)
  if metadata.get("has_factor_classes"):
    spec["factor_classes"] = tf.io.FixedLenFeature([num_factors], tf.int64)

  def decode(serialized):
    features = tf.io.parse_example(serialized, spec)
    features["pixels"] = tf.io.decode_raw(features.pop("image"), dtype)  # [B, H*W*C]
    return features  # and label [B], factors [B, F], factor_classes [B, F]

  return decode


def finish_fn(metadata):
  """`batch -> batch`: the stored pixels made into the model's input.

  `batch["pixels"]` [B, H*W*C] in the stored dtype becomes `batch["image"]` float32
  [B, H, W, C], scaled to [0, 1] when the artifact asks for it; for a dynamically binarised
  artifact `batch["draw_seed"]` (an int64 scalar) seeds a fresh Bernoulli draw. It runs in the
  tf.data pipeline, or, for `make_dataset(defer_finish=True)`, inside the caller's compiled
  train step, where XLA fuses it into the first layer.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  shape = metadata["image_shape"]
  divide = metadata["image_dtype"] == "uint8" and metadata["preprocessing"]["scale_to_unit"]

  def finish(batch):
    batch = dict(batch)
    draw_seed = batch.pop("draw_seed", None)
    image = tf.reshape(tf.cast(batch.pop("pixels"), tf.float32), [-1] + shape)
    if divide:
      image = image / 255.0
    if draw_seed is not None:
      noise = tf.random.stateless_uniform(tf.shape(image),
                                          seed=tf.stack([draw_seed, tf.constant(0, tf.int64)]))
      image = tf.cast(noise < image, tf.float32)  # [B, H, W, C] in {0, 1}, P(1) = intensity
    batch["image"] = image
    return batch

  return finish


def _records(files, deterministic, num_parallel):
  """Interleaved records; with block_length 1 they come back in ingest order."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.data.Dataset.from_tensor_slices(files).interleave(
      lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP", buffer_size=1 << 20),
      cycle_length=max(1, len(files)), block_length=1,
      num_parallel_calls=num_parallel, deterministic=deterministic)


def make_dataset(artifact_dir, split, batch_size, *, shuffle=True, seed=None, repeat=False,
                 deterministic=False, drop_remainder=False, cache=True, input_context=None,
                 shuffle_buffer=None, defer_finish=False):
  """A `tf.data` pipeline of batches from an `Examples` artifact.

  Args:
    artifact_dir: the artifact directory.
    split: 'train', 'validation' or 'eval' (alias 'test'), or a literal split name.
    batch_size: the GLOBAL batch size; under tf.distribute each input pipeline
      batches `input_context.get_per_replica_batch_size(batch_size)`.
    shuffle: shuffle examples (reshuffled each epoch).
    seed: seed of shuffling and of dynamic binarisation; with
      `deterministic=True` and no seed, 0 is used.
    repeat: repeat forever.
    deterministic: same batches in the same order on every run with the same
      seed (parallel stages keep their order).
    drop_remainder: drop the last partial batch.
    cache: keep the decoded examples in memory after the first epoch (parse once).
    input_context: a `tf.distribute.InputContext`; this pipeline then reads
      shard files `input_pipeline_id::num_input_pipelines` (or every n-th record
      when there are fewer files than pipelines).
    shuffle_buffer: shuffle through a buffer of this size. By default a split that fits
      in `IN_MEMORY_BYTES` is shuffled by a full permutation every epoch, a larger one
      through a buffer of min(split size, `DEFAULT_SHUFFLE_BUFFER`).
    defer_finish: leave the conversion to float and the dynamic Bernoulli draw to the
      caller: batches hold `pixels` [B, H*W*C] in the stored dtype (and `draw_seed` for a
      dynamically binarised artifact) instead of `image`; `finish_fn(metadata)` makes the
      image, inside the caller's compiled step.

  Returns:
    A `tf.data.Dataset` of dicts: image float32 [B, H, W, C] (in [0, 1] when
    the artifact was scaled), and where present label int64 [B], factors
    float32 [B, F] and factor_classes int64 [B, F].
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  metadata = read_metadata(artifact_dir)
  _, files, num_examples = _split_files(artifact_dir, metadata, split)
  if deterministic and seed is None:
    seed = 0
  ordered = bool(deterministic or not shuffle)
  autotune = tf.data.AUTOTUNE
  per_pipeline_batch = batch_size
  shard_records = None
  if input_context is not None:
    per_pipeline_batch = input_context.get_per_replica_batch_size(batch_size)
    n, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) >= n:
      files = files[index::n]
      num_examples = -(-num_examples // n)
    else:
      shard_records = (n, index)
      ordered = True  # every pipeline must see the same order to take disjoint records
  ds = _records(files, ordered, autotune)
  if shard_records is not None:
    ds = ds.shard(*shard_records)
    num_examples = -(-num_examples // shard_records[0])
  decode = _decode_fn(metadata)
  if cache:  # decode once, in large batches
    ds = ds.batch(1024).map(decode, num_parallel_calls=autotune, deterministic=True)
  examples = None
  if (cache and shuffle and shuffle_buffer is None
      and num_examples * _example_bytes(metadata) <= IN_MEMORY_BYTES):
    examples = _in_memory(ds, artifact_dir)
  if examples is not None:
    ds = _permuted_batches(examples, per_pipeline_batch, seed, repeat, drop_remainder, ordered)
  else:
    if cache:  # keep the decoded examples in memory after the first epoch
      ds = ds.unbatch().cache()
    if shuffle:
      buffer = shuffle_buffer or max(1, min(num_examples, DEFAULT_SHUFFLE_BUFFER))
      ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
      ds = ds.repeat()
    ds = ds.batch(per_pipeline_batch, drop_remainder=drop_remainder)
  if not cache:
    ds = ds.map(decode, num_parallel_calls=autotune, deterministic=ordered)
  if metadata["preprocessing"]["binarize"] == "dynamic":  # a fresh Bernoulli draw per batch
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, draws)).map(lambda batch, s: {**batch, "draw_seed": s})
  if not defer_finish:
    ds = ds.map(finish_fn(metadata), num_parallel_calls=autotune, deterministic=ordered)
  options = tf.data.Options()
  options.deterministic = ordered
  if input_context is not None:
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.with_options(options).prefetch(autotune)


def _example_bytes(metadata):
  """Bytes of one decoded example in memory (pixels, label and factors)."""
  pixels = int(np.prod(metadata["image_shape"])) * (1 if metadata["image_dtype"] == "uint8" else 4)
  return pixels + 8 + 12 * len(metadata["factor_names"] or ())


def unreadable(artifact_dir, error):
  """The `ArtifactError` for a TensorFlow read error of the artifact's record files.

  An artifact written before ingest recorded digests cannot be checked up front, so a
  damaged record file shows only when it is read (here, or in a training that streams
  it): it is named with the step to redo, not left as TensorFlow's DataLossError.
  """
  return ArtifactError(f"The Examples artifact {artifact_dir} cannot be read: "
                       f"{_cause(error)}. Redo the ingest step with `kerasvae ingest --force`.")


def _cause(error):
  """The line of a TensorFlow error that says what went wrong ("corrupted record at 546843"),
  without the node names and the Python stack a graph execution error carries."""
  lines = [re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]( name: ?)?|\[\[.*?\]\]", "", line).strip()
           for line in (getattr(error, "message", None) or str(error)).splitlines()]
  lines = [line for line in lines if line and not line.startswith(
      ("File ", "Graph execution error", "Detected at node"))]
  return lines[-1] if lines else type(error).__name__


def _read_all(dataset, artifact_dir):
  """Every element of a dataset over the artifact's record files, as a list."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  try:
    return list(dataset)
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    raise unreadable(artifact_dir, e) from None


def _in_memory(blocks, artifact_dir):
  """Concatenates a dataset of decoded blocks into {feature: [N, ...] tensor} on the CPU; None
  when it is empty."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with tf.device("/cpu:0"):
    parts = _read_all(blocks, artifact_dir)
    if not parts:
      return None
    return {k: tf.concat([p[k] for p in parts], 0) for k in parts[0]}


def _permuted_batches(examples, batch_size, seed, repeat, drop_remainder, ordered):
  """Batches of `examples` ({feature: [N, ...]}), in a new random order every epoch.

  Each epoch is one permutation of the N indices (`Dataset.random` gives each epoch, and each
  new iteration, its own seed). With `repeat`, batches run on across epochs as they do after
  `repeat().batch()`: every example once per epoch, none dropped, no partial batch.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  n = int(next(iter(examples.values())).shape[0])
  seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
  if not repeat:
    seeds = seeds.take(1)
  orders = seeds.map(lambda s: tf.random.experimental.stateless_shuffle(
      tf.range(n, dtype=tf.int64), seed=tf.stack([s, tf.constant(1, tf.int64)])))  # [N]
  if repeat:
    def carry(leftover, order):  # the indices a batch has not taken yet open the next epoch
      joined = tf.concat([leftover, order], 0)
      full = tf.shape(joined)[0] // batch_size * batch_size
      return joined[full:], tf.reshape(joined[:full], [-1, batch_size])  # [k, batch_size]
    indices = orders.scan(tf.zeros([0], tf.int64), carry).unbatch()
  else:
    full = n // batch_size * batch_size

    def cut(order):
      batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], [-1, batch_size]))
      if n > full and not drop_remainder:
        batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
      return batches
    indices = orders.flat_map(cut)
  return indices.map(lambda i: {k: tf.gather(v, i) for k, v in examples.items()},
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered)


def load_split(artifact_dir, split, limit=None, *, binarize_seed=0):
  """Loads a split (in ingest order) into NumPy arrays, for evaluation code.

  Args:
    artifact_dir: the artifact directory.
    split: 'train', 'validation' or 'eval' (alias 'test'), or a literal split name.
    limit: read at most this many examples (the first ones).
    binarize_seed: for a dynamically binarised artifact, the seed of one fixed
      Bernoulli draw (so evaluations are comparable); None returns the grey
      intensities.

  Returns:
    A dict with image float32 [N, H, W, C] and where present label int64 [N],
    factors float32 [N, F], factor_classes int64 [N, F].
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  metadata = read_metadata(artifact_dir)
  _, files, _ = _split_files(artifact_dir, metadata, split)
  ds = _records(files, True, tf.data.AUTOTUNE)
  if limit is not None:
    ds = ds.take(limit)
  decode, finish = _decode_fn(metadata), finish_fn(metadata)
  ds = ds.batch(4096).map(lambda s: finish(decode(s)), num_parallel_calls=tf.data.AUTOTUNE)
  parts = _read_all(ds.as_numpy_iterator(), artifact_dir)
  if parts:
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  else:
    shape = metadata["image_shape"]
    num_factors = len(metadata["factor_names"] or ())
    out = {"image": np.zeros([0] + shape, np.float32)}
    if metadata["has_labels"]:
      out["label"] = np.zeros([0], np.int64)
    if metadata.get("has_factors"):
      out["factors"] = np.zeros([0, num_factors], np.float32)
    if metadata.get("has_factor_classes"):
      out["factor_classes"] = np.zeros([0, num_factors], np.int64)
  if metadata["preprocessing"]["binarize"] == "dynamic" and binarize_seed is not None:
    noise = np.random.RandomState(binarize_seed).uniform(size=out["image"].shape)
    out["image"] = (noise < out["image"]).astype(np.float32)
  return out
