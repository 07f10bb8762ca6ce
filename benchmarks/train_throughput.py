"""Training throughput (examples/s): `kerasvae train` against a bare XLA step and the Keras idiom.

Usage:
  python -m benchmarks.train_throughput [--mnist-dir ../shared/data/mnist] [--rounds 3]
      [--epochs 6] [--no-conv] [--no-mlp] [--conv-batch-sizes 64 128] [--compare-only] [--quick]

For the classic MLP VAE on MNIST (784-400-20-400-784, ReLU, Bernoulli decoder,
Adam 1e-3; the first 9,000 digits of the shared t10k file, dynamically
binarised) and then for the convolutional β-VAE on 64x64 dSprites, at batch
128 and 1024, it times in one process:

  (1) project: `kerasvae.steps.train.run` on an ingested Examples artifact,
      exactly as `kerasvae train` runs it (tf.data reader, TFP-style model,
      per-epoch eval ELBO on the eval split, checkpoints, TensorBoard scalars
      and images). Two rates: `epoch` is examples over the wall time between
      the epochs' last TensorBoard events (everything included), `step` is the
      Trainer's own `examples_per_second` (training loop only, no eval).
      The `train only` row sets the eval, checkpoint and image intervals past
      the measured epochs: the per-epoch work of (2) and (3), which neither
      evaluate nor checkpoint. The `60000-example epochs` row keeps the
      defaults but cuts epochs of the length of the full MNIST training split
      (the 9,000 digits cycled), over which the per-epoch work is spread.
  (2) bare: one `tf.function(jit_compile=True)` train step (forward, fused
      loss, gradients, Adam) of the same network on in-memory tensors: the most
      this machine gives through TensorFlow. For convolutions without a GPU
      it is also timed without XLA and the faster one is the reference.
  (3) keras: the keras.io VAE idiom (a `Sampling` layer, a subclassed model
      with a custom `train_step` and `tf.GradientTape`, `model.fit` on a NumPy
      array, `compile()` defaults) with the same network.
  (4) torch (dSprites only, when `torch` is importable; never a dependency of the
      package): the same conv network, loss and Adam in PyTorch, eager, with
      activations and weights channels-last (NHWC, what oneDNN prefers on CPU)
      and in PyTorch's default NCHW layout; each in a fresh process without
      TensorFlow (in one process the two runtimes' threads fight over the cores),
      and channels-last once more with OMP_WAIT_POLICY=PASSIVE (on a loaded
      machine OpenMP's spinning default loses several times its speed).
  reader: the tf.data reader of (1) alone, no model.

`--no-mlp --compare-only --conv-batch-sizes 64 128` is the conv comparison alone:
the bare step without XLA, the two PyTorch rows and (1) train only, interleaved.

The first epoch of every measurement is a warm-up (tracing, XLA compilation,
the reader's cache) and is not counted. The CPU is shared, so the variants are
interleaved over `--rounds` rounds and the best round is reported, with the
load average. Peak memory is each phase's peak resident set (VmHWM, reset
through /proc/self/clear_refs before the phase).
"""

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MNIST_TRAIN = 8000  # digits 0-7,999 of t10k train, 8,000-8,999 validate, the rest test (mnist_vae.yaml)
MNIST_TEST_START = 9000
MNIST_FULL_TRAIN = 60000  # the length of an epoch of the full MNIST training split
QUICK_STEPS = 20  # --quick: training steps per MNIST epoch (two executions of spe=10)


# -- The machine and memory ---------------------------------------------------

def machine_description():
  """nproc, the CPU (`kerasvae.artifacts.cpu_description`), Python/TF/Keras versions, whether
  TensorFlow runs oneDNN's kernels or Eigen's, and the kernel switches set."""
  import keras  # pylint: disable=import-outside-toplevel
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  machine = artifacts.machine()  # what every step's metadata records
  kernels = "oneDNN" if machine["onednn"] else "Eigen (oneDNN off)"
  switches = "".join(f", {k}={v}" for k, v in machine.get("kernel_switches", {}).items())
  return (f"{machine['cores']} cores ({machine['usable_cores']} usable), {machine['cpu']}; "
          f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__}; TensorFlow kernels: {kernels}{switches}")


def load_average():
  return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def reset_peak_memory():
  """Resets this process's peak RSS (Linux: writing 5 to clear_refs resets VmHWM)."""
  try:
    Path("/proc/self/clear_refs").write_text("5")
  except OSError:
    pass


