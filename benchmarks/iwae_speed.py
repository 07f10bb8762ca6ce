"""Time of the IWAE log-likelihood (K = 5000) on 1,000 MNIST digits, as `kerasvae evaluate` computes it.

Usage:
  python -m benchmarks.iwae_speed [--mnist-dir ../shared/data/mnist] [--samples 5000]
      [--examples 1000] [--quick]

Trains the classic MLP VAE (784-400-20-400-784) for one epoch with
`kerasvae.steps.train.run` on the first 9,000 t10k digits, then times
`kerasvae.metrics.likelihood.iwae_metrics` on the 1,000 eval digits (one fixed
binarisation), as the evaluate step calls it, and variants: other chunk sizes
(decoded images per compiled call) and the chunk function XLA-compiled. The
goal is under 2 minutes on 2 CPU cores.
"""

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def trained_mnist_vae(mnist_dir, work_dir):
  """An MNIST MLP VAE trained for one epoch by the train step, and its Examples artifact."""
  from benchmarks.train_throughput import MNIST_MODEL  # pylint: disable=import-outside-toplevel
  from benchmarks.train_throughput import ingest_mnist  # pylint: disable=import-outside-toplevel
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import train as train_step  # pylint: disable=import-outside-toplevel
  examples = ingest_mnist(mnist_dir, Path(work_dir) / "mnist")
  config = config_lib.from_dict(configs.PipelineConfig, {
      "model": MNIST_MODEL, "train": {"epochs": 1, "batch_size": 128, "learning_rate": 1e-3}})
  with contextlib.redirect_stdout(io.StringIO()):
    train_step.run(config, examples, Path(work_dir) / "train")
  return train_step.load_model(Path(work_dir) / "train"), examples


def time_iwae(model, images, num_samples, batch_size=100, chunk_size=None, jit_compile=False):
  """(seconds, metrics) of `iwae_metrics`; `chunk_size`/`jit_compile` swap the chunk function."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import likelihood  # pylint: disable=import-outside-toplevel
  model._iwae_chunk_fn = tf.function(  # pylint: disable=protected-access
      model._iwae_log_weights, reduce_retracing=True,  # pylint: disable=protected-access
      jit_compile=jit_compile)
  original = model.iwae_log_likelihood
  if chunk_size is not None:
    model.iwae_log_likelihood = lambda x, num_samples: original(x, num_samples, chunk_size)
  try:
    likelihood.iwae_metrics(model, images[:batch_size], num_samples=min(num_samples, 500),
                            batch_size=batch_size)  # traces (and compiles) the chunk shapes
    start = time.perf_counter()
    metrics = likelihood.iwae_metrics(model, images, num_samples=num_samples,
                                      batch_size=batch_size)
    return time.perf_counter() - start, metrics
  finally:
    model.iwae_log_likelihood = original


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = Path(__file__).resolve().parents[1]
  parser.add_argument("--mnist-dir", default=str(repo.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--samples", type=int, default=5000, help="K.")
  parser.add_argument("--examples", type=int, default=1000)
  parser.add_argument("--variants", action="store_true",
                      help="Also time other chunk sizes and the XLA-compiled chunk function.")
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  args = parser.parse_args(argv)
  if args.quick:
    args.samples, args.examples = 200, 100

  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel("ERROR")
  print("{} cores, TensorFlow {}; load average {:.2f} {:.2f} {:.2f}".format(
      os.cpu_count(), tf.__version__, *os.getloadavg()))
  with tempfile.TemporaryDirectory(prefix="kerasvae-iwae-bench-") as work_dir:
    model, examples = trained_mnist_vae(args.mnist_dir, work_dir)
    images = reader.load_split(examples, "eval", limit=args.examples)["image"]
  variants = [("evaluate step (default)", {})]
  if args.variants:
    variants += [("chunk 100 samples x 100 images", {"chunk_size": 100}),
                 ("chunk 2000 samples x 100 images", {"chunk_size": 2000}),
                 ("XLA chunk function, default chunks", {"jit_compile": True})]
  results = {}
  for name, kwargs in variants:
    seconds, metrics = time_iwae(model, images, args.samples, **kwargs)
    results[name] = seconds
    print(f"IWAE K={args.samples} on {len(images)} digits, {name}: {seconds:.1f} s "
          f"(log p(x) {metrics['iwae_log_likelihood']:.2f} ± "
          f"{metrics['iwae_log_likelihood_stderr']:.2f} nats); load average "
          "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
  return results


if __name__ == "__main__":
  main()
