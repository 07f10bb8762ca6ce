"""The infer step (TFX's BulkInferrer): per-example codes and anomaly scores of a whole data set.

Runs an export (`infer.model`: a SavedModel version directory, through its `encode` and
`anomaly_score` signatures, as TF Serving would) or the run's trained model (through the same
signature functions, traced in process) over the run's Examples split (`infer.split`) or any
ingest source (`infer.data`, `--images FOLDER`), and writes `<run>/infer/<fingerprint>/`:

  scores-00000.tfrecord.gz ...  gzip TFRecords of `tf.train.Example`, one per input example, in
                                input order: index, key, label (if any), latent_mean [D],
                                latent_scale [D] (the posterior's σ), reconstruction (the ELBO's
                                −log p(x|z), one draw), kl, elbo, log_likelihood (IWAE, K =
                                infer.num_samples), log_likelihood_standard_error,
                                input_complexity (L_PNG(x)) and anomaly_score (−log p(x) − L(x));
                                nats. `infer.examples_per_shard` examples each.
  threshold.json                the anomaly threshold: the `infer.threshold_quantile` quantile of
                                the validation split's anomaly scores
  summary.json                  score quantiles and the share above the threshold
  logs/                         TensorBoard histograms (per shard, and the validation scores)
  metadata.json                 written last

Memory is bounded: the input streams in chunks, one shard's outputs are held at a time, and the
summary reads back one float per example. A shard appears under its name only when complete
(written under a temporary name, then renamed), so after a kill (even `kill -9`) the same
command finds the finished shards, skips their examples and goes on; the directory is named by
the fingerprint of everything that determines its content (model, data, K, shard size), so a
changed config never mixes with an old one's shards.
"""

import re
from pathlib import Path

import numpy as np

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae import progress
from kerasvae import summaries
from kerasvae.data import reader
from kerasvae.data import validation
from kerasvae.steps import common

SHARD_PATTERN = re.compile(r"scores-(\d{5})\.tfrecord\.gz")
PER_EXAMPLE = ("reconstruction", "kl", "elbo", "log_likelihood", "log_likelihood_standard_error",
               "input_complexity", "anomaly_score")
FORMAT = "TFRecord (gzip) of tf.train.Example"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def shard_name(index):
  return f"scores-{index:05d}.tfrecord.gz"


def finished_shards(infer_dir):
  """The indices of the complete shards in `infer_dir`, which are 0..n-1 (written in order)."""
  found = sorted(int(m.group(1)) for p in Path(infer_dir).glob("scores-*.tfrecord.gz")
                 if (m := SHARD_PATTERN.fullmatch(p.name)))
  return found[:next((i for i, s in enumerate(found) if s != i), len(found))]


