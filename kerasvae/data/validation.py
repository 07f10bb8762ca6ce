"""Data validation (ExampleValidator's part): new data's schema and statistics against the
training data's, rule by rule.

`describe(data_config, ingest_config)` reads any ingest source as ingest would store it (the
same preprocessing and `ImageStatistics`), `reference(examples_dir)` takes what ingest recorded
for the training split, and `check(reference, candidate, thresholds)` returns one `Anomaly` per
violated rule:

  image_shape      the images' [H, W, C] differ (an RGB folder for grey training data)
  image_dtype      the stored dtype differs (16-bit or float pixels for uint8 training data)
  value_range      the 1st or 99th pixel percentile moved by more than `value_range`, or a
                   pixel lies outside the training data's [min, max] by more than it
  pixel_mean       |Δ mean pixel| > `pixel_mean` (reader units, [0, 1] for scaled data)
  pixel_std        |Δ pixel standard deviation| > `pixel_std`
  pixel_histogram  Jensen–Shannon divergence (base 2) of the pixel histograms (16 bins)
                   > `pixel_histogram` (TFX's drift comparator for numeric features)
  label_domain     labels the training data never had
  class_balance    L∞ distance of the class frequencies > `class_balance` (TFX's comparator
                   for categorical features); labelled data only

Rules whose statistic one side lacks (class balance of unlabelled data) are skipped and
listed as such.
"""

import dataclasses

import numpy as np

from kerasvae.data import statistics as stats_lib
from kerasvae.data.sources import DataError

RULES = ("image_shape", "image_dtype", "value_range", "pixel_mean", "pixel_std",
         "pixel_histogram", "label_domain", "class_balance")


@dataclasses.dataclass
class Anomaly:
  """One violated rule: its name and what was expected and received, in words."""
  rule: str
  message: str

  def to_json(self):
    return {"rule": self.rule, "message": self.message}


class DataValidationError(DataError):
  """New data violates rules of the training data's schema and statistics; the message lists
  each violated rule by name."""

  def __init__(self, message, anomalies):
    super().__init__(message)
    self.anomalies = anomalies


def describe(data_config, ingest_config, max_examples=None):
  """The schema and statistics of a data source as ingest would store it for training.

  Args:
    data_config: a `DataConfig` (any source).
    ingest_config: the training data's `IngestConfig`: its scaling and static binarisation
      are applied, as ingest applies them.
    max_examples: read at most this many examples (the first ones).

  Returns:
    {"image_shape", "image_dtype", "statistics": ImageStatistics.to_dict(), "location"}.
  """
  from kerasvae.data.sources import open_source  # pylint: disable=import-outside-toplevel
  source = open_source(data_config)
  scale = 1.0 / 255.0 if ingest_config.scale_to_unit else 1.0
  stats = None
  for _, chunk in source.chunks(False):
    images = chunk["images"]  # [n, H, W, C]
    if max_examples is not None:
      images = images[:max_examples - (stats.count if stats else 0)]
    if ingest_config.binarize == "static":
      unit = images / 255.0 if images.dtype == np.uint8 else images
      images = (unit > ingest_config.threshold).astype(np.uint8) * np.uint8(255)
    if stats is None:
      stats = stats_lib.ImageStatistics(scale if images.dtype == np.uint8 else 1.0)
    labels = chunk.get("labels")
    stats.add(images, None if labels is None else labels[:len(images)])
    if max_examples is not None and stats.count >= max_examples:
      break
  if stats is None:
    raise DataError(f"{source.location}: expected at least one image to validate. "
                    "Received: 0 images")
  return {"image_shape": stats.shape, "image_dtype": stats.dtype,
          "statistics": stats.to_dict(), "location": source.location}


def reference(examples_metadata, split_statistics=None):
  """The training data's schema and statistics from an Examples artifact's metadata.

  Args:
    examples_metadata: its `metadata.json` (`reader.read_metadata`).
    split_statistics: the statistics of the split to compare against (default: the train
      split's, as recorded).
  """
  names = examples_metadata["split_names"]
  stats = split_statistics or examples_metadata["statistics"][names["train"]]
  return {"image_shape": list(examples_metadata["image_shape"]),
          "image_dtype": examples_metadata["image_dtype"], "statistics": stats}


