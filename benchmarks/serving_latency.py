"""Latency of the exported `encode` signature for one image, on the loaded SavedModel.

Usage:
  python -m benchmarks.serving_latency [--calls 1000] [--architecture mlp|conv] [--quick]

Exports an (untrained: latency does not depend on the weights) VAE with
`kerasvae.serving.export_model` to a temporary base directory, then, in a
subprocess that imports only TensorFlow (never kerasvae, as in a serving
container), loads the SavedModel, warms `encode` up and times
`--calls` single-image calls, each one ending with the result fetched as
NumPy. It prints the median, p90 and p99 in milliseconds, in-process
through the signature (`loaded.signatures["encode"]`) and through the
restored function (`loaded.encode`).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Runs in the subprocess: TensorFlow only.
LOAD_AND_TIME = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
assert "kerasvae" not in sys.modules
version_dir, calls, warmup, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
start = time.perf_counter()
loaded = tf.saved_model.load(version_dir)
load_seconds = time.perf_counter() - start
image = tf.constant(np.random.RandomState(0).uniform(size=[1] + shape).astype(np.float32))
out = {"load_seconds": load_seconds, "keras_imported": "keras" in sys.modules}
for name, fn in (("signature", loaded.signatures["encode"]),
                 ("function", lambda images: loaded.encode(images))):
  for _ in range(warmup):
    fn(images=image)["latent_mean"].numpy()
  times = []
  for _ in range(calls):
    t = time.perf_counter()
    fn(images=image)["latent_mean"].numpy()
    times.append(time.perf_counter() - t)
  ms = np.array(times) * 1000.0
  out[name] = {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
               "p99_ms": float(np.percentile(ms, 99)), "min_ms": float(ms.min())}
print(json.dumps(out))
"""


def export_vae(base_dir, architecture):
  """Exports an MNIST MLP VAE (784-400-20) or the dSprites conv VAE; returns the version dir."""
  from kerasvae import models  # pylint: disable=import-outside-toplevel
  from kerasvae import serving  # pylint: disable=import-outside-toplevel
  if architecture == "mlp":
    model = models.VAE(input_shape=(28, 28, 1), latent_dim=20, hidden_units=(400,))
  else:
    model = models.VAE(input_shape=(64, 64, 1), latent_dim=10, architecture="conv",
                       filters=(32, 32, 64, 64), dense_units=256)
  return serving.export_model(model, base_dir, model_name=f"{architecture}_vae"), \
      list(model.image_shape)


def time_encode(version_dir, image_shape, calls, warmup):
  """Runs the TF-only timing subprocess; returns its JSON result."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-c", LOAD_AND_TIME, str(version_dir), str(calls), str(warmup),
       json.dumps(image_shape)], capture_output=True, text=True, env=env, check=False)
  if result.returncode:
    raise RuntimeError(f"The timing subprocess failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--calls", type=int, default=1000)
  parser.add_argument("--warmup", type=int, default=50)
  parser.add_argument("--architecture", choices=("mlp", "conv"), nargs="+", default=["mlp", "conv"])
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  args = parser.parse_args(argv)
  if args.quick:
    args.calls, args.warmup, args.architecture = 50, 5, ["mlp"]
  print("{} cores; load average {:.2f} {:.2f} {:.2f}".format(os.cpu_count(), *os.getloadavg()))
  results = {}
  with tempfile.TemporaryDirectory(prefix="kerasvae-serving-bench-") as base:
    for architecture in args.architecture:
      version_dir, shape = export_vae(Path(base), architecture)
      out = time_encode(version_dir, shape, args.calls, args.warmup)
      results[architecture] = out
      for name in ("signature", "function"):
        r = out[name]
        print(f"{architecture} encode via {name}, 1 image x {args.calls}: median "
              f"{r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms "
              f"(load {out['load_seconds']:.2f} s)", flush=True)
  print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
  return results


if __name__ == "__main__":
  main()
