"""The metrics registry's contract, read from the registry itself: every metric the evaluate step
writes is described there, and every table that names metrics is derived from it."""

import dataclasses
import subprocess
import sys

import pytest

from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import summaries
from kerasvae.metrics import registry
from kerasvae.steps import configs
from kerasvae.steps import evaluate
from kerasvae.steps import kfp_adapter
from kerasvae.studies import report
from tests.pipeline_helpers import subprocess_env

METRICS = list(registry.METRICS.values())


@pytest.mark.parametrize("metric", METRICS, ids=[m.name for m in METRICS])
def test_every_metric_has_a_title_a_direction_what_it_needs_and_its_function(metric):
  assert registry.METRICS[metric.name] is metric
  assert metric.title and metric.title == metric.title.strip()
  assert metric.direction in registry.DIRECTIONS
  assert metric.needs in registry.NEEDS
  assert not metric.headline or metric.summary, "a headline metric has a summary place"
  if metric.compute is not None:  # `num_examples`: the evaluate step's own count
    assert callable(metric.compute_function()), metric.compute


def test_places_in_the_ordered_tables_are_distinct():
  for places in ([m.summary for m in METRICS if m.summary],
                 [p for m in METRICS for p in (m.key_metric, m.active_key_metric) if p]):
    assert len(places) == len(set(places)), places


def test_every_derived_threshold_name_is_accepted_by_the_config():
  names = list(registry.threshold_metrics())
  names += [name + registry.ACTIVE_SUFFIX for name in registry.active_scores()]
  names += [f"{name}{suffix}/shape" for name in registry.per_factor_metrics()
            for suffix in ("", registry.ACTIVE_SUFFIX)]
  config = config_lib.from_dict(configs.EvaluateConfig, {
      "thresholds": {name: {"lower_bound": 0} for name in names}})
  assert sorted(config.thresholds) == sorted(names)
  assert configs.THRESHOLD_METRICS == registry.threshold_metrics()
  assert configs.PER_FACTOR_METRICS == registry.per_factor_metrics()
  assert configs.ACTIVE_SCORES == registry.active_scores()


def test_key_headline_summary_and_report_metrics_are_registered_and_derived():
  evaluate_tags = [tag for tag, _ in summaries.KEY_METRICS if tag.startswith("evaluate/")]
  assert tuple((tag, title) for tag, title in summaries.KEY_METRICS
               if tag in evaluate_tags) == registry.key_metrics()
  for tag in evaluate_tags:
    name = tag.removeprefix("evaluate/")
    assert registry.title(name) == dict(summaries.KEY_METRICS)[tag]
  assert kfp_adapter._HEADLINE_METRICS == registry.headline_metrics()  # pylint: disable=protected-access
  assert evaluate.SUMMARY_METRICS == registry.summary_metrics()
  assert set(registry.headline_metrics()) <= set(registry.summary_metrics())
  for name in registry.summary_metrics():
    assert name in registry.METRICS
  assert report.SCORE_LABELS == registry.score_titles()
  for key, header, _, higher in report.SEED_COLUMNS:
    if key in registry.METRICS:  # the studies' own numbers (class entropy) keep their titles
      assert (header, higher) == (registry.get(key).header, registry.get(key).higher_is_better)


def test_a_metric_added_to_the_registry_shows_up_in_the_derived_tables():
  added = registry.Metric("new_score", "new score", registry.HIGHER, "factors",
                          "kerasvae.metrics.mig:compute_mig", per_factor=True, active=True,
                          summary=99, headline=True, key_metric=99, active_key_metric=100)
  metrics = {**registry.METRICS, added.name: added}
  assert registry.threshold_metrics(metrics)[-1] == "new_score"
  assert registry.per_factor_metrics(metrics)[-1] == "new_score"
  assert registry.active_scores(metrics)[-1] == "new_score"
  assert registry.summary_metrics(metrics)[-1] == "new_score"
  assert registry.headline_metrics(metrics)[-1] == "new_score"
  assert registry.key_metrics(metrics)[-2:] == (
      ("evaluate/new_score", "new score"), ("evaluate/new_score_active", "new score, active latents"))
  assert list(registry.score_titles(metrics).items())[-2:] == [
      ("new_score", "new score"), ("new_score_active", "new score, active latents")]
  quiet = dataclasses.replace(added, threshold=False, summary=0, headline=False, key_metric=0,
                              active_key_metric=0, active=False, per_factor=False)
  metrics[added.name] = quiet
  for derive in (registry.threshold_metrics, registry.per_factor_metrics, registry.active_scores,
                 registry.summary_metrics, registry.headline_metrics, registry.score_titles):
    assert "new_score" not in derive(metrics), derive
  assert "evaluate/new_score" not in dict(registry.key_metrics(metrics))


def test_metrics_on_ground_truth_factors_are_computed_by_a_ground_truth_score():
  score_functions = {score.compute for score in registry.GROUND_TRUTH_SCORES}
  factor_functions = {m.compute for m in METRICS if m.needs == "factors"}
  assert factor_functions == score_functions
  for score in registry.GROUND_TRUTH_SCORES:
    assert score.switch is None or isinstance(getattr(configs.EvaluateConfig(), score.switch),
                                              bool)
  without_dci = registry.ground_truth_scores(configs.EvaluateConfig(dci=False))
  assert [s.label for s in without_dci] == ["β-VAE score", "FactorVAE score", "MIG", "SAP"]


def test_what_a_model_kind_lacks_needs_a_posterior():
  for kind in kinds.KINDS.values():
    for name in kind.model_class().not_applicable_metrics:
      assert registry.get(name).needs == "posterior", (kind.name, name)


def test_the_evaluate_step_writes_every_metric_on_factors_and_registers_every_number():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import ground_truth  # pylint: disable=import-outside-toplevel

  class FactorModel:  # the codes are the factors themselves
    def encode_mean(self, x):
      return tf.reshape(tf.cast(x, tf.float32), [-1, 2])

  config = configs.EvaluateConfig(disentanglement_train_points=40, disentanglement_eval_points=20)
  out = evaluate.disentanglement_metrics(FactorModel(), ground_truth.FactorGrid((3, 4)), config,
                                         show_progress=False)
  written = {m.name for m in METRICS if m.needs == "factors"}
  assert written <= set(out), written - set(out)
  numbers = [k for k, v in out.items() if isinstance(v, (int, float)) and "/" not in k]
  assert {k.removesuffix(registry.ACTIVE_SUFFIX) for k in numbers} <= set(registry.METRICS)


def test_the_registry_imports_neither_tensorflow_keras_nor_the_metric_functions():
  code = ("import sys; import kerasvae.metrics.registry; from kerasvae.steps import configs; "
          "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn', 'kerasvae.metrics.mig') "
          "if m in sys.modules))")
  proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"
