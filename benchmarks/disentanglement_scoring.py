"""Time of the disentanglement scores at disentanglement_lib's sizes: rendering, encoding, fitting.

Usage:
  python -m benchmarks.disentanglement_scoring [--architectures conv mlp]
      [--train-points 10000] [--eval-points 5000] [--json results.json] [--quick]

For each architecture it builds the model of a disentanglement study config
(`conv`: `disentanglement.yaml`, 32-32-64-64 filters, dense 256; `mlp`:
`disentanglement-full-mlp.yaml`, 256-256; both 10 latents), freshly
initialised with a fixed seed (the time does not depend on training; the
encoder's last layer is rescaled so that every code varies as a trained one
does, see `unit_scale_codes`), and runs
`kerasvae.steps.evaluate.disentanglement_metrics` on the full dSprites grid
with the study's evaluate config, as `kerasvae evaluate` does: the β-VAE
score and the FactorVAE score on `--train-points` training and `--eval-points`
evaluation points (batches of 64), MIG on `--train-points` codes, DCI and SAP on
`--train-points` training and `--eval-points` held-out codes.

Each score's wall time is split by timers wrapped around the library's own
functions (so the same script times any version of the code):

  rendering  `DSprites.sample_observations_from_factors` (factor classes to
             float32 images);
  encoding   `ground_truth.represent` calls that run the model (images to
             posterior means, including the NumPy conversion and checks);
  fitting    `beta_vae.linear_classifier_accuracy` (the logistic regression),
             `mig.mig_from_codes` (histograms and mutual information), the
             FactorVAE votes' arithmetic (`least_variance_dimension`, the
             majority-vote classifier and its accuracy), `dci.gbt_importance`
             (a gradient-boosted classifier per factor) and
             `sap.sap_score_matrix` (a linear SVM per code and factor);
  other      the rest: drawing factors, features, code look-ups.

Time before the first score (the evaluate step encoding the whole factor grid
when the scores will draw most of it) is the `whole_grid` row.

Timers nest: time inside an inner timed call is charged to it only. It also
counts the images rendered and encoded and prints the scores, which must not
change between versions for the same seed (the scores of a deterministic
renderer and encoder, compared before/after a change, are the check that the
change computes the same thing).

`--quick` runs the studies' `quick` models (small networks) on 20 training and
10 evaluation points: a smoke run of seconds.
"""

import argparse
import contextlib
import functools
import importlib
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STUDY_CONFIGS = {"conv": "disentanglement", "mlp": "disentanglement-full-mlp"}
PARTS = ("rendering", "encoding", "fitting", "other")
WHOLE_GRID = "whole_grid"  # before the scores: the evaluate step encoding the whole factor grid
SCORES = (("beta_vae", "compute_beta_vae_score"), ("factor_vae", "compute_factor_vae_score"),
          ("mig", "compute_mig"), ("dci", "compute_dci"), ("sap", "compute_sap"))


class Stopwatch:
  """Exclusive wall time per (score, part): an inner timed call pauses the outer one's clock."""

  def __init__(self):
    self.seconds = {}  # {(score, part): seconds}
    self.counts = {}  # {(score, "rendered" | "encoded"): images}
    self.score = None
    self._stack = []  # frames [part, exclusive seconds] of the calls being timed, innermost last
    self._mark = None

  def _add(self, part, seconds):
    key = (self.score, part)
    self.seconds[key] = self.seconds.get(key, 0.0) + seconds

  def _charge(self):
    now = time.perf_counter()
    if self._stack:
      self._stack[-1][1] += now - self._mark
    else:
      self._add("other", now - self._mark)
    self._mark = now

  @contextlib.contextmanager
  def part(self, name):
    """Times a call as `name`; the yielded frame's name may be changed before the call ends."""
    self._charge()
    frame = [name, 0.0]
    self._stack.append(frame)
    try:
      yield frame
    finally:
      self._charge()
      self._stack.pop()
      self._add(frame[0], frame[1])

  def start(self, score):
    """Starts the clock, charging time outside any score to `score`."""
    self.score, self._mark = score, time.perf_counter()

  def stop(self):
    self._charge()

  @contextlib.contextmanager
  def scoring(self, score):
    self._charge()
    outside, self.score = self.score, score
    try:
      yield
    finally:
      self._charge()
      self.score = outside

  def count(self, what, images):
    key = (self.score, what)
    self.counts[key] = self.counts.get(key, 0) + int(images)


