"""Where a run's TensorBoard data goes, so that `tensorboard --logdir runs` shows every dashboard.

A pipeline run is two TensorBoard runs, named as Keras' TensorBoard callback names them:

  <run>/train/logs/train/        per-epoch training scalars (loss, reconstruction, KL, ...)
  <run>/train/logs/validation/   per-epoch eval scalars and images; the HParams session with
                                 its experiment (config values and the key final metrics); the
                                 projector (eval latent means, labels, thumbnails); and the
                                 evaluate step's scalars and figures under `evaluate/`

TensorBoard calls every directory holding an events file a run, and its plugins look for data
only there: the projector reads `projector_config.pbtxt` and the latest checkpoint of a run
directory, and the HParams dashboard reads a session's metrics from the scalars of its run.
Keeping the session, the projector and the evaluate step's results in the `validation` run
puts the whole model in two runs, instead of one run per folder.

Two more steps and the studies write beside them, through the functions here:

  <run>/infer/<fingerprint>/logs/           the infer step's histograms of each shard's scores
                                            and of the validation and all anomaly scores
  <run>/train/logs/validation/ (`.study`)   a study's own numbers of a trial as `study/...`

All of kerasvae's TensorBoard writing is in this module: the training loop's scalars
(`kerasvae.training.callbacks`), the train step's pictures, the evaluate step's results, the
infer step's histograms and a study's scalars call it.

Every session carries the same HParams experiment (the hyperparameters of the config schema
and `KEY_METRICS`); without one, TensorBoard lists every scalar tag of every session as a
metric column (45 for a 10-latent VAE).
"""

import dataclasses
import typing
from pathlib import Path

from kerasvae.metrics import registry as metric_registry

TRAIN = "train"
VALIDATION = "validation"
EVALUATE_SUFFIX = ".evaluate"  # the evaluate step's events file in the validation run
PROJECTOR_CHECKPOINT = "latent_means"

# (scalar tag in the validation run, column title): the HParams dashboard's metrics, the
# evaluate step's key metrics (`kerasvae.metrics.registry`) then the last epoch's ELBO.
KEY_METRICS = metric_registry.key_metrics() + (("elbo", "ELBO (last epoch)"),)

def log_dirs(logs_dir):
  """{"train": ..., "validation": ...} under a train step's `logs/`."""
  return {name: Path(logs_dir) / name for name in (TRAIN, VALIDATION)}


def training_writers(logs_dir, chief=True):
  """The summary writers of a training's two runs, `(train, validation)`; on a worker other
  than the chief, one writer that writes nothing (twice)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if not chief:
    writer = tf.summary.create_noop_writer()
    return writer, writer
  dirs = log_dirs(logs_dir)
  return (tf.summary.create_file_writer(str(dirs[TRAIN])),
          tf.summary.create_file_writer(str(dirs[VALIDATION])))


def epoch_scalars_fn(train_writer, validation_writer):
  """A function `(record, train_names)` that writes one epoch's scalars.

  `record` is the epoch's history record: its `train/<term>` values go to the train run as
  `<term>`, with the record's `train_names` (the learning rate, the model's scheduled values
  such as the KL weight, the speed); its `validation/<metric>` values to the validation run as
  `<metric>`, a list (the KL of each latent dimension) as `<metric>/z<i>`. The step is the
  record's `epoch`.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae import _backend  # pylint: disable=import-outside-toplevel

  @tf.function
  @_backend.once_per_model
  def write(step, train, evaluation):
    # Traced once per set of names: eagerly, each scalar is a separately dispatched op,
    # and the ~40 of an epoch took 15 ms, 4% of an MNIST epoch on 2 CPU cores.
    for writer, values in ((train_writer, train), (validation_writer, evaluation)):
      with writer.as_default(step=step):
        for name, value in values.items():
          tf.summary.scalar(name, value)

  def write_record(record, train_names=()):
    train = {key[len("train/"):]: value for key, value in record.items()
             if key.startswith("train/")}
    train.update({key: record[key] for key in train_names if key in record})
    evaluation = {}
    for key, value in record.items():
      if key.startswith("validation/"):
        name = key[len("validation/"):]
        if isinstance(value, (list, tuple)):
          evaluation.update({f"{name}/z{i}": v for i, v in enumerate(value)})
        else:
          evaluation[name] = value
    as_tensors = lambda d: {k: tf.constant(v, tf.float32) for k, v in d.items()}  # noqa: E731
    write(tf.constant(record["epoch"], tf.int64), as_tensors(train), as_tensors(evaluation))

  return write_record


