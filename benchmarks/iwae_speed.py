"""Time of the IWAE log-likelihood (K = 5000) on 1,000 MNIST digits, as `kerasvae evaluate` computes it.

Usage:
  python -m benchmarks.iwae_speed [--mnist-dir ../shared/data/mnist] [--samples 5000]
      [--examples 1000] [--quick]
  python -m benchmarks.iwae_speed --priors [--examples 100] [--rounds 2] [--with-broadcast]

`--priors` times the three priors on the priors study's network (784-300-300-40,
500 mixture components), each trained for one epoch by the train step, in
interleaved rounds (gaussian, gmm, vamp, gaussian, ...) so that the ratios to the
Gaussian prior come from one run under one load; `--with-broadcast` adds the
VampPrior with the mixture density computed by broadcasting to [K·B, C, D] (the
computation before `priors.mixture_log_prob`). The goal: each mixture within 2x of
the Gaussian prior.

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
  from kerasvae.models import importance_sampling as iwae  # pylint: disable=import-outside-toplevel
  iwae._CHUNK_FUNCTIONS[model] = tf.function(  # pylint: disable=protected-access
      lambda *tensors: iwae._accumulate(model, *tensors),  # pylint: disable=protected-access
      reduce_retracing=True, jit_compile=jit_compile)
  original = model.iwae_log_likelihood
  if chunk_size is not None:
    model.iwae_log_likelihood = lambda x, num_samples, seed: original(
        x, num_samples, chunk_size, seed=seed)
  try:
    likelihood.iwae_metrics(model, images[:batch_size], num_samples=min(num_samples, 500),
                            batch_size=batch_size)  # traces (and compiles) the chunk shapes
    start = time.perf_counter()
    metrics = likelihood.iwae_metrics(model, images, num_samples=num_samples,
                                      batch_size=batch_size)
    return time.perf_counter() - start, metrics
  finally:
    model.iwae_log_likelihood = original


PRIORS_MODEL = {"kind": "vae", "latent_dim": 40, "architecture": "mlp",
                "hidden_units": [300, 300],
                "vae": {"likelihood": "bernoulli", "num_components": 500}}


def trained_prior_vaes(mnist_dir, work_dir, priors=("gaussian", "gmm", "vamp")):
  """{prior: the priors study's VAE with that prior, trained for one epoch}, and the Examples."""
  from benchmarks.train_throughput import ingest_mnist  # pylint: disable=import-outside-toplevel
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import train as train_step  # pylint: disable=import-outside-toplevel
  examples = ingest_mnist(mnist_dir, Path(work_dir) / "mnist")
  models = {}
  for prior in priors:
    config = config_lib.from_dict(configs.PipelineConfig, {
        "model": {**PRIORS_MODEL, "vae": {**PRIORS_MODEL["vae"], "prior": prior}},
        "train": {"epochs": 1, "batch_size": 100, "learning_rate": 5e-4}})
    with contextlib.redirect_stdout(io.StringIO()):
      train_step.run(config, examples, Path(work_dir) / f"train-{prior}")
    models[prior] = train_step.load_model(Path(work_dir) / f"train-{prior}")
  return models, examples


def broadcast_vamp_log_prob(prior):
  """The VampPrior's log p(z) by broadcasting to [..., C, D]: the computation before the matmuls."""
  import math  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae.models import distributions  # pylint: disable=import-outside-toplevel

  def log_prob(z, encoder=None):
    mean, log_var = prior.component_params(encoder)  # [C, D]
    log_components = distributions.diagonal_gaussian_log_prob(
        z[..., None, :], mean, log_var)  # [..., C]
    return tf.reduce_logsumexp(log_components, axis=-1) - math.log(prior.num_components)
  return log_prob


def compare_priors(args):
  """Interleaved rounds of the IWAE bound with each prior; returns {variant: [seconds]}."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory(prefix="kerasvae-iwae-bench-") as work_dir:
    models, examples = trained_prior_vaes(args.mnist_dir, work_dir)
    images = reader.load_split(examples, "eval", limit=args.examples)["image"]
  variants = [(prior, models[prior], None) for prior in models]
  if args.with_broadcast:  # the same trained VampPrior model, its density computed the old way
    variants.append(("vamp (broadcast, before)", models["vamp"],
                     broadcast_vamp_log_prob(models["vamp"].prior)))
  times = {name: [] for name, _, _ in variants}
  for round_index in range(args.rounds):
    for name, model, log_prob in variants:
      if log_prob is not None:
        model.prior.log_prob = log_prob  # traced into the chunk function time_iwae makes
      try:
        seconds, metrics = time_iwae(model, images, args.samples)
      finally:
        model.prior.__dict__.pop("log_prob", None)
      times[name].append(seconds)
      print(f"round {round_index + 1}: {name:26s} IWAE K={args.samples} on {len(images)} digits "
            f"{seconds:6.1f} s (log p(x) {metrics['iwae_log_likelihood']:.2f} ± "
            f"{metrics['iwae_log_likelihood_stderr']:.2f}); load average "
            "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
  gaussian = min(times["gaussian"])
  for name, seconds in times.items():
    print(f"{name:26s} best {min(seconds):6.1f} s, {min(seconds) / gaussian:.2f}x the Gaussian "
          f"prior's; per 1,000 digits {1000 * min(seconds) / len(images) / 60:.1f} min")
  return times


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = Path(__file__).resolve().parents[1]
  parser.add_argument("--mnist-dir", default=str(repo.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--samples", type=int, default=5000, help="K.")
  parser.add_argument("--examples", type=int, default=1000)
  parser.add_argument("--variants", action="store_true",
                      help="Also time other chunk sizes and the XLA-compiled chunk function.")
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  parser.add_argument("--priors", action="store_true",
                      help="Compare the Gaussian, mixture and VampPrior priors' IWAE time.")
  parser.add_argument("--rounds", type=int, default=2, help="--priors: interleaved rounds.")
  parser.add_argument("--with-broadcast", action="store_true",
                      help="--priors: also the VampPrior density by broadcasting (slow).")
  args = parser.parse_args(argv)
  if args.priors and args.examples == parser.get_default("examples"):
    args.examples = 100
  if args.quick:
    args.samples, args.examples = 200, (20 if args.priors else 100)

  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel("ERROR")
  print("{} cores, TensorFlow {}; load average {:.2f} {:.2f} {:.2f}".format(
      os.cpu_count(), tf.__version__, *os.getloadavg()))
  if args.priors:
    return compare_priors(args)
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
