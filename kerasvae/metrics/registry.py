"""The metrics the evaluate step writes: one `Metric` entry each, and the tables derived from them.

Every table that names evaluate metrics is read from `METRICS`: the names thresholds may take
(`kerasvae.steps.configs.THRESHOLD_METRICS`, `PER_FACTOR_METRICS`, `ACTIVE_SCORES`), the
evaluate step's summary line, TensorBoard's key metrics (`kerasvae.summaries.KEY_METRICS`),
the first rows of the KFP summary page (`kerasvae.steps.kfp_adapter`) and the titles the study
reports print (`kerasvae.studies.report.SCORE_LABELS`, `SEED_COLUMNS`). The disentanglement
scores the evaluate step computes on one encoded factor grid are `GROUND_TRUTH_SCORES`, run in
that order (`kerasvae.steps.evaluate.disentanglement_metrics`).

This module imports no TensorFlow, Keras or scikit-learn (`kerasvae config` reads it and stays
fast): a metric names the function that computes it as "module:function", imported when
`Metric.compute_function` is called.

Adding a metric: see docs/contributing.md ("Adding a metric").
"""

import dataclasses
import importlib
from typing import Callable, Optional

HIGHER = "higher"  # a higher value is better
LOWER = "lower"  # a lower value is better
DIRECTIONS = (HIGHER, LOWER, None)  # None: neither (a count, a diagnostic, KL)

# What a metric needs besides a trained model and the test images, and so which runs have it.
NEEDS = {
    "examples": "any model and its test images",
    "posterior": "a model with a posterior q(z|x) (not the autoencoders)",
    "factors": "data with ground-truth factors (dSprites) and evaluate.disentanglement",
    "labels": "labelled data and evaluate.sample_quality",
    "dsprites": "dSprites images and evaluate.shape_recognition_examples > 0",
}

# A disentanglement score is also computed on the active latents alone, under its name with
# this suffix (`mig_active`, `mig_active_per_factor`, `mig_active/shape`).
ACTIVE_SUFFIX = "_active"
ACTIVE_TITLE = ", active latents"  # `MIG, active latents`
ARROWS = {HIGHER: " ↑", LOWER: " ↓", None: ""}


@dataclasses.dataclass(frozen=True)
class Metric:
  """One number the evaluate step writes to metrics.json.

  Attributes:
    name: its key in metrics.json, the name thresholds and TensorBoard (`evaluate/<name>`) use.
    title: how reports and TensorBoard's key metrics print it ("β-VAE score").
    direction: `HIGHER` or `LOWER` when that value is better, None when neither is.
    needs: a key of `NEEDS`: what a run must have for the metric to be written.
    compute: "module:function" of the function that computes it; None for the evaluate
      step's own count `num_examples`.
    threshold: whether `evaluate.thresholds` may name it.
    per_factor: whether it is also written per ground-truth factor, as a list
      `<name>_per_factor` and as scalars `<name>/<factor>` (which thresholds may name).
    active: whether it is also computed on the active latents alone (`<name>_active`).
    summary: its place in the evaluate step's one-line summary (1 first); 0: not there.
    headline: whether it is among the first rows of the KFP summary page (in `summary`'s
      order; a headline metric has a summary place).
    key_metric: its place among TensorBoard's HParams key metrics (1 first); 0: not one.
    active_key_metric: the same for its `_active` form.
  """
  name: str
  title: str
  direction: Optional[str]
  needs: str
  compute: Optional[str]
  threshold: bool = True
  per_factor: bool = False
  active: bool = False
  summary: int = 0
  headline: bool = False
  key_metric: int = 0
  active_key_metric: int = 0

  def compute_function(self):
    """The function that computes the metric (imports its module: TensorFlow for some)."""
    module, _, name = self.compute.partition(":")
    return getattr(importlib.import_module(module), name)

  @property
  def header(self):
    """The title with the arrow of its better direction: `MIG ↑`, `reconstruction ↓`, `KL`."""
    return self.title + ARROWS[self.direction]

  @property
  def higher_is_better(self):
    """True, False, or None when neither direction is better."""
    return None if self.direction is None else self.direction == HIGHER


@dataclasses.dataclass(frozen=True)
class GroundTruthScore:
  """One computation on ground-truth factors; it writes the metrics whose `compute` it is.

  The evaluate step runs each on one `ground_truth.EncodedGrid` as
  `function(grid, represent, evaluate.seed, **arguments(evaluate))`.

  Attributes:
    label: its name in the progress lines ("DCI").
    compute: "module:function", as the metrics' `compute`.
    codes: the number of codes it looks up with the `evaluate` settings given.
    arguments: its keyword arguments from the `evaluate` settings.
    switch: an `evaluate` setting that leaves it out when false ("dci"); None: always run.
  """
  label: str
  compute: str
  codes: Callable
  arguments: Callable
  switch: Optional[str] = None

  def function(self):
    """The function (imports its module)."""
    module, _, name = self.compute.partition(":")
    return getattr(importlib.import_module(module), name)

  def run(self, ground_truth_data, representation_function, evaluate_config):
    """The score's dict on `ground_truth_data`, with the `evaluate` settings' points and seed."""
    return self.function()(ground_truth_data, representation_function, evaluate_config.seed,
                           **self.arguments(evaluate_config))


