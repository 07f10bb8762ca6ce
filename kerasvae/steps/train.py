"""The train step: Examples artifact in, a trained model (plus checkpoints and TensorBoard logs) out.

Layout of the step directory:
  checkpoints/       model, optimiser, epoch (resumption after a kill; the last
                     `train.keep_checkpoints`), removed once the step is complete
  logs/train, logs/validation   TensorBoard runs (kerasvae.summaries): scalars, images, the
                     HParams session and the projector of eval latent means
  model/model.keras  the trained model (written atomically)
  history.json       one record per epoch
  metadata.json      written last: the step is complete when it exists
"""

import logging
import os
import signal
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasvae import _backend
from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae import summaries
from kerasvae import training
from kerasvae import viz
from kerasvae.data import reader
from kerasvae.metrics import likelihood
from kerasvae.steps import common
from kerasvae.steps import executor
from kerasvae.steps import table

logger = logging.getLogger(__name__)

MODEL_FILE = table.MODEL_FILE
VALIDATION_EXAMPLES_DURING_TRAINING = 2000
SELECTION = table.SELECTION


def train_fingerprint(config, examples_metadata):
  """The train step's fingerprint (its table: `kerasvae.steps.table.TRAIN`)."""
  return table.TRAIN.fingerprint.compute(config=config, examples=examples_metadata)


def use_jit(setting, architecture):
  """Resolves train.jit_compile: measured on 2 CPU cores, XLA doubles the MLP step's speed
  but makes the conv step 2.6x slower, so `auto` leaves convolutions to XLA on GPUs only."""
  if setting == "auto":
    return architecture != "conv" or bool(tf.config.list_logical_devices("GPU"))
  return setting == "true"


def load_model(train_dir):
  """The trained model of a finished train step, checked against the digest train recorded."""
  path = Path(train_dir) / MODEL_FILE
  if not path.is_file():
    raise common.StepError(f"Expected a trained model at {path}. Run `kerasvae train` first.")
  meta_path = Path(train_dir) / artifacts.METADATA_FILE
  digests = artifacts.read_json(meta_path, redo="kerasvae train --force").get(
      "digests") if meta_path.is_file() else None
  if digests and MODEL_FILE in digests:
    common.check_artifact(train_dir, {MODEL_FILE: digests[MODEL_FILE]}, "trained model", "train",
                          "kerasvae train --force")
  try:
    return keras.saving.load_model(path)
  except Exception as error:  # pylint: disable=broad-except  # zipfile, h5py, Keras errors
    raise common.DamagedArtifactError(
        f"Could not load the trained model {path}: {type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else ''}. Redo the train step with "
        "`kerasvae train --force`.") from error


def _write_hparams_and_projector(logs_dir, config, examples, model, num_projected,
                                 label_names=None):
  validation = summaries.log_dirs(logs_dir)[summaries.VALIDATION]
  summaries.write_hparams_session(validation, config, trial_id=Path(logs_dir).parent.parent.name)
  if num_projected <= 0 or len(examples["image"]) == 0:
    return
  images = examples["image"][:num_projected]
  means = model.encode_mean(tf.constant(images)).numpy()  # [N, D]
  summaries.write_projector(validation, means, labels=examples.get("label"), images=images,
                            label_names=label_names)


def traversal_dims(model, images, limit=10):
  """The `limit` latents most worth a traversal row, most informative first: [R] int32.

  A VAE's are ranked by their mean KL to N(0, I) over `images` (an unused latent has KL
  ≈ 0: its row would not change), an autoencoder's by the variance of its codes, as the
  evaluate step ranks them. Ties keep the lower index first.
  """
  if model.has_posterior:
    mean, log_var = model.posterior_params(images)  # [N, D] each
    score = tf.reduce_mean(0.5 * (tf.square(mean) + tf.exp(log_var) - log_var - 1.0), 0)  # [D]
  else:
    score = tf.math.reduce_variance(model.encode_mean(images), 0)  # [D]
  return tf.math.top_k(score, k=min(model.latent_dim, limit)).indices  # [R]


