"""The published numbers (issue 36): one results schema, the tests between settings, and README,
the studies index and the reports rendered from the committed results.json files."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kerasvae.studies import core
from kerasvae.studies import published
from kerasvae.studies import report
from kerasvae.studies import schema

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "studies"


def test_committed_docs_are_what_render_docs_writes():
  """A number typed by hand into README's studies table, the studies index or a report's
  across-seed section differs from the rendering and fails here: run
  `kerasvae study render-docs` from the repository's root."""
  for path, text in published.rendered_files(ROOT, draw=False).items():
    assert path.read_text() == text, (
        f"{path.relative_to(ROOT)} differs from its rendering from results.json: run "
        "`kerasvae study render-docs`")


def _all_seed_mean_sds(results):
  """Every 'm ± sd' the strict aggregator gives for a study, at 0-4 digits."""
  found = set()
  trials = published.trials_from_results(results)
  for group in report.by_setting(trials).values():
    keys = {k for t in group for k, v in t.metrics.items() if report.is_number(v)}
    for key in keys:
      try:
        values = report.seed_values(group, key, results["study"])
      except schema.MissingSeedError:  # a first-seed-only number: never averaged
        continue
      if len(values) < 2:
        continue
      for digits in range(5):
        found.add(report.mean_sd(values, digits).replace("-", "−"))
  for group in _ood_values(results) + _budget_shares(results):  # numbers derived per seed
    for digits in range(5):
      found.add(report.mean_sd(group, digits).replace("-", "−"))
  return found


def _budget_shares(results):
  """The budget study's factor shares (best latent's I(z; v) / H(v)) over seeds, per budget."""
  if results.get("study") != "budget":
    return []
  from kerasvae.studies import budget  # pylint: disable=import-outside-toplevel
  out = []
  for group in report.by_setting(published.trials_from_results(results)).values():
    shares = [s for s in (budget.best_shares(t) for t in group) if s is not None]
    if len(shares) > 1:
      out += [np.asarray(column, np.float64) for column in np.asarray(shares).T]
  return out


def _ood_values(results):
  """The ood study's numbers over seeds: every number its trials' `ood` records hold (detection
  scores per OOD set, in-distribution score means), grouped by setting and place."""
  if results.get("study") != "ood":
    return []
  groups = {}

  def walk(value, key):
    if isinstance(value, dict):
      for name, inner in value.items():
        walk(inner, key + (name,))
    elif report.is_number(value):
      groups.setdefault(key, []).append(float(value))

  for trial in results["trials"]:
    walk(trial["ood"], (trial["setting"],))
  return [np.asarray(v, np.float64) for v in groups.values() if len(v) > 1]


def test_every_plus_minus_is_an_all_seed_mean_and_sd():
  """Each 'a ± b' of README.md, docs/studies/README.md and a report is the mean ± sd over
  every seed of a setting of its results.json (README and the index: of some study's)."""
  per_study = {p.parent.name: _all_seed_mean_sds(published.load_results(p))
               for p in DOCS.glob("*/results.json")}
  every = set().union(*per_study.values())
  pattern = re.compile(r"([−-]?\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")
  checked = 0
  for doc in [ROOT / "README.md", DOCS / "README.md"] + sorted(DOCS.glob("*/report.md")):
    allowed = per_study.get(doc.parent.name, every) if doc.name == "report.md" else every
    for match in pattern.finditer(doc.read_text()):
      value = f"{match.group(1).replace('-', '−')} ± {match.group(2)}"
      assert value in allowed, f"{doc.relative_to(ROOT)}: {match.group(0)} is no all-seed mean ± sd"
      checked += 1
  assert checked > 500


def test_committed_trials_of_a_setting_share_their_averaged_keys():
  """After the migration no setting's seeds differ in a number the across-seed table averages."""
  for path in DOCS.glob("*/results.json"):
    results = published.load_results(path)
    trials = published.trials_from_results(results)
    for group in report.by_setting(trials).values():
      for key, *_ in report.study_seed_columns(trials):
        report.seed_values(group, key, results["study"])  # raises MissingSeedError otherwise


def test_default_sampler_rule_copies_the_same_measurement_under_its_bare_name():
  ae_seed_0 = {"name": "autoencoder seed 0", "setting": "autoencoder", "seed": 0, "metrics": {
      "gaussian/frechet_distance": 31.0, "uniform_box/frechet_distance": 17.0,
      "gaussian/precision": 0.5, "reconstruction": 88.0}}
  vae_seed_0 = {"name": "VAE seed 0", "setting": "VAE", "seed": 0, "metrics": {
      "prior/frechet_distance": 33.0, "kl": 18.0}}
  vae_seed_1 = {"name": "VAE seed 1", "setting": "VAE", "seed": 1, "metrics": {
      "frechet_distance": 35.0, "kl": 18.1}}
  results, applied = schema.migrate_results({"trials": [ae_seed_0, vae_seed_0, vae_seed_1]})
  assert applied == ["default_sampler_samples"]
  assert ae_seed_0["metrics"]["frechet_distance"] == 31.0  # the Gaussian fitted to the codes
  assert ae_seed_0["metrics"]["precision"] == 0.5
  assert vae_seed_0["metrics"]["frechet_distance"] == 33.0  # the prior
  assert vae_seed_1["metrics"]["frechet_distance"] == 35.0  # untouched
  assert results["schema"]["migrations"] == [{
      "rule": "default_sampler_samples", "description": schema.RULES["default_sampler_samples"],
      "trials": ["autoencoder seed 0", "VAE seed 0"]}]
  assert schema.migrate_results(results)[1] == []  # idempotent: recorded once