def peak_memory_mb():
  """This process's peak resident set since the last reset, in MB."""
  try:
    for line in Path("/proc/self/status").read_text().splitlines():
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  import resource  # pylint: disable=import-outside-toplevel
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextlib.contextmanager
def peak_memory(out, key):
  reset_peak_memory()
  try:
    yield
  finally:
    out[key] = max(out.get(key, 0.0), peak_memory_mb())


# -- Data -------------------------------------------------------------------

def ingest_mnist(mnist_dir, output_dir, binarize="static"):
  """An MNIST Examples artifact split as mnist_vae.yaml (first 9,000 train, last 1,000 eval).

  `static` binarisation (x > 0.5 once, at ingest) gives all three variants the same
  fixed {0, 1} pixels; `dynamic` (mnist_vae.yaml's: a Bernoulli draw per epoch in the
  reader) is the project's extra row.
  """
  from kerasvae.data.ingest import ingest  # pylint: disable=import-outside-toplevel
  mnist_dir = Path(mnist_dir)
  return ingest({"data": {"source": "idx", "idx": {
      "images": str(mnist_dir / "t10k-images-idx3-ubyte.gz"),
      "labels": str(mnist_dir / "t10k-labels-idx1-ubyte.gz")}},
                 "split": {"method": "index", "validation_start": MNIST_TRAIN,
                           "eval_start": MNIST_TEST_START},
                 "binarize": binarize}, output_dir, force=True)


def ingest_dsprites(num_examples, output_dir):
  """A dSprites Examples artifact (64x64x1, binary pixels) with `num_examples` images."""
  from kerasvae.data.ingest import ingest  # pylint: disable=import-outside-toplevel
  return ingest({"data": {"source": "dsprites", "dsprites": {"num_examples": num_examples,
                                                             "seed": 0}},
                 "split": {"eval_fraction": 0.05}}, output_dir, force=True)