def picture_function(model, images, seed=0):
  """`() -> {name: uint8 grid}`: reconstructions, prior samples and latent traversals.

  The three decodes run as one compiled call (traced on the first call): eagerly they were
  ~30 dispatched Keras layer calls, 22 of the 38 ms the pictures took for the MNIST MLP VAE
  on 2 CPU cores. The traversal rows are the 10 most informative latents at that epoch
  (`traversal_dims` on up to 256 of `images`), each swept over [-3, 3] with the others at 0.

  Args:
    model: the model being trained.
    images: [N, H, W, C] float32; the first 10 are reconstructed.
    seed: the prior samples' seed, so every epoch's samples decode the same codes.
  """
  originals = np.asarray(images[:10], np.float32)
  ranking = tf.constant(np.asarray(images[:256], np.float32))
  _, values = viz.traversal_latents(model.latent_dim, dims=[0], num_steps=9)
  steps = len(values)
  values = tf.constant(values, tf.float32)  # [S]

  @tf.function
  @_backend.once_per_model
  def decode():
    dims = traversal_dims(model, ranking)  # [R]
    z = tf.one_hot(dims, model.latent_dim)[:, None, :] * values[None, :, None]  # [R, S, D]
    return (model.reconstruct(tf.constant(originals)), model.sample(64, seed=seed),
            model.decode_mean(tf.reshape(z, [-1, model.latent_dim])))

  def pictures():
    reconstructions, samples, traversals = (t.numpy() for t in decode())
    return {"reconstructions": viz.image_grid(np.concatenate([originals, reconstructions]),
                                              ncols=len(originals)),
            "samples": viz.image_grid(samples, ncols=8),
            "traversals": viz.image_grid(traversals, ncols=steps)}

  return pictures


def run(config, examples_dir, train_dir, force=False):
  """Trains the configured model on an Examples artifact.

  Args:
    config: the `PipelineConfig`.
    examples_dir: the ingest step's Examples artifact.
    train_dir: this step's directory. An unfinished training there (a
      checkpoint but no metadata.json) is resumed; a finished one with the
      same inputs and config is reused unless `force`.
    force: retrain from scratch.

  Returns:
    `train_dir`.
  """
  return executor.execute(table.STEPS["train"], config, train_dir, {"examples": examples_dir},
                          force=force)


def body(run):
  """The train step's body: trains into the step directory (`run` documents the arguments)."""
  config, train_dir = run.config, run.directory
  note = training.check_precision(config.train.precision)  # the pipeline's and KFP's train
  strategy = training.make_strategy(config.train.strategy)
  chief = training.is_chief(strategy)
  if chief:
    print(training.describe_strategy(strategy, config.train.strategy), flush=True)
    if note:
      print(f"train: {note}", flush=True)
  stale = (train_dir / artifacts.METADATA_FILE).is_file()  # finished, but from other inputs
  previous = None  # the model being replaced, kept aside until the new one has trained
  if chief and (run.force or stale) and train_dir.exists():
    artifacts.remove_stale_temporaries(train_dir.parent)
    previous = train_dir.with_name(artifacts.temporary_name(train_dir.name))
    os.rename(train_dir, previous)
  try:
    _train(run, strategy, chief)
  except BaseException:
    if previous is not None:
      if training.has_checkpoint(train_dir) or artifacts.is_complete(train_dir):
        common.remove_tree(previous)  # the new training got under way (or finished): keep it
      else:  # nothing new was trained: the previous model stays
        common.remove_tree(train_dir)
        os.rename(previous, train_dir)
        print(f"train: nothing was trained; the previous model in {train_dir} is kept",
              flush=True)
    raise
  if previous is not None:
    common.remove_tree(previous)
  return train_dir


def machine_memory():
  """The bytes this process may use: the least of the machine's memory, its cgroup's limit
  and its address-space limit."""
  import resource  # pylint: disable=import-outside-toplevel
  limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
  for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    try:
      text = Path(path).read_text().strip()
    except OSError:
      continue
    if text.isdigit():
      limits.append(int(text))
  soft, _ = resource.getrlimit(resource.RLIMIT_AS)
  if soft != resource.RLIM_INFINITY:
    limits.append(soft)
  return min(limits)


