"""Validation against the served model, as the TFX Evaluator does it.

The candidate model is compared with the *baseline*: the newest version exported under the
same `export.model_name` by another run (the model TF Serving serves now). Both are scored on
the same test images with the same estimator, the one the `log_likelihood` signature serves
(`metrics.iwae.estimate` with K = 1: the one-sample ELBO terms at the signature's fixed
seed), and the candidate is blessed only if no configured metric is worse than
the baseline's by more than its change threshold (`evaluate.change_thresholds`). The first
export of a model name has no baseline.
"""

from pathlib import Path

import numpy as np

from kerasvae import serving
from kerasvae.metrics import iwae
from kerasvae.steps.configs import BASELINE_METRICS

BATCH = 250  # images per call of the estimator


def find_baseline(config, run_dir):
  """The newest exported version of `config.export.model_name` not exported by `run_dir`, as
  `(version_dir, its kerasvae.json digest)`; None when there is none (the first export)."""
  model_dir = Path(config.export.base_dir) / config.export.model_name
  for version in reversed(serving.list_versions(model_dir)):
    version_dir = model_dir / str(version)
    try:
      info = serving.read_export_metadata(version_dir)
    except FileNotFoundError:  # not exported by kerasvae: still what the server serves
      return version_dir, None
    exported_by = info.get("metadata", {}).get("run_dir")
    if exported_by and Path(exported_by).resolve() == Path(run_dir).resolve():
      continue  # this run's own earlier export is no baseline for it
    return version_dir, info.get("metadata_sha256")
  return None


def _scores(log_likelihood, images):
  """Mean ELBO and reconstruction (nats) of `images` under a `log_likelihood` function with
  K = 1."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  totals = {"elbo": 0.0, "reconstruction": 0.0}
  for start in range(0, len(images), BATCH):
    out = log_likelihood(tf.constant(images[start:start + BATCH], tf.float32),
                         tf.constant(1, tf.int32))
    for key in totals:
      totals[key] += float(np.sum(out[key].numpy(), dtype=np.float64))
  return {key: value / len(images) for key, value in totals.items()}


def compare(model, images, change_thresholds, baseline):
  """Scores the candidate `model` and the `baseline` version on `images`; the comparison.

  Args:
    model: the candidate (a kerasvae model).
    images: [N, H, W, C] test images.
    change_thresholds: {metric: the most it may be worse than the baseline's}.
    baseline: `find_baseline`'s answer.

  Returns:
    A dict for `blessing.json`: `version_dir` (None for the first export), `examples`,
    `candidate` and `baseline` scores, and `checks` (each with `metric`, `candidate`,
    `baseline`, `change` (positive: worse), `max_change`, `passed`, or `skipped` with why).
  """
  if baseline is None:
    return {"version_dir": None, "note": "no exported version of this model name from another "
            "run: the first export has no baseline", "checks": []}
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  version_dir = baseline[0]
  loaded = tf.saved_model.load(str(version_dir))
  result = {"version_dir": str(version_dir), "examples": int(len(images)), "checks": []}
  if not (model.has_posterior and hasattr(loaded, "log_likelihood")):  # a SavedModel's function
    which = "the candidate" if not model.has_posterior else "the baseline"
    result["checks"] = [{"metric": m, "max_change": t, "passed": True,
                         "skipped": f"{which} has no posterior (no log_likelihood signature)"}
                        for m, t in sorted(change_thresholds.items())]
    return result
  candidate = _scores(lambda x, k: iwae.estimate(model, x, k), images)
  served = _scores(loaded.log_likelihood, images)
  result.update(candidate=candidate, baseline=served)
  for metric, limit in sorted(change_thresholds.items()):
    change = served[metric] - candidate[metric] if BASELINE_METRICS[metric] else (
        candidate[metric] - served[metric])
    result["checks"].append({"metric": metric, "candidate": candidate[metric],
                             "baseline": served[metric], "change": change, "max_change": limit,
                             "passed": bool(change <= limit)})
  return result