def epoch_images_fn():
  """A function `(writer, epoch, images)` that writes {name: image} (`viz` arrays: uint8, or
  floats in [0, 1]) as TensorBoard images at step `epoch`, compiled: eagerly the PNG summaries
  took 14 ms."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae import _backend  # pylint: disable=import-outside-toplevel
  from kerasvae import viz  # pylint: disable=import-outside-toplevel

  @tf.function
  @_backend.once_per_model
  def write_images(step, images):
    for name, image in images.items():
      tf.summary.image(name, image, step=step)

  def write(writer, epoch, images):
    with writer.as_default():
      write_images(tf.constant(epoch, tf.int64),
                   {name: tf.constant(viz.to_tensorboard_image(image))
                    for name, image in images.items()})

  return write


def _settings_blocks(config):
  """(name, settings) of the blocks whose values are hyperparameters: the model, its kind's
  own block (`model.vae`, ...) and the training."""
  return [("model", config.model), (f"model.{config.model.kind}", config.model.settings),
          ("train", config.train)]


def flat_hparams(config):
  """The config's model and train values and the data source as HParams {name: value}.

  Only the settings the run uses (each block's `applies`): no conv filters for an MLP, no
  Gaussian scale for a Bernoulli decoder, no block of another model kind. Lists become comma-separated
  strings; None values are left out (the session has no value).
  """
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  flat = {}
  for block, settings in _settings_blocks(config):
    for key, value in config_lib.to_dict(settings).items():
      if not settings.applies(key):  # e.g. conv filters of an MLP: not a setting of this run
        continue
      if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
      if value is not None and not isinstance(value, dict):
        flat[f"{block}.{key}"] = value
  flat["data.source"] = config.ingest.data.source
  return flat


def _hparam_infos(config):
  """HParamInfo protos for `flat_hparams`: types and domains from the config schema."""
  from tensorboard.plugins.hparams import api_pb2  # pylint: disable=import-outside-toplevel
  from google.protobuf import struct_pb2  # pylint: disable=import-outside-toplevel
  infos = []
  for block, settings in _settings_blocks(config):
    for f in dataclasses.fields(settings):
      if not settings.applies(f.name):
        continue
      tp = f.type
      args = [a for a in typing.get_args(tp) if a is not type(None)]
      base = args[0] if typing.get_origin(tp) is typing.Union and args else tp
      base = typing.get_origin(base) or base
      info = api_pb2.HParamInfo(name=f"{block}.{f.name}", description=f.metadata.get("help", ""))
      if base is dict or dataclasses.is_dataclass(base):  # a block: its settings come apart
        continue
      choices = f.metadata.get("choices")
      if base is bool:
        info.type = api_pb2.DATA_TYPE_BOOL
        info.domain_discrete.extend([False, True])
      elif choices:
        info.type = api_pb2.DATA_TYPE_STRING
        info.domain_discrete.extend(list(choices))
      elif base in (int, float):
        info.type = api_pb2.DATA_TYPE_FLOAT64
      else:
        info.type = api_pb2.DATA_TYPE_STRING
      infos.append(info)
  from kerasvae.data.config import DataConfig  # pylint: disable=import-outside-toplevel
  source = next(f for f in dataclasses.fields(DataConfig) if f.name == "source")
  infos.append(api_pb2.HParamInfo(name="data.source", type=api_pb2.DATA_TYPE_STRING,
                                  domain_discrete=struct_pb2.ListValue(
                                      values=[struct_pb2.Value(string_value=c) for c in
                                              source.metadata.get("choices") or ()])))
  return infos


def write_hparams_session(validation_dir, config, trial_id):
  """Writes the run's HParams session and the experiment (hyperparameters, key metrics)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tensorboard.plugins.hparams import api_pb2  # pylint: disable=import-outside-toplevel
  from tensorboard.plugins.hparams import metadata  # pylint: disable=import-outside-toplevel
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=import-outside-toplevel
  from tensorboard.plugins.hparams import summary_v2  # pylint: disable=import-outside-toplevel
  experiment = api_pb2.Experiment(
      hparam_infos=_hparam_infos(config),
      metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag, group=""),
                                       display_name=title) for tag, title in KEY_METRICS])
  experiment_pb = summary_v2._summary_pb(  # pylint: disable=protected-access
      metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))
  writer = tf.summary.create_file_writer(str(validation_dir), filename_suffix=".hparams")
  with writer.as_default():
    summary_v2.hparams(flat_hparams(config), trial_id=trial_id)
    tf.summary.experimental.write_raw_pb(experiment_pb.SerializeToString(), step=0)
  writer.close()