def network_cost(model_config, image_shape):
  """`(parameters, activations per example)` of the encoder and decoder a config describes,
  counted from the layer sizes (before anything is built, which would itself run out of memory).

  The MLP: dense layers image -> hidden_units -> 2 latent_dim and back, the decoder's output
  counted twice (a likelihood may have two parameters per pixel). The conv family: 4x4
  stride-2 convolutions through `filters`, the dense layer, and the transposed mirror.
  A kind's extra networks (a FactorVAE's discriminator) are small beside these and left out.
  """
  c = model_config
  pixels = int(np.prod(image_shape))
  d = c.latent_dim
  if c.architecture == "mlp":
    widths = [pixels, *c.hidden_units]
    encoder = sum(a * b for a, b in zip(widths, widths[1:])) + widths[-1] * 2 * d
    decoder = d * widths[-1] + sum(a * b for a, b in zip(widths[:0:-1], widths[-2::-1]))
    decoder += widths[1] * pixels  # the second likelihood parameter
    return encoder + decoder, 2 * (sum(c.hidden_units) + 2 * pixels + 2 * d)
  h, w, channels = image_shape
  sizes, convolutions, activations = [channels, *c.filters], 0, 0
  for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
    convolutions += 16 * a * b + b  # kernels and biases
    activations += (h >> (i + 1)) * (w >> (i + 1)) * b
  flat = (h >> len(c.filters)) * (w >> len(c.filters)) * c.filters[-1]
  dense = (flat * c.dense_units + c.dense_units * 2 * d + d * c.dense_units
           + c.dense_units * flat + 2 * c.dense_units + 2 * d + flat)  # weights and biases
  return 2 * convolutions + dense, 2 * (2 * activations + 2 * pixels + c.dense_units + 2 * d)


def check_fits(config, image_shape, global_batch, num_train, examples_dir):
  """Refuses, by name, a batch larger than the training data and a network or batch whose
  training needs more memory than this machine has (`machine_memory`), before any is built.

  Training holds each parameter four times (weights, gradients, Adam's two moments: 16 bytes)
  and each activation of a batch about three times (forward, backward, the likelihood's
  terms: 12 bytes). A batch past the data would never fill (the reader carries examples
  over epochs to fill it: a billion-example batch read 512 examples for ever).
  """
  if global_batch > num_train:
    raise config_lib.ConfigError(
        f"config.train.batch_size: expected at most the {num_train} training examples of "
        f"{examples_dir} (per replica, times the replicas). Received: batch_size="
        f"{config.train.batch_size} ({global_batch} a step)")
  parameters, per_example = network_cost(config.model, image_shape)
  need = 16 * parameters + 12 * per_example * global_batch
  have = machine_memory()
  if need <= have:
    return
  sizes = {"mlp": f"hidden_units={list(config.model.hidden_units)}",
           "conv": f"filters={list(config.model.filters)}, dense_units={config.model.dense_units}"}
  raise config_lib.ConfigError(
      f"config.model: expected a network whose training fits in this machine's memory "
      f"({have / 1e9:.1f} GB). Received: {sizes[config.model.architecture]}, latent_dim="
      f"{config.model.latent_dim} on images of {list(image_shape)} with batch_size="
      f"{config.train.batch_size}: about {parameters / 1e6:.0f}M parameters and "
      f"{need / 1e9:.1f} GB for the weights, gradients, Adam's moments and a batch's "
      "activations. Make the network or the batch smaller.")


