"""Latency of the exported signatures (`encode`; `log_likelihood` at K = 100 and 1,000) on the loaded SavedModel.

Usage:
  python -m benchmarks.serving_latency [--calls 1000] [--seconds 30] [--architecture mlp|conv]
                                       [--no-log-likelihood] [--quick]

Exports an (untrained: latency does not depend on the weights) VAE with
`kerasvae.serving.export_model` to a temporary base directory, then, in a
subprocess that imports only TensorFlow (never kerasvae, as in a serving
container), loads the SavedModel and times each case: `encode` for one image
(through the signature `loaded.signatures["encode"]` and through the restored
function `loaded.encode`) and, for the MLP, the `log_likelihood` signature at
K = 100 and K = 1,000 for batches of 1 and 64 images. Each call ends with the
result fetched as NumPy. Before timing, the first call after loading is timed
on its own (what TF Serving's warm-up requests take off the first client
request), then `--warmup` calls are made. A case is called `--calls` times,
or fewer when that would take more than `--seconds` (at least 10 calls). It
prints the median, p90 and p99 in milliseconds.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Runs in the subprocess: TensorFlow only.
LOAD_AND_TIME = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
assert "kerasvae" not in sys.modules
version_dir, cases, calls, warmup, seconds = (sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]),
                                              int(sys.argv[4]), float(sys.argv[5]))
start = time.perf_counter()
loaded = tf.saved_model.load(version_dir)
out = {"load_seconds": time.perf_counter() - start, "cases": []}
for case in cases:
  images = tf.constant(np.random.RandomState(0).uniform(
      size=[case["batch"]] + case["image_shape"]).astype(np.float32))
  inputs = {"images": images}
  if case["signature"] == "log_likelihood":
    inputs["num_samples"] = tf.constant(case["num_samples"], tf.int32)
  if case["via"] == "function":
    fn = lambda **kw: getattr(loaded, case["signature"])(**kw)
  else:
    fn = loaded.signatures[case["signature"]]
  fetch = case["fetch"]
  t = time.perf_counter()
  fn(**inputs)[fetch].numpy()
  first_ms = (time.perf_counter() - t) * 1000.0
  for _ in range(warmup):
    fn(**inputs)[fetch].numpy()
  times = []
  budget_start = time.perf_counter()
  while len(times) < calls and (len(times) < 10 or time.perf_counter() - budget_start < seconds):
    t = time.perf_counter()
    fn(**inputs)[fetch].numpy()
    times.append(time.perf_counter() - t)
  ms = np.array(times) * 1000.0
  out["cases"].append(dict(case, calls=len(ms), first_ms=first_ms,
                           median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)),
                           p99_ms=float(np.percentile(ms, 99)), min_ms=float(ms.min())))
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


def cases_for(architecture, image_shape, log_likelihood, num_samples=(100, 1000), batches=(1, 64)):
  """The timed cases of one export: `encode` (signature and function), then `log_likelihood`."""
  cases = [{"signature": "encode", "via": via, "batch": 1, "fetch": "latent_mean"}
           for via in ("signature", "function")]
  if log_likelihood and architecture == "mlp":
    cases += [{"signature": "log_likelihood", "via": "signature", "batch": b, "num_samples": k,
               "fetch": "log_likelihood"} for k in num_samples for b in batches]
  return [dict(c, image_shape=image_shape) for c in cases]


def time_cases(version_dir, cases, calls, warmup, seconds):
  """Runs the TF-only timing subprocess; returns its JSON result."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-c", LOAD_AND_TIME, str(version_dir), json.dumps(cases), str(calls),
       str(warmup), str(seconds)], capture_output=True, text=True, env=env, check=False)
  if result.returncode:
    raise RuntimeError(f"The timing subprocess failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def describe(architecture, case):
  what = f"{architecture} {case['signature']} via {case['via']}, batch {case['batch']}"
  if "num_samples" in case:
    what += f", K = {case['num_samples']}"
  return (f"{what}: median {case['median_ms']:.3f} ms, p90 {case['p90_ms']:.3f} ms, "
          f"p99 {case['p99_ms']:.3f} ms over {case['calls']} calls "
          f"(first call after load {case['first_ms']:.1f} ms)")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--calls", type=int, default=1000)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=30.0,
                      help="Stop a case after this long once it has 10 calls.")
  parser.add_argument("--architecture", choices=("mlp", "conv"), nargs="+", default=["mlp", "conv"])
  parser.add_argument("--no-log-likelihood", dest="log_likelihood", action="store_false")
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  args = parser.parse_args(argv)
  num_samples = (100, 1000)
  if args.quick:
    args.calls, args.warmup, args.seconds, args.architecture = 20, 2, 2.0, ["mlp"]
    num_samples = (100,)
  print("{} cores; load average {:.2f} {:.2f} {:.2f}".format(os.cpu_count(), *os.getloadavg()))
  results = {}
  with tempfile.TemporaryDirectory(prefix="kerasvae-serving-bench-") as base:
    for architecture in args.architecture:
      version_dir, shape = export_vae(Path(base), architecture)
      out = time_cases(version_dir, cases_for(architecture, shape, args.log_likelihood,
                                              num_samples), args.calls, args.warmup, args.seconds)
      results[architecture] = out
      print(f"{architecture}: SavedModel loaded in {out['load_seconds']:.2f} s", flush=True)
      for case in out["cases"]:
        print(describe(architecture, case), flush=True)
  print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
  return results


if __name__ == "__main__":
  main()