def write_projector(validation_dir, latent_means, labels=None, images=None, label_names=None):
  """The projector's data in the validation run: a checkpoint of the latent means [N, D],
  `metadata.tsv` (label, by its class name where `label_names` has one, and index of each
  point) and, for images, a sprite of thumbnails."""
  from kerasvae import viz  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tensorboard.plugins import projector  # pylint: disable=import-outside-toplevel
  validation_dir = Path(validation_dir)
  validation_dir.mkdir(parents=True, exist_ok=True)
  n = len(latent_means)
  with open(validation_dir / "metadata.tsv", "w") as f:
    if labels is not None:
      f.write("label\tindex\n")
      f.writelines(f"{viz.label_name(labels[i], label_names)}\t{i}\n" for i in range(n))
    else:
      f.writelines(f"{i}\n" for i in range(n))
  # `save` writes `checkpoint`, which TensorBoard's projector reads to find the tensors.
  tf.train.Checkpoint(latent_mean=tf.Variable(np.asarray(latent_means, np.float32))).save(
      str(validation_dir / PROJECTOR_CHECKPOINT))
  config = projector.ProjectorConfig()
  embedding = config.embeddings.add()
  embedding.tensor_name = "latent_mean/.ATTRIBUTES/VARIABLE_VALUE"
  embedding.metadata_path = "metadata.tsv"
  if images is not None and n:
    sprite, (h, w) = _sprite(np.asarray(images[:n]))
    tf.io.write_file(str(validation_dir / "sprite.png"), tf.io.encode_png(sprite))
    embedding.sprite.image_path = "sprite.png"
    embedding.sprite.single_image_dim.extend([w, h])
  projector.visualize_embeddings(str(validation_dir), config)


def _sprite(images):
  """A square uint8 grid of the images [N, H, W, C] for the projector, and (H, W)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  n, h, w, c = images.shape
  side = int(np.ceil(np.sqrt(n)))
  pixels = images if images.dtype == np.uint8 else np.clip(images * 255.0 + 0.5, 0, 255)
  grid = np.zeros((side * h, side * w, c), np.uint8)
  for i, image in enumerate(pixels.astype(np.uint8)):
    r, col = divmod(i, side)
    grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
  return grid, (h, w)


def evaluate_writer(validation_dir):
  """A summary writer for the evaluate step's results in the validation run.

  Events files of an earlier evaluation of the same model are removed first, so a
  re-evaluation replaces its numbers instead of adding a second point at the same step.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  validation_dir = Path(validation_dir)
  for old in validation_dir.glob(f"events.out.tfevents.*{EVALUATE_SUFFIX}"):
    old.unlink()
  return tf.summary.create_file_writer(str(validation_dir), filename_suffix=EVALUATE_SUFFIX)


def write_evaluation(logs_dir, step, metrics, figures):
  """The evaluate step's metrics and figures as `evaluate/...` in the validation run under the
  train step's `logs_dir`, at `step` (the model's last epoch): every number as a scalar, the
  KL of each latent dimension as `evaluate/kl_per_dim/z<i>`, each figure as an image."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae import viz  # pylint: disable=import-outside-toplevel
  writer = evaluate_writer(log_dirs(logs_dir)[VALIDATION])
  with writer.as_default(step=step):
    for key, value in metrics.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        tf.summary.scalar(f"evaluate/{key}", value)
      elif key == "kl_per_dim":
        for i, v in enumerate(value):
          tf.summary.scalar(f"evaluate/kl_per_dim/z{i}", v)
    for name, image in figures.items():
      tf.summary.image(f"evaluate/{name}", viz.to_tensorboard_image(image))
  writer.close()


# The infer step's outputs drawn as a histogram per shard (the shard's index is the step).
INFER_HISTOGRAMS = ("anomaly_score", "log_likelihood", "elbo", "reconstruction")


def infer_writer(infer_dir):
  """A summary writer for the infer step's histograms, in `<infer_dir>/logs`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.summary.create_file_writer(str(Path(infer_dir) / "logs"))


def write_shard_histograms(writer, index, rows):
  """Shard `index`'s `INFER_HISTOGRAMS` (`rows`: {name: [N]}) as `infer/<name>` at step `index`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with writer.as_default():
    for name in INFER_HISTOGRAMS:
      tf.summary.histogram(f"infer/{name}", rows[name], step=index)
  writer.flush()


def write_infer_summary(writer, validation_scores, scores, share_above_threshold):
  """The anomaly scores of the validation split (which set the threshold) and of every input
  as histograms, and the share of inputs above the threshold, at step 0."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with writer.as_default():
    tf.summary.histogram("infer/validation_anomaly_score", np.asarray(validation_scores), step=0)
    tf.summary.histogram("infer/all_anomaly_score", scores, step=0)
    tf.summary.scalar("infer/share_above_threshold", share_above_threshold, step=0)


STUDY_SUFFIX = ".study"  # a study's events file in a trial's validation run


def write_study_scalars(logs_dir, scalars):
  """A study's own numbers of a trial ({name: number}) as `study/<name>` scalars at step 0 in the
  validation run under the trial's train `logs_dir`; a rerun's numbers replace the last ones."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  validation = log_dirs(logs_dir)[VALIDATION]
  for old in validation.glob(f"events.out.tfevents.*{STUDY_SUFFIX}"):
    old.unlink()
  writer = tf.summary.create_file_writer(str(validation), filename_suffix=STUDY_SUFFIX)
  with writer.as_default(step=0):
    for key, value in scalars.items():
      tf.summary.scalar(f"study/{key}", value)
  writer.flush()
  writer.close()