def test_setting_and_seed_rule_of_results_written_before_studies_had_seeds():
  trials = [{"name": "β=4 seed 2", "overrides": {"model.kl_weight": 4.0, "train.seed": 2},
             "metrics": {}},
            {"name": "β=16", "overrides": {"model.kl_weight": 16.0}, "metrics": {}}]
  schema.migrate_results({"trials": trials})
  assert (trials[0]["setting"], trials[0]["seed"]) == ("β=4", 2)
  assert (trials[1]["setting"], trials[1]["seed"]) == ("β=16", 0)


def test_the_aggregator_refuses_a_metric_a_seed_lacks():
  group = [core.Trial(f"AE seed {s}", {}, metrics=m, setting="AE", seed=s)
           for s, m in enumerate(({"fd": 1.0}, {"fd": 2.0}, {"recall": 0.5}))]
  with pytest.raises(schema.MissingSeedError) as error:
    report.seed_values(group, "fd", study="ae-vs-vae")
  message = str(error.value)
  assert ("'fd'" in message and "'AE'" in message and "'ae-vs-vae'" in message
          and "missing in seeds [2]" in message and "present in seeds [0, 1]" in message)
  assert len(report.seed_values(group, "absent")) == 0  # no seed has it: nothing to average
  with pytest.raises(schema.MissingSeedError):
    report.seed_summary(group, [("fd", "FD", 1, False)], study="ae-vs-vae")