def reader_rate(artifact_dir, batch_size, seconds):
  """Examples/s of the training reader alone (as `kerasvae train` builds it), after a warm-up epoch."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  meta = reader.read_metadata(artifact_dir)
  count = meta["splits"][reader.split_name(meta, "train")]["num_examples"]
  ds = reader.make_dataset(artifact_dir, "train", batch_size, shuffle=True, seed=0, repeat=True,
                           drop_remainder=True, deterministic=True)
  iterator = iter(ds)
  for _ in range(max(1, count // batch_size) + 2):  # fill the cache
    next(iterator)
  n = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(iterator)["image"].numpy()
    n += 1
  return n * batch_size / (time.perf_counter() - start)


# -- (1) the project's training, exactly as `kerasvae train` runs it ----------

MNIST_MODEL = {"kind": "vae", "latent_dim": 20, "architecture": "mlp", "hidden_units": [400],
               "vae": {"likelihood": "bernoulli"}}
DSPRITES_MODEL = {"kind": "vae", "latent_dim": 10, "architecture": "conv",
                  "filters": [32, 32, 64, 64], "dense_units": 256, "vae": {"kl_weight": 4.0}}


def _epoch_end_times(log_dir):
  """{epoch: wall time of the last TensorBoard event of that step} over the train and eval logs.

  An epoch's scalars are written after its eval and checkpoint, its images after the scalars:
  the last event of step e is the end of everything epoch e did.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  times = {}
  for path in sorted(Path(log_dir).glob("*/events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      if event.summary.value and event.step > 0:
        times[int(event.step)] = max(times.get(int(event.step), 0.0), event.wall_time)
  return times


def project_rate(examples_dir, model, batch_size, epochs, work_dir, learning_rate=1e-3,
                 steps_per_epoch=None, **train):
  """(epoch rate, step rate) in examples/s of `kerasvae.steps.train.run`, without epoch 1.

  `train` overrides TrainConfig fields (steps_per_execution, jit_compile, ...).
  """
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import train as train_step  # pylint: disable=import-outside-toplevel
  config = config_lib.from_dict(configs.PipelineConfig, {
      "model": model,
      "train": dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                    steps_per_epoch=steps_per_epoch, **train)}, where="config")
  train_dir = Path(tempfile.mkdtemp(prefix="train-", dir=work_dir))
  with contextlib.redirect_stdout(io.StringIO()):  # one line per epoch
    train_step.run(config, examples_dir, train_dir)
  history = json.loads((train_dir / "history.json").read_text())  # a list: one record per epoch
  steady = history[1:]
  step_rate = max(r["examples_per_second"] for r in steady)
  examples = (history[0]["examples_per_second"] * history[0]["seconds"])  # per epoch
  walls = _epoch_end_times(train_dir / "logs")
  # From the end of epoch 1 to the end of epoch E-1: epochs 2..E-1, each with the per-epoch work
  # the config asks for (the last epoch always evaluates and checkpoints, whatever the config).
  first, last = min(walls), max(walls) - (1 if len(walls) > 3 else 0)
  epoch_rate = examples * (last - first) / (walls[last] - walls[first])
  return epoch_rate, step_rate


# -- (2) the bare XLA step ---------------------------------------------------

def make_networks(model, image_shape):
  from kerasvae.models import networks  # pylint: disable=import-outside-toplevel
  kwargs = {k: tuple(model[k]) for k in ("hidden_units", "filters") if k in model}
  if "dense_units" in model:
    kwargs["dense_units"] = model["dense_units"]
  encoder = networks.make_encoder(model["architecture"], image_shape, 2 * model["latent_dim"],
                                  **kwargs)
  decoder = networks.make_decoder(model["architecture"], image_shape, model["latent_dim"],
                                  **kwargs)
  return encoder, decoder


def make_bare_step(images, model, batch_size, learning_rate=1e-3, jit_compile=True):
  """(step, batches): the bare compiled step (forward, fused loss, gradients, Adam) and its batches."""
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  encoder, decoder = make_networks(model, images.shape[1:])
  variables = encoder.trainable_variables + decoder.trainable_variables
  optimizer = keras.optimizers.Adam(learning_rate)
  optimizer.build(variables)
  kl_weight = float(model.get("kl_weight", 1.0))

  @tf.function(jit_compile=jit_compile)
  def step(x):  # x [B, H, W, C] in {0, 1}
    with tf.GradientTape() as tape:
      mean, log_var = tf.split(encoder(x, training=True), 2, axis=-1)  # [B, D] x2
      z = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))  # [B, D]
      logits = decoder(z, training=True)  # [B, H, W, C]
      reconstruction = tf.reduce_sum(
          tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=(1, 2, 3))
      kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var, axis=-1)
      loss = tf.reduce_mean(reconstruction + kl_weight * kl)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  steps = len(images) // batch_size
  return step, [tf.constant(images[i * batch_size:(i + 1) * batch_size]) for i in range(steps)]


def bare_rate(images, model, batch_size, epochs, learning_rate=1e-3, jit_compile=True):
  """Examples/s of one compiled step (forward, fused loss, gradients, Adam) on in-memory batches."""
  step, batches = make_bare_step(images, model, batch_size, learning_rate, jit_compile)
  return best_step_rate(step, batches, batch_size, epochs, "The bare step")