def _fmt(value):
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def check(ref, new, thresholds):
  """The anomalies of `new` against `ref` (both as `describe` / `reference` return them).

  Args:
    thresholds: an object with the attributes pixel_mean, pixel_std, value_range,
      pixel_histogram and class_balance (`ValidateConfig.thresholds`).

  Returns:
    (anomalies: [Anomaly], skipped: {rule: why}).
  """
  anomalies, skipped = [], {}

  def violated(rule, expected, received):
    anomalies.append(Anomaly(rule, f"{rule}: expected {expected}. Received: {received}"))

  if list(new["image_shape"]) != list(ref["image_shape"]):
    violated("image_shape", f"images of shape {ref['image_shape']} (H, W, C) like the training "
             "data's", f"image_shape={new['image_shape']}")
  if new["image_dtype"] != ref["image_dtype"]:
    violated("image_dtype", f"pixels stored as {ref['image_dtype']} like the training data's",
             f"image_dtype={new['image_dtype']}")
  r, n = ref["statistics"], new["statistics"]
  pixel_rules = ("value_range", "pixel_mean", "pixel_std", "pixel_histogram")
  if r.get("pixel_histogram") is None or n.get("pixel_histogram") is None:
    for rule in pixel_rules:
      skipped[rule] = ("the training data's statistics predate pixel histograms (ingest again "
                       "with --force)" if r.get("pixel_histogram") is None else "no pixels")
  else:
    tolerance = thresholds.value_range
    for q in (0.01, 0.99):
      a, b = stats_lib.histogram_quantile(r, q), stats_lib.histogram_quantile(n, q)
      if abs(a - b) > tolerance:
        violated("value_range", f"the {q:.0%} pixel percentile within {tolerance} of the training "
                 f"data's {_fmt(a)}", f"percentile_{round(q * 100)}={_fmt(b)}")
    if n["pixel_min"] < r["pixel_min"] - tolerance or n["pixel_max"] > r["pixel_max"] + tolerance:
      violated("value_range", f"pixels within [{_fmt(r['pixel_min'])}, {_fmt(r['pixel_max'])}] "
               f"(the training data's) ± {tolerance}",
               f"pixel_min={_fmt(n['pixel_min'])}, pixel_max={_fmt(n['pixel_max'])}")
    for rule, key in (("pixel_mean", "pixel_mean"), ("pixel_std", "pixel_std")):
      limit = getattr(thresholds, rule)
      if abs(n[key] - r[key]) > limit:
        violated(rule, f"{key} within {limit} of the training data's {_fmt(r[key])}",
                 f"{key}={_fmt(n[key])}")
    if r["pixel_histogram_max"] != n["pixel_histogram_max"]:
      violated("pixel_histogram", f"pixel histograms over [0, {_fmt(r['pixel_histogram_max'])}]",
               f"a histogram over [0, {_fmt(n['pixel_histogram_max'])}]")
    else:
      divergence = stats_lib.jensen_shannon(r["pixel_histogram"], n["pixel_histogram"])
      if divergence > thresholds.pixel_histogram:
        violated("pixel_histogram", f"a Jensen-Shannon divergence of the pixel histograms at "
                 f"most {thresholds.pixel_histogram} from the training data's",
                 f"divergence={divergence:.4g}")
  ref_freq, new_freq = stats_lib.label_frequencies(r), stats_lib.label_frequencies(n)
  if ref_freq is None or new_freq is None:
    why = ("the new data has no labels" if ref_freq is not None
           else "the training data has no labels")
    skipped["label_domain"] = skipped["class_balance"] = why
  else:
    unknown = sorted(set(new_freq) - set(ref_freq))
    if unknown:
      violated("label_domain", f"labels among the training data's {sorted(ref_freq)}",
               f"labels={unknown}")
    distance = max(abs(new_freq.get(k, 0.0) - ref_freq.get(k, 0.0))
                   for k in set(ref_freq) | set(new_freq))
    if distance > thresholds.class_balance:
      worst = max(set(ref_freq) | set(new_freq),
                  key=lambda k: abs(new_freq.get(k, 0.0) - ref_freq.get(k, 0.0)))
      violated("class_balance", f"class frequencies within L-infinity distance "
               f"{thresholds.class_balance} of the training data's",
               f"distance={distance:.4g} (class {worst}: {new_freq.get(worst, 0.0):.3f}, "
               f"training {ref_freq.get(worst, 0.0):.3f})")
  return anomalies, skipped


def enforce(anomalies, on_anomaly, warn_rules, where):
  """Raises DataValidationError listing every anomaly not configured as a warning; returns
  the warnings (the anomalies left) after logging them.

  Args:
    anomalies: from `check`.
    on_anomaly: "fail" (stop) or "warn" (record only).
    warn_rules: rules that only warn even with on_anomaly="fail".
    where: the data, as the message names it.
  """
  import logging  # pylint: disable=import-outside-toplevel
  failing = [a for a in anomalies if on_anomaly == "fail" and a.rule not in warn_rules]
  warnings = [a for a in anomalies if a not in failing]
  for a in warnings:
    logging.getLogger(__name__).warning("%s: %s (recorded as a warning)", where, a.message)
  if failing:
    rules = sorted({a.rule for a in failing})
    raise DataValidationError(
        f"{where}: the data violates {len(failing)} rule(s) of the training data's schema and "
        f"statistics ({', '.join(rules)}):\n  " + "\n  ".join(a.message for a in failing)
        + "\n(to record a rule as a warning instead: validation.warn_rules or "
        "validation.on_anomaly=warn)", failing)
  return warnings