_LIKELIHOOD = "kerasvae.metrics.likelihood"
_ELBO = f"{_LIKELIHOOD}:elbo_metrics"
_IWAE = f"{_LIKELIHOOD}:iwae_metrics"
_SURGERY = "kerasvae.metrics.elbo_surgery:model_elbo_surgery"
_BETA_VAE = "kerasvae.metrics.beta_vae:compute_beta_vae_score"
_FACTOR_VAE = "kerasvae.metrics.factor_vae:compute_factor_vae_score"
_MIG = "kerasvae.metrics.mig:compute_mig"
_DCI = "kerasvae.metrics.dci:compute_dci"
_SAP = "kerasvae.metrics.sap:compute_sap"
_SAMPLE_QUALITY = "kerasvae.metrics.sample_quality:compute_sample_quality"
_SHAPES = "kerasvae.metrics.shape_recognition:compute_shape_recognition"

# In the order thresholds are listed (`kerasvae config`'s error on an unknown one).
METRICS = {metric.name: metric for metric in (
    Metric("num_examples", "test examples", None, "examples", None),
    Metric("elbo", "ELBO", HIGHER, "posterior", _ELBO, summary=1, headline=True,
           key_metric=2),
    Metric("reconstruction", "reconstruction", LOWER, "examples", _ELBO, summary=2,
           headline=True, key_metric=3),
    Metric("kl", "KL", None, "posterior", _ELBO, summary=3, headline=True, key_metric=4),
    Metric("active_units", "active units", None, "examples",
           f"{_LIKELIHOOD}:latent_usage", summary=5, headline=True, key_metric=5),
    Metric("iwae_log_likelihood", "IWAE log p(x)", HIGHER, "posterior", _IWAE, summary=4,
           headline=True, key_metric=1),
    Metric("iwae_log_likelihood_stderr", "IWAE log p(x) standard error", None, "posterior",
           _IWAE),
    Metric("iwae_samples", "IWAE samples K", None, "posterior", _IWAE),
    Metric("iwae_examples", "IWAE examples", None, "posterior", _IWAE),
    Metric("beta_vae_score", "β-VAE score", HIGHER, "factors", _BETA_VAE, active=True,
           summary=7, headline=True, key_metric=6),
    Metric("beta_vae_train_accuracy", "β-VAE score's training accuracy", None, "factors",
           _BETA_VAE),
    Metric("factor_vae_score", "FactorVAE score", HIGHER, "factors", _FACTOR_VAE, active=True,
           summary=8, headline=True, key_metric=7),
    Metric("factor_vae_train_accuracy", "FactorVAE score's training accuracy", None, "factors",
           _FACTOR_VAE),
    Metric("num_active_dims", "FactorVAE score's active dimensions", None, "factors",
           _FACTOR_VAE),
    Metric("mig", "MIG", HIGHER, "factors", _MIG, per_factor=True, active=True, summary=9,
           headline=True, key_metric=8, active_key_metric=9),
    Metric("num_factors", "scored factors", None, "factors", _BETA_VAE),
    Metric("frechet_distance", "sample FD", LOWER, "labels", _SAMPLE_QUALITY, key_metric=10),
    Metric("classifier_confidence", "confidence", HIGHER, "labels", _SAMPLE_QUALITY),
    Metric("reference_classifier_confidence", "test images' confidence", None, "labels",
           _SAMPLE_QUALITY),
    Metric("num_generated", "generated samples", None, "labels", _SAMPLE_QUALITY),
    Metric("num_reference", "reference images", None, "labels", _SAMPLE_QUALITY),
    Metric("precision", "precision", HIGHER, "labels", _SAMPLE_QUALITY),
    Metric("recall", "recall", HIGHER, "labels", _SAMPLE_QUALITY),
    Metric("iwae_examples_elbo", "ELBO of the IWAE's images", HIGHER, "posterior", _ELBO),
    Metric("mutual_information_xz", "I(x;z)", None, "posterior", _SURGERY),
    Metric("marginal_kl", "KL(q(z)‖p(z))", None, "posterior", _SURGERY),
    Metric("average_kl", "average KL", None, "posterior", _SURGERY),
    Metric("mutual_information_bound", "log N, the bound of I(x;z)", None, "posterior",
           _SURGERY),
    Metric("surgery_examples", "ELBO surgery examples", None, "posterior", _SURGERY),
    Metric("dci_disentanglement", "DCI disentanglement", HIGHER, "factors", _DCI, active=True,
           summary=10),
    Metric("dci_completeness", "DCI completeness", HIGHER, "factors", _DCI, per_factor=True,
           active=True, summary=11),
    Metric("dci_informativeness", "DCI informativeness", HIGHER, "factors", _DCI,
           per_factor=True, active=True, summary=12),
    Metric("dci_informativeness_train", "DCI informativeness on the training points", None,
           "factors", _DCI),
    Metric("sap", "SAP score", HIGHER, "factors", _SAP, per_factor=True, active=True,
           summary=13),
    Metric("shape_recognised", "shape recognised", HIGHER, "dsprites", _SHAPES, summary=6),
)}