def best_step_rate(step, batches, batch_size, epochs, what):
  """Examples/s of `step` over `batches`, the best of `epochs` passes after the first.

  The first pass compiles (TF) or warms oneDNN's primitive cache (PyTorch); `float(loss)` after
  each pass waits for its last step. Raises RuntimeError naming `what` if the loss is not finite.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  best = 0.0
  for epoch in range(epochs):
    start = time.perf_counter()
    for x in batches:
      loss = step(x)
    value = float(loss)
    if epoch:
      best = max(best, len(batches) * batch_size / (time.perf_counter() - start))
  if not np.isfinite(value):
    raise RuntimeError(f"{what}'s loss is {value}")
  return best


# -- (3) the keras.io idiom ---------------------------------------------------

def keras_io_rate(images, model, batch_size, epochs, learning_rate=1e-3):
  """Examples/s of the keras.io VAE pattern (custom train_step, model.fit on NumPy)."""
  import keras  # pylint: disable=import-outside-toplevel
  from keras import ops  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  class Sampling(keras.layers.Layer):
    """z = mean + exp(log_var / 2) * eps, as in keras.io/examples/generative/vae."""

    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
      z_mean, z_log_var = inputs
      epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
      return z_mean + ops.exp(0.5 * z_log_var) * epsilon

  class KerasIoVAE(keras.Model):
    def __init__(self, encoder, decoder, kl_weight=1.0, **kwargs):
      super().__init__(**kwargs)
      self.encoder, self.decoder, self.kl_weight = encoder, decoder, kl_weight
      self.sampling = Sampling()
      self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
      self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
      self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
      return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
      with tf.GradientTape() as tape:
        z_mean, z_log_var = ops.split(self.encoder(data), 2, axis=-1)
        z = self.sampling([z_mean, z_log_var])
        reconstruction = ops.sigmoid(self.decoder(z))
        reconstruction_loss = ops.mean(ops.sum(
            keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
        kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
        total_loss = reconstruction_loss + self.kl_weight * kl_loss
      grads = tape.gradient(total_loss, self.trainable_weights)
      self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
      self.total_loss_tracker.update_state(total_loss)
      self.reconstruction_loss_tracker.update_state(reconstruction_loss)
      self.kl_loss_tracker.update_state(kl_loss)
      return {"loss": self.total_loss_tracker.result(),
              "reconstruction_loss": self.reconstruction_loss_tracker.result(),
              "kl_loss": self.kl_loss_tracker.result()}

  class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
      self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      self.seconds.append(time.perf_counter() - self.start)

  encoder, decoder = make_networks(model, images.shape[1:])
  vae = KerasIoVAE(encoder, decoder, kl_weight=float(model.get("kl_weight", 1.0)))
  vae.compile(optimizer=keras.optimizers.Adam(learning_rate))
  times = EpochTimes()
  vae.fit(images, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
          callbacks=[times])
  return max(len(images) / s for s in times.seconds[1:])  # fit also trains the partial batch


# -- (4) PyTorch, for the convolutional network ----------------------------

def torch_available():
  """Whether PyTorch is importable (an optional peer for the conv rows, never a dependency)."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  return importlib.util.find_spec("torch") is not None


def make_torch_conv_step(images, model, batch_size, learning_rate=1e-3, channels_last=True):
  """(step, batches): the same conv beta-VAE step in PyTorch (eager, the usual idiom), on CPU tensors.

  The network is the project's conv encoder/decoder (`networks.make_encoder/make_decoder`,
  disentanglement_lib's): 4x4 stride-2 convolutions with padding 1 (TensorFlow's "same" for
  even sizes), a dense layer, the transposed convolutions back; the same loss (Bernoulli
  reconstruction through `binary_cross_entropy_with_logits`, the analytic KL times kl_weight)
  and Adam. `channels_last` stores activations and weights in NHWC (`torch.channels_last`),
  the layout oneDNN convolutions prefer on CPU; otherwise PyTorch's default NCHW.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel
  height, width, channels = images.shape[1:]
  filters, dense_units, latent_dim = list(model["filters"]), model["dense_units"], model["latent_dim"]
  kl_weight = float(model.get("kl_weight", 1.0))
  factor = 2 ** len(filters)
  small = (height // factor, width // factor)
  encoder_layers, previous = [], channels
  for f in filters:
    encoder_layers += [nn.Conv2d(previous, f, 4, stride=2, padding=1), nn.ReLU()]
    previous = f
  encoder = nn.Sequential(*encoder_layers, nn.Flatten(),
                          nn.Linear(previous * small[0] * small[1], dense_units), nn.ReLU(),
                          nn.Linear(dense_units, 2 * latent_dim))
  decoder_layers = [nn.Linear(latent_dim, dense_units), nn.ReLU(),
                    nn.Linear(dense_units, filters[-1] * small[0] * small[1]), nn.ReLU(),
                    nn.Unflatten(1, (filters[-1], small[0], small[1]))]
  previous = filters[-1]
  for f in reversed(filters[:-1]):
    decoder_layers += [nn.ConvTranspose2d(previous, f, 4, stride=2, padding=1), nn.ReLU()]
    previous = f
  decoder_layers.append(nn.ConvTranspose2d(previous, channels, 4, stride=2, padding=1))
  decoder = nn.Sequential(*decoder_layers)
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  encoder, decoder = encoder.to(memory_format=memory_format), decoder.to(memory_format=memory_format)
  optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()),
                               lr=learning_rate)

  def step(x):  # x [B, C, H, W] in {0, 1}
    optimizer.zero_grad(set_to_none=True)
    mean, log_var = encoder(x).chunk(2, dim=-1)  # [B, D] x2
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)  # [B, D]
    logits = decoder(z)  # [B, C, H, W]
    reconstruction = nn.functional.binary_cross_entropy_with_logits(
        logits, x, reduction="none").sum(dim=(1, 2, 3))
    kl = 0.5 * (log_var.exp() + mean.square() - 1.0 - log_var).sum(dim=-1)
    loss = (reconstruction + kl_weight * kl).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()

  steps = len(images) // batch_size
  nchw = np.ascontiguousarray(np.transpose(np.asarray(images, np.float32), (0, 3, 1, 2)))
  return step, [torch.from_numpy(nchw[i * batch_size:(i + 1) * batch_size]).to(
      memory_format=memory_format) for i in range(steps)]


def torch_conv_rate(images, model, batch_size, epochs, learning_rate=1e-3, channels_last=True):
  """Examples/s of `make_torch_conv_step`'s step over `epochs` passes (the first warms up)."""
  step, batches = make_torch_conv_step(images, model, batch_size, learning_rate, channels_last)
  return best_step_rate(step, batches, batch_size, epochs, "The PyTorch step")