def _timed(stopwatch, part, function, count=None):
  @functools.wraps(function)
  def wrapper(*args, **kwargs):
    with stopwatch.part(part):
      result = function(*args, **kwargs)
    if count is not None:
      count(args, kwargs, result)
    return result
  return wrapper


@contextlib.contextmanager
def instrumented(stopwatch, data):
  """Wraps the library's rendering, encoding and fitting functions in `stopwatch` timers."""
  from kerasvae.metrics import beta_vae  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import dci  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import factor_vae  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import ground_truth  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import mig  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import sap  # pylint: disable=import-outside-toplevel
  patches = [(beta_vae, "linear_classifier_accuracy", "fitting"),
             (mig, "mig_from_codes", "fitting"),
             (dci, "gbt_importance", "fitting"),
             (sap, "sap_score_matrix", "fitting"),
             (factor_vae, "least_variance_dimension", "fitting"),
             (factor_vae, "majority_vote_classifier", "fitting"),
             (factor_vae, "majority_vote_accuracy", "fitting")]
  saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
  for module, name, part in patches:
    setattr(module, name, _timed(stopwatch, part, getattr(module, name)))
  # Images passed to a representation function are encoded; grid indices (1-D, since the
  # EncodedGrid) are looked up, and encoded inside when not seen before.
  original_represent = ground_truth.represent
  def represent(representation_function, observations, *, batch_size):
    images = getattr(observations, "ndim", 2) > 1
    with stopwatch.part("encoding" if images else "other"):
      codes = original_represent(representation_function, observations, batch_size=batch_size)
    if images:
      stopwatch.count("encoded", len(observations))
    return codes
  saved.append((ground_truth, "represent", original_represent))
  ground_truth.represent = represent

  def rendered(args, kwargs, result):
    del args, kwargs
    stopwatch.count("rendered", len(result))
  data.sample_observations_from_factors = _timed(
      stopwatch, "rendering", data.sample_observations_from_factors, rendered)
  for score, name in SCORES:
    # The evaluate step finds each score through the metrics registry ("module:function"):
    # the function is wrapped in its own module, where that lookup reads it.
    module = importlib.import_module(f"kerasvae.metrics.{score}")
    def scored(*args, _score=score, _compute=getattr(module, name), **kwargs):
      with stopwatch.scoring(_score):
        return _compute(*args, **kwargs)
    saved.append((module, name, getattr(module, name)))
    setattr(module, name, scored)
  try:
    yield
  finally:
    for module, name, function in saved:
      setattr(module, name, function)
    del data.sample_observations_from_factors


def study_config(architecture, quick, train_points, eval_points):
  """The PipelineConfig of the first trial of the architecture's disentanglement study."""
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  name = STUDY_CONFIGS[architecture]
  overrides = [f"evaluate.disentanglement_train_points={train_points}",
               f"evaluate.disentanglement_eval_points={eval_points}",
               "evaluate.dci=true"]  # timed even where the study's quick version leaves it out
  with tempfile.TemporaryDirectory(prefix="kerasvae-scoring-bench-") as output:
    _, _, _, trials = core.load_study_config(core.resolve_study_config_path(name),
                                             overrides=overrides, quick=quick, output=output)
  return trials[0].config