def test_welch_against_its_formula_and_scipy():
  a, b = np.array([1.0, 2.0, 4.0, 3.5]), np.array([0.2, 0.1, 0.9])
  result = report.welch(a, b)
  va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
  df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
  half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
  assert result["difference"] == pytest.approx(a.mean() - b.mean())
  assert result["df"] == pytest.approx(df)
  assert (result["low"], result["high"]) == pytest.approx(
      (a.mean() - b.mean() - half, a.mean() - b.mean() + half))
  assert result["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
  assert report.welch([1.0, 1.0], [1.0, 1.0])["p_value"] == 1.0  # no spread, no difference
  assert report.welch([2.0, 2.0], [1.0, 1.0])["p_value"] == 0.0
  with pytest.raises(ValueError, match="at least two values"):
    report.welch([1.0], [1.0, 2.0])


def test_holm_adjusts_step_down_and_keeps_the_order():
  # Sorted 0.01, 0.03, 0.04: 3 × 0.01, max(0.03, 2 × 0.03), max(0.06, 1 × 0.04).
  assert report.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
  assert report.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
  assert report.holm([]) == []


def test_detectable_difference_has_the_stated_power():
  """At the detectable difference a simulated Welch test rejects about 80 % of the time."""
  rng = np.random.default_rng(0)
  se = np.sqrt(2 / 5)  # two groups of five with sd 1
  shift = report.detectable_difference(se, 8.0, 0.05)
  rejected = np.mean([stats.ttest_ind(rng.normal(shift, 1, 5), rng.normal(0, 1, 5)).pvalue < 0.05
                      for _ in range(2000)])
  assert rejected == pytest.approx(0.8, abs=0.04)


def test_comparison_pairs():
  assert report.comparison_pairs(["a", "b", "c"], "neighbours") == [("b", "a"), ("c", "b")]
  assert report.comparison_pairs(["a", "b", "c"], "against_first") == [("b", "a"), ("c", "a")]
  assert len(report.comparison_pairs(["a", "b", "c", "d"])) == 6
  with pytest.raises(ValueError, match="comparison plan"):
    report.comparison_pairs(["a"], "nope")


def test_a_study_with_fewer_seeds_than_configured_names_the_pending_ones(tmp_path):
  results = json.loads((DOCS / "priors" / "results.json").read_text())
  text = published.across_seeds_text(tmp_path / "priors", schema.migrate_results(results)[0])
  configured = published.configured_seeds("priors", results)
  pending = [s for s in configured if s not in (0, 1, 2)]
  if pending:
    assert "**Seeds pending.**" in text and report.seed_phrase(pending) in text
  assert "over training seeds 0, 1 and 2" in text


def test_every_committed_figure_is_referenced_by_its_report():
  for report_path in DOCS.glob("*/report.md"):
    text = report_path.read_text()
    for figure in (report_path.parent / "figures").glob("*.png"):
      assert f"figures/{figure.name}" in text, f"{figure.relative_to(ROOT)} is in no report"


def test_inline_values_in_prose_are_rendered_from_results_and_an_edit_is_caught():
  """Numbers in README and docs prose sit between value markers; render-docs writes them."""
  docs_dir = ROOT / "docs" / "studies"
  readme = (ROOT / "README.md").read_text()
  names = set(published.INLINE_VALUE.findall(readme + (ROOT / "docs" / "scaling.md").read_text()))
  assert {n for n, *_ in names} >= {"bf16-speedup", "full-mlp-trial-minutes", "float32-elbo-sd"}
  edited = readme.replace("<!-- value:full-mlp-hours -->", "<!-- value:full-mlp-hours -->9", 1)
  assert edited != readme and published.render_inline_values(edited, docs_dir) == readme
  with pytest.raises(ValueError, match=r"Expected an inline value among .* value:nope"):
    published.render_inline_values("<!-- value:nope -->1<!-- /value -->", docs_dir)


def test_an_inline_value_with_arguments_is_a_setting_s_all_seed_mean_or_one_seed():
  docs_dir = ROOT / "docs" / "studies"
  results = published.load_results(docs_dir / "disentanglement-full-mlp" / "results.json")
  mig = [t["metrics"]["mig"] for t in results["trials"] if t["setting"] == "β=4"]
  marker = ('<!-- value:mean-sd study=disentanglement-full-mlp setting="β=4" metric=mig '
            'digits=3 -->')
  text = published.render_inline_values(f"{marker}?<!-- /value -->", docs_dir)
  assert text == f"{marker}{np.mean(mig):.3f} ± {np.std(mig, ddof=1):.3f}<!-- /value -->"
  one = published.render_inline_values(
      '<!-- value:seed study=disentanglement-full-mlp setting="β=4" seed=1 metric=mig '
      'digits=3 -->?<!-- /value -->', docs_dir)
  assert f"-->{mig[1]:.3f}<!--" in one
  with pytest.raises(ValueError, match=r"Expected a trial of setting 'β=5' in "
                     r"docs/studies/disentanglement-full-mlp/results.json"):
    published.render_inline_values(marker.replace("β=4", "β=5") + "?<!-- /value -->", docs_dir)


def test_the_dsprites_budgets_of_the_history_page_are_each_report_s_budget():
  """docs/studies/disentanglement.md's images per model and share of disentanglement_lib's
  budget render as each study's report states them ('Each trial saw about N images (P% of')."""
  for folder in ("disentanglement", "disentanglement-full-mlp", "disentanglement-sweep-mlp"):
    seen, share = re.search(r"Each trial saw about ([\d,]+) images \(([\d.]+)% of",
                            (DOCS / folder / "report.md").read_text()).groups()
    seen, share = int(seen.replace(",", "")), float(share)
    images = published.INLINE_VALUES[f"{folder}-images"](DOCS)
    if seen >= 1e6:
      assert images == f"{seen / 1e6:.1f} million", folder
    else:
      assert int(images.replace(",", "")) == round(seen, -3), folder
    rendered = float(published.INLINE_VALUES[f"{folder}-budget-share"](DOCS).rstrip(" %"))
    assert abs(rendered - share) <= (0.5 if share >= 10 else 0.05), folder


def test_the_full_mlp_time_ranges_are_its_trials_extremes():
  """The history page's minutes and images/s of the full-grid MLP, against results.json read
  here: 16 epochs of 10,948 steps of 64 images per trial."""
  trials = json.loads((DOCS / "disentanglement-full-mlp" / "results.json").read_text())["trials"]
  train = np.array([t["train_seconds"] for t in trials])
  evaluate = np.array([t["evaluate_seconds"] for t in trials])
  assert {(t["epochs_run"], t["steps_per_epoch"]) for t in trials} == {(16, 10948)}
  rate = 16 * 10948 * 64 / train
  assert published.INLINE_VALUES["full-mlp-trial-minutes-range"](DOCS) == (
      f"{round(train.min() / 60)}-{round(train.max() / 60)}")
  assert published.INLINE_VALUES["full-mlp-images-per-second-range"](DOCS) == (
      f"{round(rate.min()):,}-{round(rate.max()):,}")
  assert published.INLINE_VALUES["full-mlp-evaluate-minutes-range"](DOCS) == (
      f"{evaluate.min() / 60:.1f}-{evaluate.max() / 60:.1f}")
  counts = json.loads((DOCS / "disentanglement" / "results.json").read_text())["split_counts"]
  assert published.INLINE_VALUES["disentanglement-splits"](DOCS) == (
      f"{sum(counts.values()):,} images ({counts['train']:,} train, "
      f"{counts['validation']:,} validation, {counts['test']:,} test)")