# The metrics' default L: images per β-VAE point and per FactorVAE vote.
PAIR_BATCH = 64
FACTOR_VAE_VARIANCE_POINTS = 10000  # the FactorVAE score's estimate of each latent's scale

# The scores on ground-truth factors, in the order the evaluate step runs them.
GROUND_TRUTH_SCORES = (
    GroundTruthScore(
        "β-VAE score", _BETA_VAE,
        lambda c: (c.disentanglement_train_points + c.disentanglement_eval_points) * 2
        * PAIR_BATCH,
        lambda c: {"batch_size": PAIR_BATCH, "num_train": c.disentanglement_train_points,
                   "num_eval": c.disentanglement_eval_points}),
    GroundTruthScore(
        "FactorVAE score", _FACTOR_VAE,
        lambda c: FACTOR_VAE_VARIANCE_POINTS + (
            c.disentanglement_train_points + c.disentanglement_eval_points) * PAIR_BATCH,
        lambda c: {"batch_size": PAIR_BATCH, "num_train": c.disentanglement_train_points,
                   "num_eval": c.disentanglement_eval_points,
                   "num_variance_estimate": FACTOR_VAE_VARIANCE_POINTS}),
    GroundTruthScore(
        "MIG", _MIG, lambda c: c.disentanglement_train_points,
        lambda c: {"num_train": c.disentanglement_train_points}),
    GroundTruthScore(
        "DCI", _DCI,
        lambda c: c.disentanglement_train_points + c.disentanglement_eval_points,
        lambda c: {"num_train": c.disentanglement_train_points,
                   "num_eval": c.disentanglement_eval_points}, switch="dci"),
    GroundTruthScore(
        "SAP", _SAP,
        lambda c: c.disentanglement_train_points + c.disentanglement_eval_points,
        lambda c: {"num_train": c.disentanglement_train_points,
                   "num_eval": c.disentanglement_eval_points}),
)


def get(name):
  """The `Metric` called `name`; KeyError names the registered metrics."""
  if name not in METRICS:
    raise KeyError(f"Expected a metric the evaluate step writes, one of {list(METRICS)}. "
                   f"Received: name={name!r}")
  return METRICS[name]


def threshold_metrics(metrics=None):
  """The names `evaluate.thresholds` may take as they are, in the registry's order."""
  return tuple(m.name for m in (metrics or METRICS).values() if m.threshold)


def per_factor_metrics(metrics=None):
  """The metrics also written per factor, as `<name>/<factor>` (`mig/shape`)."""
  return tuple(m.name for m in (metrics or METRICS).values() if m.per_factor)


def active_scores(metrics=None):
  """The scores also computed on the active latents alone (`<name>_active`)."""
  return tuple(m.name for m in (metrics or METRICS).values() if m.active)


def summary_metrics(metrics=None):
  """The metrics of the evaluate step's summary line, in its order."""
  return tuple(m.name for m in sorted((m for m in (metrics or METRICS).values() if m.summary),
                                      key=lambda m: m.summary))


def headline_metrics(metrics=None):
  """The first rows of the KFP summary page: the summary line's headline metrics."""
  metrics = metrics or METRICS
  return tuple(name for name in summary_metrics(metrics) if metrics[name].headline)


def key_metrics(metrics=None):
  """TensorBoard's HParams key metrics as `(tag in the validation run, title)`, in order."""
  places = []
  for m in (metrics or METRICS).values():
    if m.key_metric:
      places.append((m.key_metric, f"evaluate/{m.name}", m.title))
    if m.active_key_metric:
      places.append((m.active_key_metric, f"evaluate/{m.name}{ACTIVE_SUFFIX}",
                     m.title + ACTIVE_TITLE))
  return tuple((tag, title) for _, tag, title in sorted(places))


def score_titles(metrics=None):
  """`{name: title}` of the scores with an active form, each followed by that form
  (`mig`: "MIG", `mig_active`: "MIG, active latents"), in the registry's order."""
  titles = {}
  for name in active_scores(metrics):
    title = (metrics or METRICS)[name].title
    titles[name] = title
    titles[name + ACTIVE_SUFFIX] = title + ACTIVE_TITLE
  return titles


def title(name):
  """A metric's title as reports print it, its active form's too: `mig_active` -> "MIG, active
  latents"."""
  if name not in METRICS and name.endswith(ACTIVE_SUFFIX):
    return get(name.removesuffix(ACTIVE_SUFFIX)).title + ACTIVE_TITLE
  return get(name).title


def ground_truth_scores(evaluate_config, scores=GROUND_TRUTH_SCORES):
  """The `GroundTruthScore`s the `evaluate` settings turn on, in order."""
  return tuple(s for s in scores if s.switch is None or getattr(evaluate_config, s.switch))
