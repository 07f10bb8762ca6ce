"""How the served `log_likelihood` depends on K: the bound's rise, its standard error and the time.

Usage:
  python -m benchmarks.log_likelihood_num_samples [--mnist-dir ../shared/data/mnist] [--quick]

Trains the classic MNIST VAE (784-400-20-400-784, Bernoulli decoder, Adam
1e-3, batch 128) on the first 9,000 statically binarised digits of the MNIST
test file, exports it with `kerasvae.serving.export_model`, loads the
SavedModel and scores `--examples` of the last 1,000 digits with the
`log_likelihood` signature for each K (batches of 64). For each K it prints
the mean bound, its rise left to the largest K (the bias that more samples
would remove, up to the largest K's own), the mean per-image standard error,
the spread between two seeds where measured
(root mean square of the difference / √2), and the seconds per image.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KS = (1, 10, 30, 100, 300, 1000, 3000, 5000)
MNIST_TRAIN = 9000


def load_digits(mnist_dir):
  from kerasvae.data import sources  # pylint: disable=import-outside-toplevel
  images = sources.read_idx(Path(mnist_dir) / "t10k-images-idx3-ubyte.gz")  # [10000, 28, 28]
  return (images[..., None] / 255.0 > 0.5).astype("float32")  # static binarisation


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = Path(__file__).resolve().parents[1]
  parser.add_argument("--mnist-dir", default=str(repo.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--epochs", type=int, default=30)
  parser.add_argument("--examples", type=int, default=256)
  parser.add_argument("--output", default=None, help="Keep the SavedModel here.")
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  args = parser.parse_args(argv)
  ks = KS
  if args.quick:
    args.epochs, args.examples, ks = 1, 64, (1, 10, 100)
  import tempfile  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import kerasvae  # pylint: disable=import-outside-toplevel
  from kerasvae import serving  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import iwae  # pylint: disable=import-outside-toplevel

  print("{} cores; load average {:.2f} {:.2f} {:.2f}".format(os.cpu_count(), *os.getloadavg()))
  digits = load_digits(args.mnist_dir)
  train, held_out = digits[:MNIST_TRAIN], digits[MNIST_TRAIN:][:args.examples]
  keras_seed = 0
  tf.keras.utils.set_random_seed(keras_seed)
  vae = kerasvae.VAE((28, 28, 1), latent_dim=20, hidden_units=(400,))
  vae.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  start = time.perf_counter()
  vae.fit(train, epochs=args.epochs, batch_size=128, verbose=0)
  print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s; held-out ELBO "
        f"{float(np.mean(vae.elbo(held_out, seed=tf.constant([0, 0]))['elbo'])):.2f}")
  base = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="kerasvae-ll-k-"))
  version_dir = serving.export_model(vae, base, "mnist_vae")
  fn = tf.saved_model.load(str(version_dir)).signatures["log_likelihood"]

  def score(k):
    parts = [fn(images=tf.constant(held_out[i:i + 64]), num_samples=tf.constant(k))
             for i in range(0, len(held_out), 64)]
    return {name: np.concatenate([p[name].numpy() for p in parts]) for name in parts[0]}

  rows = {}
  for k in ks:
    score(k)  # the first call of a K is not timed
    start = time.perf_counter()
    out = score(k)
    rows[k] = (out, (time.perf_counter() - start) / len(held_out))
  # A second seed (the signature's is fixed), for the spread the standard error predicts.
  seed_spread = {}
  for k in ks:
    if k < 10 or k > 1000:
      continue
    other = iwae.estimate(vae, held_out, tf.constant(k), seed=(1, 0))
    # The root mean square, not the SD over images: with common random numbers an error
    # shared by all images is part of each image's error.
    difference = rows[k][0]["log_likelihood"] - other["log_likelihood"].numpy()
    seed_spread[k] = float(np.sqrt(np.mean(difference ** 2) / 2.0))
  top = rows[ks[-1]][0]["log_likelihood"]
  print(f"{len(held_out)} held-out digits; rise left = mean(bound at K={ks[-1]} - bound at K)")
  print("| K | mean log_likelihood | rise left to K={} | mean standard_error | seed-to-seed RMS "
        "| ms per image (batch 64) |".format(ks[-1]))
  print("|---:|---:|---:|---:|---:|---:|")
  for k, (out, seconds) in rows.items():
    spread = f"{seed_spread[k]:.3f}" if k in seed_spread else "-"
    se = np.nanmean(out["standard_error"]) if k > 1 else float("nan")
    print(f"| {k} | {out['log_likelihood'].mean():.3f} | {np.mean(top - out['log_likelihood']):.3f} "
          f"| {se:.3f} | {spread} | {seconds * 1000:.2f} |")
  print(f"one-sample ELBO (K-independent): {rows[ks[-1]][0]['elbo'].mean():.3f}")
  print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
  return rows


if __name__ == "__main__":
  main()