class Scorer:
  """`encode` + `anomaly_score` of an export or of a trained model: one call per batch."""

  def __init__(self, path, num_samples):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from kerasvae import serving  # pylint: disable=import-outside-toplevel
    path = Path(path)
    self.num_samples = tf.constant(num_samples, tf.int32)
    if (path / "saved_model.pb").is_file():  # an export: its signatures, as served
      loaded = tf.saved_model.load(str(path))
      missing = [s for s in ("encode", "anomaly_score") if s not in loaded.signatures]
      if missing:
        raise common.StepError(
            f"infer.model: expected a SavedModel with the encode and anomaly_score signatures "
            f"(a VAE exported by kerasvae export). Received: {path} without "
            f"{', '.join(missing)} (signatures: {', '.join(sorted(loaded.signatures))})")
      self._loaded = loaded
      self.encode = lambda x: loaded.signatures["encode"](images=x)
      self.score = lambda x: loaded.signatures["anomaly_score"](images=x,
                                                                num_samples=self.num_samples)
      self.image_shape = [int(s) for s in
                          loaded.signatures["encode"].structured_input_signature[1]["images"]
                          .shape[1:]]
      info = serving.read_export_metadata(path)
      self.fingerprint = artifacts.fingerprint(info.get("digests") or str(path.resolve()))
    else:  # a run's train directory: the same signature functions, traced here
      from kerasvae.steps import train  # pylint: disable=import-outside-toplevel
      model = train.load_model(path)
      if not model.has_posterior:
        raise common.StepError(f"Expected a model with a posterior (a VAE kind) to score. "
                               f"Received: {type(model).__name__} in {path}")
      _, functions = serving.serving_signatures(model)
      if "anomaly_score" not in functions:
        raise common.StepError(f"Expected images of 1 to 4 channels (the anomaly score codes "
                               f"them as PNG). Received: image shape {model.image_shape}")
      self.encode = functions["encode"]
      self.score = lambda x: functions["anomaly_score"](x, self.num_samples)
      self.image_shape = [int(s) for s in model.image_shape]
      meta = artifacts.read_json(path / artifacts.METADATA_FILE)
      self.fingerprint = meta.get("fingerprint")

  def __call__(self, images):
    """{name: np.ndarray} for a batch [B, H, W, C]: latent_mean, latent_scale and PER_EXAMPLE."""
    codes = self.encode(images)
    scores = self.score(images)
    out = {"latent_mean": codes["latent_mean"].numpy(),
           "latent_scale": np.exp(0.5 * codes["latent_log_var"].numpy())}
    out.update({k: scores[k].numpy() for k in PER_EXAMPLE if k in scores})
    out["log_likelihood_standard_error"] = scores["standard_error"].numpy()
    return out


def _source_batches(config, data, batch_size, skip):
  """(images float32 [B, H, W, C], keys [B], labels [B] or None) of any ingest source, in its
  order, from example `skip` on, preprocessed as ingest stores it for the model."""
  from kerasvae.data.sources import open_source  # pylint: disable=import-outside-toplevel
  ingest = config.ingest
  source = open_source(data)
  seen = 0
  buffer = []
  for _, chunk in source.chunks(False):
    n = len(chunk["images"])
    if seen + n <= skip:
      seen += n
      continue
    start = max(0, skip - seen)
    seen += n
    images = chunk["images"][start:]
    if ingest.binarize == "static":
      unit = images / 255.0 if images.dtype == np.uint8 else images
      images = (unit > ingest.threshold).astype(np.float32)
    elif images.dtype == np.uint8:
      images = images.astype(np.float32) / (255.0 if ingest.scale_to_unit else 1.0)
    labels = chunk.get("labels")
    buffer.append((images.astype(np.float32), np.asarray(chunk["keys"])[start:],
                   None if labels is None else labels[start:]))
    while sum(len(b[0]) for b in buffer) >= batch_size:
      yield _take(buffer, batch_size)
  while buffer:
    yield _take(buffer, batch_size)


def _take(buffer, n):
  """The first `n` examples of a list of (images, keys, labels) parts, removed from it."""
  parts, taken = [], 0
  while buffer and taken < n:
    images, keys, labels = buffer[0]
    k = min(n - taken, len(images))
    parts.append((images[:k], keys[:k], None if labels is None else labels[:k]))
    taken += k
    if k == len(images):
      buffer.pop(0)
    else:
      buffer[0] = (images[k:], keys[k:], None if labels is None else labels[k:])
  labels = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
  return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), labels)


def _examples_batches(examples_dir, split, batch_size, skip):
  """The same from an Examples split, in its stored order."""
  ds = reader.make_dataset(examples_dir, split, batch_size, shuffle=False, deterministic=True,
                           cache=False)
  ds = ds.unbatch().skip(skip).batch(batch_size)
  index = skip
  for batch in ds.as_numpy_iterator():
    n = len(batch["image"])
    keys = np.array([f"{split}:{i}" for i in range(index, index + n)])
    index += n
    yield batch["image"], keys, batch.get("label")


def _feature(values, kind):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  values = np.atleast_1d(values)
  if kind == "float":
    return tf.train.Feature(float_list=tf.train.FloatList(value=values.astype(np.float32)))
  if kind == "int":
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values.astype(np.int64)))
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in values]))