def unit_scale_codes(model, data, num_images=2000):
  """Rescales the encoder's last layer so that each posterior mean has unit standard deviation.

  A freshly initialised conv encoder's means vary by about 0.006 over dSprites: under the
  FactorVAE score's pruning threshold (0.05) in every dimension, so its votes would never be
  sampled. A trained model's codes vary by about 1, as these do after the rescaling.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  factors = data.sample_factors(num_images, np.random.RandomState(1))
  images = data.render(factors).astype(np.float32)
  std = np.std(model.encode_mean(tf.constant(images)).numpy(), axis=0)  # [D]
  kernel, bias = model.encoder.layers[-1].weights[-2:]  # the means are the first D outputs
  scale = np.ones(kernel.shape[-1], np.float32)
  scale[:len(std)] = 1.0 / std
  kernel.assign(kernel.numpy() * scale)
  bias.assign(bias.numpy() * scale)


def time_scoring(architecture, args):
  """{"seconds": {score: {part: s}}, "images": {...}, "scores": {...}} of one model."""
  import keras  # pylint: disable=import-outside-toplevel
  from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import evaluate  # pylint: disable=import-outside-toplevel
  config = study_config(architecture, args.quick, args.train_points, args.eval_points)
  keras.utils.set_random_seed(0)
  model = common.build_model(config.model, dsprites.DSprites.observation_shape)
  data = dsprites.DSprites()
  unit_scale_codes(model, data)
  stopwatch = Stopwatch()
  cpu, start = time.process_time(), time.perf_counter()
  with instrumented(stopwatch, data):
    stopwatch.start(WHOLE_GRID)
    scores = evaluate.disentanglement_metrics(model, data, config.evaluate, show_progress=False)
    stopwatch.stop()
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu
  rows = (WHOLE_GRID,) + tuple(score for score, _ in SCORES)
  seconds = {row: {part: stopwatch.seconds.get((row, part), 0.0) for part in PARTS}
             for row in rows}
  for parts in seconds.values():
    parts["total"] = sum(parts.values())
  seconds["all"] = {part: sum(seconds[row][part] for row in rows) for part in PARTS + ("total",)}
  images = {row: {what: stopwatch.counts.get((row, what), 0) for what in ("rendered", "encoded")}
            for row in rows}
  kept = ("beta_vae_score", "beta_vae_train_accuracy", "factor_vae_score",
          "factor_vae_train_accuracy", "num_active_dims", "mig", "mig_per_factor",
          "dci_disentanglement", "dci_completeness", "dci_informativeness",
          "dci_informativeness_train", "dci_informativeness_per_factor", "sap", "sap_per_factor")
  return {"model": architecture, "study_config": STUDY_CONFIGS[architecture],
          "train_points": config.evaluate.disentanglement_train_points,
          "eval_points": config.evaluate.disentanglement_eval_points,
          "seconds": seconds, "wall_seconds": wall, "cpu_seconds": cpu, "images": images,
          "scores": {k: scores[k] for k in kept if k in scores}}


def print_result(result):
  print(f"\n{result['model']} VAE ({result['study_config']}.yaml), "
        f"{result['train_points']:,} train / {result['eval_points']:,} eval points; "
        f"wall {result['wall_seconds']:.1f} s, process CPU {result['cpu_seconds']:.1f} s")
  print(f"{'score':12s} " + " ".join(f"{p:>10s}" for p in PARTS + ("total",))
        + f" {'rendered':>10s} {'encoded':>10s}")
  for score, parts in result["seconds"].items():
    images = result["images"].get(score) or {
        what: sum(v[what] for v in result["images"].values()) for what in ("rendered", "encoded")}
    print(f"{score:12s} " + " ".join(f"{parts[p]:10.1f}" for p in PARTS + ("total",))
          + f" {images['rendered']:10,d} {images['encoded']:10,d}")
  print("scores: " + json.dumps(result["scores"]))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--architectures", nargs="+", choices=sorted(STUDY_CONFIGS),
                      default=["conv", "mlp"])
  parser.add_argument("--train-points", type=int, default=10000,
                      help="β-VAE, FactorVAE, DCI and SAP training points, MIG codes.")
  parser.add_argument("--eval-points", type=int, default=5000)
  parser.add_argument("--json", default=None, help="Also write the results to this JSON file.")
  parser.add_argument("--quick", action="store_true", help="A seconds-long smoke run.")
  args = parser.parse_args(argv)
  if args.quick:
    args.train_points, args.eval_points = 20, 10

  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from benchmarks.train_throughput import load_average  # pylint: disable=import-outside-toplevel
  from benchmarks.train_throughput import machine_description  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel("ERROR")
  machine = machine_description()
  print(f"machine: {machine}")
  print(f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load_average()}",
        flush=True)
  results = {"machine": machine, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "load_average_start": list(os.getloadavg()), "models": {}}
  for architecture in args.architectures:
    result = time_scoring(architecture, args)
    result["load_average"] = list(os.getloadavg())
    results["models"][architecture] = result
    print_result(result)
    print(f"{load_average()}", flush=True)
  print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load_average()}")
  if args.json:
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
  return results


if __name__ == "__main__":
  main()