def torch_conv_rate_subprocess(images, model, batch_size, epochs, work_dir, channels_last=True,
                               env=None):
  """`torch_conv_rate` in a fresh process that never imports TensorFlow; `env` adds variables.

  In the process that runs TensorFlow, PyTorch's OpenMP threads and TensorFlow's thread pools
  fight over the 2 cores: the same step measured 13 examples/s there against ~500 alone.
  """
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  path = Path(work_dir) / "torch-images.npy"
  if not path.exists():
    np.save(path, np.asarray(images, np.float32))
  code = ("import json, sys, numpy as np; from benchmarks.train_throughput import torch_conv_rate; "
          "a = json.loads(sys.argv[1]); "
          "print(torch_conv_rate(np.load(a['path']), a['model'], a['batch_size'], a['epochs'], "
          "channels_last=a['channels_last']))")
  arguments = {"path": str(path), "model": model, "batch_size": batch_size, "epochs": epochs,
               "channels_last": channels_last}
  repo = str(Path(__file__).resolve().parents[1])
  env = dict(os.environ, **(env or {}), PYTHONPATH=os.pathsep.join(
      [repo] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  result = subprocess.run([sys.executable, "-c", code, json.dumps(arguments)], env=env,
                          capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"The PyTorch step failed (exit {result.returncode}):\n{result.stderr}")
  return float(result.stdout.strip().splitlines()[-1])


# -- The sections -----------------------------------------------------------

def train_images(examples_dir, limit=None):
  """The training split in memory (one fixed Bernoulli draw for a dynamic artifact)."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  return reader.load_split(examples_dir, "train", limit=limit)["image"]


NEVER = 10**6  # an every-N-epochs interval that never comes within a measurement


def run_section(name, examples_dir, model, batch_sizes, args, work_dir, steps_per_epoch=None,
                images_limit=None, bare_without_xla=False, extra_project=None,
                full_epoch_examples=None, torch_rows=False):
  """Interleaved rounds of reader, bare, keras and project; returns {(batch, variant): value}.

  `torch_rows`: also the same step in PyTorch, channels-last and default layout (conv only).
  `args.compare_only` keeps the step comparison: the bare step without XLA, PyTorch and the
  project's train-only row.

  `extra_project`: (label, examples_dir) of one more project variant at the last
  steps_per_execution (another artifact of the same images). `full_epoch_examples`: one more
  variant with the defaults' per-epoch work after epochs of that many examples (the
  artifact's images cycled), the length of an epoch of the full dataset.
  """
  images = train_images(examples_dir, images_limit)
  results, memory = {}, {}
  for batch_size in batch_sizes:
    spe = steps_per_epoch and max(1, steps_per_epoch(batch_size))
    epochs = args.epochs
    for r in range(args.rounds):
      if not args.compare_only:
        with peak_memory(memory, (batch_size, "reader")):
          rate = reader_rate(examples_dir, batch_size, args.reader_seconds)
        results.setdefault((batch_size, "reader"), []).append(rate)
        with peak_memory(memory, (batch_size, "bare")):
          rate = bare_rate(images, model, batch_size, epochs)
        results.setdefault((batch_size, "bare"), []).append(rate)
      if bare_without_xla:
        with peak_memory(memory, (batch_size, "bare, no XLA")):
          rate = bare_rate(images, model, batch_size, epochs, jit_compile=False)
        results.setdefault((batch_size, "bare, no XLA"), []).append(rate)
      if torch_rows:
        # OpenMP's default wait policy spins between parallel regions: on a loaded machine the
        # spinning thread takes the core its partner needs (64 against 287 examples/s, batch 64,
        # load 8 on 2 cores). PASSIVE sleeps instead, as TensorFlow's pools do after a short spin.
        torch_variants = (
            ("torch channels-last", True, None), ("torch default", False, None),
            ("torch channels-last, OMP passive", True, {"OMP_WAIT_POLICY": "PASSIVE"}))
        for label, channels_last, torch_env in torch_variants[:1 if args.quick else None]:
          rate = torch_conv_rate_subprocess(images, model, batch_size, epochs, work_dir,
                                            channels_last=channels_last, env=torch_env)
          results.setdefault((batch_size, label), []).append(rate)
      if not args.compare_only:
        with peak_memory(memory, (batch_size, "keras")):
          rate = keras_io_rate(images, model, batch_size, epochs)
        results.setdefault((batch_size, "keras"), []).append(rate)
      n = args.steps_per_execution[-1]  # the extra rows run at the last value
      variants = [] if args.compare_only else [
          (f"project spe={m}", {"steps_per_execution": m}) for m in args.steps_per_execution]
      variants.append((f"project spe={n} train only", {
          "steps_per_execution": n, "eval_every_epochs": NEVER,
          "checkpoint_every_epochs": NEVER, "images_every_epochs": NEVER}))
      if args.compare_only:
        variants = variants[-1:]
      if extra_project and not args.compare_only:
        variants.append((f"project spe={n} {extra_project[0]}",
                         {"steps_per_execution": n, "examples_dir": extra_project[1]}))
      if full_epoch_examples and not args.compare_only:  # per-epoch work over a full-length epoch
        variants.append((f"project spe={n} {full_epoch_examples}-example epochs", {
            "steps_per_execution": n,
            "steps_per_epoch": max(1, full_epoch_examples // batch_size)}))
      if args.project_without_xla and not args.compare_only:
        variants.append((f"project spe={n} no XLA",
                         {"steps_per_execution": n, "jit_compile": "false"}))
      for key, overrides in variants:
        source = overrides.pop("examples_dir", examples_dir)
        overrides.setdefault("steps_per_epoch", spe)
        with peak_memory(memory, (batch_size, key)):
          epoch_rate, step_rate = project_rate(source, model, batch_size, epochs, work_dir,
                                               **overrides)
        results.setdefault((batch_size, key), []).append(epoch_rate)
        results.setdefault((batch_size, key + " (step)"), []).append(step_rate)
      print(f"  {name} batch {batch_size} round {r + 1}: " + ", ".join(
          f"{k[1]} {v[-1]:,.0f}" for k, v in results.items() if k[0] == batch_size)
            + f" ex/s; {load_average()}", flush=True)
  return {k: max(v) for k, v in results.items()}, memory


def print_table(name, best, memory, batch_sizes, steps_per_execution):
  print(f"\n{name} (examples/s, best of the rounds; memory = the phase's peak RSS)")
  print(f"{'batch':>6} {'variant':<46} {'ex/s':>10} {'peak MB':>9}")
  for batch_size in batch_sizes:
    for (b, variant), value in best.items():
      if b == batch_size:
        mem = memory.get((b, variant.replace(" (step)", "")), float("nan"))
        print(f"{b:>6} {variant:<46} {value:>10,.0f} {mem:>9,.0f}")
    bare = max(best.get((batch_size, "bare"), 0.0), best.get((batch_size, "bare, no XLA"), 0.0))
    project = best.get((batch_size, f"project spe={steps_per_execution} train only (step)"), 0.0)
    for label in ("torch channels-last", "torch channels-last, OMP passive"):
      torch_rate = best.get((batch_size, label))
      if torch_rate:
        print(f"{batch_size:>6} against {label}: bare/torch {bare / torch_rate:.2f}, "
              f"project train only (step)/torch {project / torch_rate:.2f}")
    keras_rate = best.get((batch_size, "keras"))
    if not keras_rate:
      continue
    for (b, variant), epoch in best.items():
      if b != batch_size or not variant.startswith("project") or variant.endswith("(step)"):
        continue
      step = best[(b, variant + " (step)")]
      print(f"{b:>6} {variant}: (1)/(2) epoch {epoch / bare:.2f}, step {step / bare:.2f}; "
            f"(1)/(3) epoch {epoch / keras_rate:.2f}, step {step / keras_rate:.2f}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = Path(__file__).resolve().parents[1]
  parser.add_argument("--mnist-dir", default=str(repo.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--rounds", type=int, default=3, help="Interleaved repetitions (best kept).")
  parser.add_argument("--epochs", type=int, default=6, help="Epochs per measurement, 1 warm-up.")
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
  parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1, 10],
                      help="train.steps_per_execution values of (1).")
  parser.add_argument("--project-without-xla", action="store_true",
                      help="Also time (1) with train.jit_compile=false.")
  parser.add_argument("--reader-seconds", type=float, default=3.0)
  parser.add_argument("--dsprites-examples", type=int, default=20000)
  parser.add_argument("--conv-examples-per-epoch", type=int, default=4096,
                      help="Conv epochs are cut to about this many examples (2 CPU cores).")
  parser.add_argument("--no-conv", action="store_true", help="Skip the dSprites section.")
  parser.add_argument("--no-mlp", action="store_true", help="Skip the MNIST section.")
  parser.add_argument("--conv-batch-sizes", type=int, nargs="+", default=None,
                      help="Batch sizes of the dSprites section (default: --batch-sizes).")
  parser.add_argument("--no-torch", action="store_true",
                      help="Skip the PyTorch rows of the dSprites section (run when torch imports).")
  parser.add_argument("--compare-only", action="store_true",
                      help="Only the step comparison: bare step (conv: without XLA), PyTorch, "
                           "and the project's train-only row.")
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  parser.add_argument("--output", default=None, help="Work directory (default: a temp dir).")
  args = parser.parse_args(argv)
  if args.quick:  # a smoke run: every variant, a few steps each
    args.rounds, args.epochs, args.reader_seconds = 1, 2, 0.5
    args.batch_sizes, args.steps_per_execution = [128], [10]
    args.project_without_xla = False
    args.dsprites_examples, args.conv_examples_per_epoch = 1000, 256

  import tensorflow as tf  # pylint: disable=import-outside-toplevel,unused-import
  tf.get_logger().setLevel("ERROR")
  work_dir = Path(args.output or tempfile.mkdtemp(prefix="kerasvae-train-bench-"))
  work_dir.mkdir(parents=True, exist_ok=True)
  print(f"machine: {machine_description()}")
  if not args.no_conv and not args.no_torch and torch_available():
    import importlib.metadata  # pylint: disable=import-outside-toplevel
    caps = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ}
    print(f"PyTorch rows: torch {importlib.metadata.version('torch')}"
          + (f"; ISA capped by {caps}" if caps else ""))
  print(f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load_average()}")
  results = {}
  if not args.no_mlp:
    mnist = ingest_mnist(args.mnist_dir, work_dir / "mnist")
    dynamic = ingest_mnist(args.mnist_dir, work_dir / "mnist-dynamic", binarize="dynamic")
    best, memory = run_section("MNIST MLP", mnist, MNIST_MODEL, args.batch_sizes, args, work_dir,
                               images_limit=QUICK_STEPS * 128 if args.quick else None,
                               steps_per_epoch=(lambda b: QUICK_STEPS) if args.quick else None,
                               extra_project=("dynamic binarisation", dynamic),
                               full_epoch_examples=None if args.quick else MNIST_FULL_TRAIN)
    print_table("MNIST MLP VAE 784-400-20-400-784", best, memory, args.batch_sizes,
                args.steps_per_execution[-1])
    results["mnist"] = best, memory
  if not args.no_conv:
    dsprites = ingest_dsprites(args.dsprites_examples, work_dir / "dsprites")
    per_epoch = args.conv_examples_per_epoch
    best, memory = run_section(
        "dSprites conv", dsprites, DSPRITES_MODEL, args.conv_batch_sizes or args.batch_sizes,
        args, work_dir,
        steps_per_epoch=lambda b: per_epoch // b, images_limit=per_epoch,
        bare_without_xla=True, torch_rows=not args.no_torch and torch_available())
    print_table(f"dSprites conv β-VAE 64x64 (epochs of ~{per_epoch} examples)", best, memory,
                args.conv_batch_sizes or args.batch_sizes, args.steps_per_execution[-1])
    results["dsprites"] = best, memory
  print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load_average()}")
  return results


if __name__ == "__main__":
  main()