def _write_shard(path, rows):
  """Writes one shard's examples under a temporary name, then renames it to `path`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  with artifacts.replacing(path) as tmp:
    with tf.io.TFRecordWriter(str(tmp), options) as writer:
      for i in range(len(rows["index"])):
        feature = {"index": _feature(rows["index"][i], "int"),
                   "key": _feature(rows["key"][i], "bytes"),
                   "latent_mean": _feature(rows["latent_mean"][i], "float"),
                   "latent_scale": _feature(rows["latent_scale"][i], "float")}
        if rows.get("label") is not None:
          feature["label"] = _feature(rows["label"][i], "int")
        for name in PER_EXAMPLE:
          feature[name] = _feature(rows[name][i], "float")
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                     .SerializeToString())


def read_scores(infer_dir, names=("anomaly_score",)):
  """{name: [N] float64} read back from every finished shard, in input order."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  out = {name: [] for name in names}
  for index in finished_shards(infer_dir):
    for record in tf.data.TFRecordDataset(str(Path(infer_dir) / shard_name(index)),
                                          compression_type="GZIP").as_numpy_iterator():
      example = tf.train.Example.FromString(record)
      for name in names:
        out[name].extend(example.features.feature[name].float_list.value)
  return {name: np.asarray(v, np.float64) for name, v in out.items()}


def infer_fingerprint(config, scorer, data, examples_dir):
  c = config.infer
  return artifacts.fingerprint({
      "model": scorer.fingerprint, "num_samples": c.num_samples,
      "examples_per_shard": c.examples_per_shard, "preprocessing": {
          "scale_to_unit": config.ingest.scale_to_unit, "binarize": config.ingest.binarize,
          "threshold": config.ingest.threshold},
      "data": config_lib.to_dict(data) if data is not None else {
          "examples": reader.read_metadata(examples_dir)["fingerprint"], "split": c.split},
      "threshold": [c.threshold_quantile, c.threshold_examples]})


def _threshold(config, scorer, examples_dir, infer_dir):
  """The anomaly threshold fitted on the validation split (cached in threshold.json)."""
  from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
  path = Path(infer_dir) / "threshold.json"
  if path.is_file():
    return artifacts.read_json(path)
  c = config.infer
  split = reader.load_split(examples_dir, "validation", limit=c.threshold_examples)
  images = split["image"]
  if not len(images):
    raise common.StepError(f"Expected a validation split in {examples_dir} to fit the anomaly "
                           "threshold on. Received: an empty one (ingest.split)")
  scores = np.concatenate([scorer(images[i:i + c.batch_size])["anomaly_score"]
                           for i in range(0, len(images), c.batch_size)])
  info = {"threshold": anomaly.threshold_at(scores, c.threshold_quantile),
          "quantile": c.threshold_quantile, "num_examples": len(scores),
          "validation_scores": [float(s) for s in scores]}
  artifacts.write_json(path, info)
  return info