def _train(run, strategy, chief):
  """`body`'s training into the step directory (empty, or an unfinished training to resume)."""
  config, train_dir = run.config, run.directory
  examples_dir, examples_meta = run.paths["examples"], run.upstream["examples"]
  train_dir.mkdir(parents=True, exist_ok=True)
  timer = common.Timer()
  cfg = config.train
  keras.utils.set_random_seed(cfg.seed)
  replicas = strategy.num_replicas_in_sync
  global_batch = cfg.batch_size * replicas
  num_train = examples_meta["splits"][reader.split_name(examples_meta, "train")]["num_examples"]
  if num_train == 0:
    raise common.StepError(f"The Examples artifact {examples_dir} has no training examples.")
  steps_per_epoch = cfg.steps_per_epoch or max(1, num_train // global_batch)
  image_shape = tuple(examples_meta["image_shape"])
  check_fits(config, image_shape, global_batch, num_train, examples_dir)

  with strategy.scope():
    model = common.build_model(config.model, image_shape, steps_per_epoch, num_train,
                               global_batch, precision=cfg.precision)
    optimizer = keras.optimizers.Adam(training.learning_rate_schedule(cfg, steps_per_epoch))
    optimizer.build(model.main_trainable_variables)
  if model.prepare_examples:  # e.g. a VampPrior's pseudo-inputs start from training images
    model.prepare(reader.load_split(examples_dir, "train", limit=model.prepare_examples)["image"],
                  seed=cfg.seed)

  # The reader hands over stored pixels and the compiled step makes them floats (fused into the
  # first layer). A dynamic Bernoulli draw stays in the reader: drawn inside the XLA step it
  # made the MNIST MLP's step 1.4x slower on 2 CPU cores (benchmarks/train_throughput.py).
  defer_finish = examples_meta["preprocessing"]["binarize"] != "dynamic"

  def dataset_fn(input_context):
    return reader.make_dataset(examples_dir, "train", global_batch, shuffle=True,
                               seed=cfg.seed + input_context.input_pipeline_id, repeat=True,
                               drop_remainder=True, input_context=input_context,
                               deterministic=True,  # the same seed gives the same run
                               defer_finish=defer_finish)

  # Every selection (early stopping, the best checkpoint) and every per-epoch picture reads the
  # validation split: the test split is the evaluate step's alone.
  validation = reader.load_split(examples_dir, "validation",
                                 limit=VALIDATION_EXAMPLES_DURING_TRAINING)
  has_validation = len(validation["image"]) > 0
  if cfg.early_stopping_patience and not has_validation:
    raise common.StepError(
        f"train.early_stopping_patience: expected a validation split to select on. Received: "
        f"early_stopping_patience={cfg.early_stopping_patience} and an empty validation split in "
        f"{examples_dir} (set ingest.split.validation_fraction or validation_start, or "
        "early_stopping_patience=0)")

  def evaluate_fn():
    metrics = likelihood.elbo_metrics(model, validation["image"], seed=cfg.seed)
    # What early stopping selects on: the model's own training objective (its kind declares it).
    metrics["objective"] = likelihood.validation_objective(model, validation["image"],
                                                           seed=cfg.seed)
    usage = likelihood.latent_usage(metrics.pop("latent_mean"), metrics.pop("latent_log_var"))
    metrics["active_units"] = usage["active_units"]
    if "kl_per_dim" in usage:
      metrics["kl_per_dim"] = usage["kl_per_dim"]
    return metrics

  pictures = picture_function(model, validation["image"] if has_validation else reader.load_split(
      examples_dir, "train", limit=10)["image"], seed=cfg.seed)

  write_images = summaries.epoch_images_fn()

  def epoch_end_fn(epoch, train_writer, eval_writer):
    del train_writer  # pictures are of the model, logged with the eval metrics
    if epoch % cfg.images_every_epochs and epoch != cfg.epochs:
      return  # epoch 0 (the initial model) is always drawn
    write_images(eval_writer, epoch, pictures())

  trainer = training.Trainer(model, optimizer, strategy, cfg, str(train_dir), dataset_fn,
                             steps_per_epoch, evaluate_fn=evaluate_fn if has_validation else None,
                             epoch_end_fn=epoch_end_fn,
                             jit_compile=use_jit(cfg.jit_compile, config.model.architecture),
                             preprocess_fn=reader.finish_fn(examples_meta) if defer_finish
                             else None)
  try:
    history = trainer.train()
  except tf.errors.DataLossError as e:  # a damaged record file of a split too large to
    raise reader.unreadable(examples_dir, e) from None  # read up front (no digests)
  if model.finalize_examples:  # e.g. an autoencoder fits the code distribution it samples
    model.finalize(
        reader.load_split(examples_dir, "train", limit=model.finalize_examples)["image"])
  if not chief:
    return train_dir
  model_path = train_dir / MODEL_FILE
  model_path.parent.mkdir(parents=True, exist_ok=True)
  with artifacts.replacing(model_path, suffix=".keras") as tmp:  # Keras wants the ending
    model.save(tmp)
  artifacts.write_json(train_dir / "history.json", training.history_json(history))
  final = dict(history[-1]) if history else {}
  _write_hparams_and_projector(train_dir / "logs", config, validation, model,
                               cfg.projector_examples, examples_meta.get("label_names"))
  run.write_metadata(
      train_dir, inputs={"examples": examples_dir}, outputs={"model": model_path,
                                                            "logs": train_dir / "logs"},
      timer=timer, replicas=replicas,
      # The training loop's wall-clock over every run that resumed it ("seconds" is this run).
      training_seconds=history[-1]["elapsed"] if history else 0.0,
      strategy=type(strategy).__name__, steps_per_epoch=steps_per_epoch,
      epochs_run=len(history), final=final,
      digests=artifacts.digest_files(train_dir, only=(MODEL_FILE, "history.json")))
  # Complete: the model is saved, and a finished training is never resumed (another config
  # trains in another run directory, --force from scratch), so its checkpoints only took disk,
  # unless a longer training is to continue from them (train.keep_final_checkpoint).
  if not config.train.keep_final_checkpoint:
    training.remove_resumption_state(train_dir)
  if trainer.interrupted is not None:  # it came after the last epoch: the step is complete
    raise training.TrainingInterrupted(
        f"{signal.Signals(trainer.interrupted).name} after the last epoch: the train step "
        "finished and was saved; run the same command again for the next steps",
        trainer.interrupted)
  return train_dir