def run(config, examples_dir, train_dir, infer_root, data=None, model_path=None, force=False):
  """Scores a data set (see the module docstring). Returns the infer directory."""
  c = config.infer
  data = data or c.data
  model_path = Path(model_path or c.model or train_dir)
  if data is not None and c.check_data:  # new data: the training data's rules first
    from kerasvae.steps import validate  # pylint: disable=import-outside-toplevel
    validate.run(config, examples_dir, Path(infer_root) / "validate", data)
  scorer = Scorer(model_path, c.num_samples)
  fingerprint = infer_fingerprint(config, scorer, data, examples_dir)
  infer_dir = Path(infer_root) / fingerprint[:12]
  if force:
    common.remove_tree(infer_dir)
  if common.reusable(infer_dir, fingerprint):
    print(f"infer: reusing {infer_dir} (same model, data and settings; --force redoes it)")
    return infer_dir
  infer_dir.mkdir(parents=True, exist_ok=True)
  timer = common.Timer()
  threshold = _threshold(config, scorer, examples_dir, infer_dir)
  done = finished_shards(infer_dir)
  skip = len(done) * c.examples_per_shard
  what = (data.source + ":" + str(getattr(data.source_config, "root", "")
                                  or getattr(data.source_config, "images", "")
                                  or getattr(data.source_config, "path", ""))
          if data is not None else f"{examples_dir} split {c.split}")
  total = None if data is not None else reader.read_metadata(examples_dir)["splits"].get(
      reader.split_name(reader.read_metadata(examples_dir), c.split), {}).get("num_examples")
  batches = (_source_batches(config, data, c.batch_size, skip) if data is not None
             else _examples_batches(examples_dir, c.split, c.batch_size, skip))
  bar = progress.Progress(f"infer: scoring {what} (K={c.num_samples}"
                          + (f", resuming after {len(done)} finished shards" if done else "")
                          + f") into {infer_dir}", total=total, unit_name="image")
  bar.update(skip)
  writer = summaries.infer_writer(infer_dir)
  shard, rows, index = len(done), None, skip
  for images, keys, labels in batches:
    if list(images.shape[1:]) != scorer.image_shape:
      raise validation.DataValidationError(
          f"{what}: expected images of shape {scorer.image_shape} (the model's). Received: "
          f"image_shape={list(images.shape[1:])}", [])
    out = scorer(images)
    out["index"] = np.arange(index, index + len(images))
    out["key"] = keys
    if labels is not None:
      out["label"] = labels
    index += len(images)
    rows = out if rows is None else {k: np.concatenate([rows[k], v]) for k, v in out.items()}
    while len(rows["index"]) >= c.examples_per_shard:
      head = {k: v[:c.examples_per_shard] for k, v in rows.items()}
      rows = {k: v[c.examples_per_shard:] for k, v in rows.items()}
      _finish_shard(infer_dir, shard, head, writer)
      shard += 1
    bar.update(index)
  if rows is not None and len(rows["index"]):
    _finish_shard(infer_dir, shard, rows, writer)
  bar.close()
  summary = _summary(infer_dir, threshold, writer)
  writer.close()
  artifacts.write_json(infer_dir / "summary.json", summary)
  artifacts.write_metadata(infer_dir / artifacts.METADATA_FILE, common.step_metadata(
      "infer", fingerprint, c, inputs={"model": model_path.resolve(), "data": what},
      outputs={"scores": infer_dir, "summary": infer_dir / "summary.json"},
      started=timer.started, seconds=timer.seconds, format=FORMAT,
      shards=[shard_name(i) for i in finished_shards(infer_dir)], **summary))
  print(f"infer: {summary['num_examples']} examples in {len(finished_shards(infer_dir))} shards; "
        f"anomaly_score median {summary['anomaly_score_quantiles']['0.5']:.1f} nats, "
        f"{summary['share_above_threshold']:.1%} above the threshold "
        f"{threshold['threshold']:.1f} (the validation split's {c.threshold_quantile:g} "
        f"quantile); {infer_dir}")
  return infer_dir


def _finish_shard(infer_dir, index, rows, writer):
  _write_shard(infer_dir / shard_name(index), rows)
  summaries.write_shard_histograms(writer, index, rows)


def _summary(infer_dir, threshold, writer):
  scores = read_scores(infer_dir)["anomaly_score"]
  quantiles = {f"{q:g}": float(np.quantile(scores, q)) for q in QUANTILES}
  share = float(np.mean(scores > threshold["threshold"]))
  summaries.write_infer_summary(writer, threshold["validation_scores"], scores, share)
  return {"num_examples": int(len(scores)), "anomaly_score_quantiles": quantiles,
          "threshold": threshold["threshold"], "threshold_quantile": threshold["quantile"],
          "share_above_threshold": share,
          "anomaly_score_mean": float(scores.mean()) if len(scores) else None}
