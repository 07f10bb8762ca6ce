"""`kerasvae study NAME --quick`: every study end to end, plus the study helpers' arithmetic.

The MNIST studies need the shared MNIST files (skipped without them, see
`conftest.mnist_dir`); the disentanglement study uses built-in dSprites and
always runs.
"""

import json
import math
import re
import types
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf
import yaml

from kerasvae import artifacts
from kerasvae import cli
from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae import studies
from kerasvae.config import ConfigError
from kerasvae.studies import core
from kerasvae.studies import disentanglement
from kerasvae.studies import figures
from kerasvae.studies import methods
from kerasvae.studies import mnist
from kerasvae.studies import precision
from kerasvae.studies import report
from kerasvae.studies.mnist import ae_vs_vae

TABLE_KEYS = {
    "latent-dim": ("elbo", "reconstruction", "kl", "iwae_log_likelihood", "active_units",
                   "frechet_distance", "classifier_confidence", "class_entropy_bits",
                   "grey_fraction"),
    "beta": ("elbo", "reconstruction", "kl", "iwae_log_likelihood", "active_units", "kl_per_dim",
             "frechet_distance", "classifier_confidence"),
    "ae-vs-vae": ("reconstruction", "interpolation/classifier_confidence"),
    "priors": ("iwae_log_likelihood", "iwae_log_likelihood_stderr", "elbo", "kl",
               "active_units", "frechet_distance"),
    "disentanglement": ("beta_vae_score", "factor_vae_score", "mig", "reconstruction", "kl",
                        "kl_per_dim", "active_units"),
}
TRIALS = {"latent-dim": ["2", "10", "25", "50"], "beta": ["β=1", "β=5", "β=10", "β=40"],
          "ae-vs-vae": ["autoencoder", "noisy AE, 0.05·R per dimension",
                        "noisy AE, 0.05·R in total", "VAE"],
          "priors": ["standard Gaussian", "mixture", "VampPrior"],
          "disentanglement": ["β=1", "β=4", "β=8", "β=16"],
          "methods": ["β-VAE", "β-TCVAE", "FactorVAE", "DIP-VAE-I", "DIP-VAE-II", "AnnealedVAE"],
          "precision": ["float32", "mixed_bfloat16"]}


def _mnist_overrides(mnist_dir):
  return [f"ingest.data.idx.images={mnist_dir / 't10k-images-idx3-ubyte.gz'}",
          f"ingest.data.idx.labels={mnist_dir / 't10k-labels-idx1-ubyte.gz'}"]


def _results_table(text):
  """The rows (lists of cells) of the first markdown table after '## Results'."""
  section = text.split("## Results", 1)[1]
  first_block = []
  for line in section.splitlines():
    if line.startswith("|"):
      first_block.append(line)
    elif first_block:
      break
  rows = [[c.strip() for c in line.strip("|").split("|")] for line in first_block]
  return rows[0], rows[2:]  # header, body (after the |---| line)


def _hparams_sessions(log_dir):
  """Trial ids of the HParams sessions written under `log_dir`."""
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=import-outside-toplevel
  sessions = []
  for path in Path(log_dir).glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "hparams":
          data = plugin_data_pb2.HParamsPluginData.FromString(
              value.metadata.plugin_data.content)
          if data.HasField("session_start_info"):
            sessions.append(data.session_start_info.group_name or "session")
  return sessions


def _scalar_tags(log_dir):
  tags = set()
  for path in Path(log_dir).glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      tags.update(v.tag for v in event.summary.value)
  return tags


def check_study(name, output, report_path, sample_quality):
  """What every study must produce: report table, figures, results.json, shared ingest, HParams."""
  assert report_path == output / "report.md"
  text = report_path.read_text()
  results = json.loads((output / "results.json").read_text())
  trials = results["trials"]
  assert [t["name"] for t in trials] == TRIALS[name]
  # The table has one row per trial (plus the 'real digits' reference with sample quality).
  header, rows = _results_table(text)
  first_cells = [r[0] for r in rows]
  if name == "ae-vs-vae":
    assert first_cells[:7] == ["autoencoder"] * 2 + ["noisy AE (0.05·R per dimension)"] * 2 + [
        "noisy AE (0.05·R in total)"] * 2 + ["VAE"]
  else:
    labels = [t["name"] for t in trials]
    if name in ("beta", "disentanglement"):
      labels = [t["name"].split("=")[1] for t in trials]  # "β=4" -> "4"
    if name == "priors":
      assert [c.split(" (")[0].split(" N(")[0] for c in first_cells[:3]] == [
          "standard Gaussian", "Gaussian mixture", "VampPrior"]
    else:
      assert first_cells[:len(trials)] == labels
  assert len(rows) == len(trials) + (1 if sample_quality else 0) + (
      3 if name == "ae-vs-vae" else 0)  # two samplers for each autoencoder
  if sample_quality:
    assert rows[-1][0] == "real digits"
  # results.json holds every number the table shows, and the table shows those numbers.
  for trial in trials:
    keys = TABLE_KEYS[name]
    if name == "ae-vs-vae":
      samplers = ("prior",) if trial["name"] == "VAE" else ("uniform_box", "gaussian")
      keys += tuple(f"{s}/{k}" for s in samplers for k in (
          "frechet_distance", "classifier_confidence", "class_entropy_bits", "grey_fraction",
          "nearest_code_ratio"))
    for key in keys:
      assert key in trial["metrics"], (trial["name"], key)
    metrics = trial["metrics"]
    if "elbo" in metrics:
      np.testing.assert_allclose(metrics["elbo"], -(metrics["reconstruction"] + metrics["kl"]),
                                 rtol=1e-6)
  if name in ("latent-dim", "beta"):
    column = header.index("ELBO")
    for row, trial in zip(rows, trials):
      assert row[column] == f"{trial['metrics']['elbo']:.2f}"
  if name == "ae-vs-vae":
    column = header.index("FD ↓")
    expected = [f"{t['metrics'][f'{s}/frechet_distance']:.1f}" for t in trials
                for s in (("prior",) if t["name"] == "VAE" else ("uniform_box", "gaussian"))]
    assert [r[column] for r in rows[:7]] == expected
  if name == "disentanglement":
    column = header.index("β-VAE score")
    for row, trial in zip(rows, trials):
      assert row[column] == f"{trial['metrics']['beta_vae_score']:.3f}"
      assert 0.0 <= trial["metrics"]["beta_vae_score"] <= 1.0
  # Every embedded figure exists in the study dir and is a real picture.
  figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
  assert figures and len(figures) == len(results["figures"])
  for rel in figures:
    assert not Path(rel).is_absolute()
    assert (output / rel).stat().st_size > 1000, rel
  # All trials share one Examples artifact.
  examples = {json.loads((Path(t["run_dir"]) / "ingest" / "metadata.json").read_text())
              ["outputs"]["examples"] for t in trials}
  assert len(examples) == 1
  assert len(list((output / "runs" / "examples").iterdir())) == 1
  # One HParams session per trial, each in its own run, with the study's numbers beside it.
  run_dirs = {Path(t["run_dir"]) for t in trials}
  assert len(run_dirs) == len(trials)
  for run_dir in run_dirs:
    assert run_dir.parent == output / "runs"
    assert len(_hparams_sessions(run_dir / "train" / "logs" / "validation")) == 1
    assert any(tag.startswith("study/") for tag in
               _scalar_tags(run_dir / "train" / "logs" / "validation"))
  assert "Quick mode" in text and "## What the numbers say" in text
  if report.without_findings is REAL_WITHOUT_FINDINGS:  # a few steps support no conclusion
    findings = text.split("## What the numbers say", 1)[1].split("\n## ", 1)[0]
    assert findings.strip() == report.QUICK_FINDINGS
  return text, results


REAL_WITHOUT_FINDINGS = report.without_findings


def check_ae_vs_vae_noise(text, results):
  """Both readings of 'variance 0.05·R' are trained and answered from their own numbers."""
  metrics = {t["name"]: t["metrics"] for t in results["trials"]}
  per_dim, total = metrics["noisy AE, 0.05·R per dimension"], metrics["noisy AE, 0.05·R in total"]
  # 10 latents: per dimension the noise totals 10 x 0.05·R (SNR 2 per latent), in total 0.05·R.
  assert per_dim["code_noise/total_fraction"] == pytest.approx(0.5)
  assert per_dim["code_noise/snr_per_dimension"] == pytest.approx(2.0)
  assert total["code_noise/per_dimension_fraction"] == pytest.approx(0.005)
  assert total["code_noise/max_bits"] == pytest.approx(5 * math.log2(21))
  ae = metrics["autoencoder"]
  for reading, m in (("0.05·R per dimension", per_dim), ("0.05·R in total", total)):
    paragraph = text.split(f"**Code noise {reading}.**", 1)[1].split("\n\n", 1)[0]
    change = {s: m[f"{s}/frechet_distance"] / ae[f"{s}/frechet_distance"]
              for s in ("uniform_box", "gaussian")}
    if all(c < 1 - mnist.NOTABLE_CHANGE for c in change.values()):
      assert "Yes**" in paragraph
    elif all(c > 1 + mnist.NOTABLE_CHANGE for c in change.values()):
      assert "No**" in paragraph
    elif all(abs(c - 1) <= mnist.NOTABLE_CHANGE for c in change.values()):
      assert "Hardly**" in paragraph
    else:
      assert "It depends on the sampler**" in paragraph
    assert f"FD {m['uniform_box/frechet_distance']:.1f} from the box" in paragraph
    assert f"reconstructs held-out digits at {m['reconstruction']:.1f} nats" in paragraph
  # The noise-level table: the plain AE at 0, the total reading at 0.05·R, per dimension at 0.5·R.
  section = text.split("## Noise level", 1)[1].split("## What the numbers say", 1)[0]
  levels = [line.split("|")[1].strip() for line in section.splitlines()
            if line.startswith("|") and not line.startswith("|---")][1:]
  assert levels == ["0", "0.05", "0.5"]
  assert "noise_sweep_ae_vs_vae.png" in text


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("studies")


def test_disentanglement_quick(study_dir):
  output = study_dir / "disentanglement"
  path = studies.run_study("disentanglement", quick=True, output=output)
  text, results = check_study("disentanglement", output, path, sample_quality=False)
  assert "dSprites" in text and "β = 4" in text
  assert results["split_counts"] == {"train": 842, "validation": 108, "test": 50}
  # A rerun reuses every trial's training and evaluation.
  mtimes = [(Path(t["run_dir"]) / "train" / "metadata.json").stat().st_mtime
            for t in results["trials"]]
  studies.run_study("disentanglement", quick=True, output=output)
  assert mtimes == [(Path(t["run_dir"]) / "train" / "metadata.json").stat().st_mtime
                    for t in results["trials"]]
  assert "*Reproduce:* `kerasvae study disentanglement --quick`" in Path(path).read_text()


def test_methods_quick(study_dir, keep_quick_findings):
  """Every method trained and scored; a section per metric its metrics.json holds; the box plot."""
  output = study_dir / "methods"
  path = studies.run_study("methods", quick=True, output=output)
  text = path.read_text()
  results = json.loads((output / "results.json").read_text())
  trials = results["trials"]
  assert [t["name"] for t in trials] == TRIALS["methods"]
  kinds = ["vae", "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae"]
  assert [t["overrides"]["model.kind"] for t in trials] == kinds
  trial_objects = [core.Trial(t["name"], t["overrides"], metrics=t["metrics"],
                              setting=t["setting"]) for t in trials]
  scores = report.score_keys(trial_objects)
  assert {"beta_vae_score", "factor_vae_score", "mig"} <= set(scores)
  for key in scores + ["elbo", "reconstruction", "kl", "active_units"]:
    label = report.score_label(key) if key in scores else dict(
        (c[0], c[1]) for c in methods.MODEL_COLUMNS)[key]
    section = text.split(f"\n### {label}", 1)[1].split("\n### ", 1)[0]
    # One row per method, its (one seed's) value as the metrics hold it.
    digits = 3 if key in scores else (1 if key == "active_units" else 2)
    for t in trials:
      assert f"| {t['name']} | 1 | {t['metrics'][key]:.{digits}f} |" in section, (key, t["name"])
  mig = text.split("\n### MIG", 1)[1].split("\n### ", 1)[0]
  assert "| method | shape | scale | orientation | posX | posY |" in mig
  figures_in_text = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
  assert len(figures_in_text) == len(results["figures"])
  for rel in figures_in_text:
    assert (output / rel).stat().st_size > 1000, rel
  names = {Path(f).name for f in figures_in_text}
  assert {"methods_box.png", "methods_box_per_factor.png", "rate_distortion.png"} <= names
  assert {f"traversals_{s}.png" for s in ("beta-VAE", "beta-TCVAE", "FactorVAE", "DIP-VAE-I",
                                          "DIP-VAE-II", "AnnealedVAE")} <= names
  assert "One training seed per method" in text and "**One seed.**" in text
  assert "*Reproduce:* `kerasvae study methods --quick`" in text


def test_precision_quick(study_dir):
  """Both precisions trained; the speed, inference and picture sections from their runs."""
  output = study_dir / "precision"
  path = studies.run_study("precision", quick=True, output=output)
  text = path.read_text()
  results = json.loads((output / "results.json").read_text())
  trials = {t["name"]: t for t in results["trials"]}
  assert list(trials) == TRIALS["precision"]
  for name, trial in trials.items():
    meta = json.loads((Path(trial["run_dir"]) / "train" / "metadata.json").read_text())
    assert meta["config"]["train"]["precision"] == name
    assert trial["metrics"][precision.SPEED] > 0
  speeds = [trials[n]["metrics"][precision.SPEED] for n in TRIALS["precision"]]
  assert (f"| mixed_bfloat16 | 0 | {speeds[0]:,.0f} | {speeds[1]:,.0f} | "
          f"{speeds[1] / speeds[0]:.2f}x |") in text
  assert f"Trained on: `{artifacts.cpu_description()}`." in text
  # The bfloat16 model's ELBO as it computes is the evaluate step's (same images and seed).
  mixed = trials["mixed_bfloat16"]["metrics"]
  section = text.split("## The same weights computed in float32", 1)[1]
  row = section.split("| mixed_bfloat16 | ", 1)[1].split("\n")[0]
  as_trained, in_float32 = (float(c) for c in row.split(" | ")[:2])
  assert as_trained == pytest.approx(mixed["elbo"], abs=1e-3)
  assert in_float32 == pytest.approx(mixed["elbo_float32_inference"], abs=1e-3)
  assert abs(as_trained - in_float32) < 0.05 * abs(in_float32)
  assert "one training seed, so no difference from float32" in text
  for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
    assert (output / rel).stat().st_size > 1000, rel
  assert "precision_pictures.png" in text
  assert "*Reproduce:* `kerasvae study precision --quick`" in text


def test_precision_report_pairs_seeds_and_separates_only_disjoint_ranges(tmp_path):
  def trial(setting, seed, rate, elbo, kl):
    run_dir = tmp_path / f"{setting}-{seed}"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "history.json").write_text(json.dumps(
        [{"examples_per_second": 1.0}, {"examples_per_second": rate - 10},
         {"examples_per_second": rate + 10}]))  # the first epoch (tracing) is left out
    machine = {"cpu": "CPU X"}
    if setting == "mixed_bfloat16" and seed == 1:  # a run under an ISA cap is another machine
      machine["kernel_switches"] = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    (run_dir / "train" / "metadata.json").write_text(json.dumps({"machine": machine}))
    t = core.Trial(f"{setting} seed {seed}", {}, run_dir=run_dir, setting=setting, seed=seed,
                   metrics={"elbo": elbo, "kl": kl})
    t.metrics[precision.SPEED] = precision.training_rate(t)
    return t
  # ELBOs overlap (-101..-99 against -100.5..-98.5); KL lower on every seed.
  trials = [trial("float32", s, 100.0 * (s + 1), -100.0 + e, 5.0 + s)
            for s, e in zip((0, 1, 2), (-1.0, 0.0, 1.0))]
  trials += [trial("mixed_bfloat16", s, 150.0 * (s + 1), -99.5 + e, 1.0 + s)
             for s, e in zip((2, 0, 1), (1.0, -1.0, 0.0))]  # seeds in another order
  groups = report.by_setting(trials)
  speed = "\n\n".join(precision._speed_section(groups, trials))  # pylint: disable=protected-access
  for seed in (0, 1, 2):  # each seed against the float32 run of the same seed
    assert (f"| mixed_bfloat16 | {seed} | {100 * (seed + 1):,} | {150 * (seed + 1):,} | "
            "1.50x |") in speed
  assert "Trained on: `CPU X`; `CPU X, ONEDNN_MAX_CPU_ISA=AVX2`." in speed
  assert "one after another in one process" in speed
  swept = "\n\n".join(precision._speed_section(groups, trials, sweep=True))  # pylint: disable=protected-access
  assert "their own tasks of a Kubeflow sweep, side by side" in swept
  assert "at 1.50–1.50x the images per second of float32, seed by seed" in speed
  verdict = "\n".join(precision._verdict(groups))  # pylint: disable=protected-access
  assert ("different after the Holm correction on KL: float32 above mixed_bfloat16: Δ = +4.00 "
          in verdict)
  assert "no difference detected on the other numbers" in verdict
  assert "test ELBO: " not in verdict and "(power: 80 % only for test ELBO |Δ| ≥" in verdict
  # Seed by seed against the float32 trial of the same seed; a metric neither has: '–'.
  for seed in (0, 1, 2):
    assert f"| mixed_bfloat16 | {seed} | +0.50 | – | – | -4.00 | – |" in verdict
  assert "float32 seeds' standard deviation: test ELBO 1.00, KL 1.00)" in verdict
  trials[3].metrics["kl"] = 7.5  # one seed now inside float32's range
  groups = report.by_setting(trials)
  verdict = "\n".join(precision._verdict(groups))  # pylint: disable=protected-access
  assert "no difference detected on any number" in verdict


def test_methods_report_reads_its_scores_from_the_metrics(tmp_path):
  """Scores beyond the three (DCI, SAP, a new one written per factor) get their columns,
  sections and panels; a pair is different only where the Holm-corrected Welch test says so."""
  def trial(method, seed, offset):
    metrics = {"beta_vae_score": 0.8 + offset, "mig": 0.1 + offset, "mig_per_factor":
               [0.2 + offset, 0.0], "factor_names": ["shape", "x"], "dci_completeness": 0.3,
               "dci_completeness/shape": 0.4, "sap": 0.05 + offset,
               "new_score": 0.5, "new_score_per_factor": [0.5, 0.5],
               "beta_vae_train_accuracy": 0.9, "elbo": -100.0 - 10 * offset}
    return core.Trial(f"{method} seed {seed}", {}, metrics=metrics, setting=method, seed=seed)
  trials = ([trial("A", s, v) for s, v in enumerate((0.10, 0.12, 0.11))]
            + [trial("B", s, v) for s, v in enumerate((0.00, 0.02, 0.01))]
            + [trial("C", s, v) for s, v in enumerate((0.13, -0.01, 0.05))])
  assert report.score_keys(trials) == ["beta_vae_score", "mig", "dci_completeness", "sap",
                                       "new_score"]
  assert report.per_factor_keys(trials, "mig") == ["mig/shape", "mig/x"]
  assert trials[0].metrics["mig/shape"] == pytest.approx(0.3)
  assert report.per_factor_keys(trials, "dci_completeness") == ["dci_completeness/shape"]
  # In the factors' order, not metrics.json's sorted one.
  sorted_keys = {"sap/x": 0.1, "sap/shape": 0.2, "factor_names": ["x", "shape"]}
  assert report.per_factor_keys([core.Trial("t", {}, metrics=sorted_keys)], "sap") == [
      "sap/x", "sap/shape"]
  assert [c[0] for c in report.study_seed_columns(trials)][-3:] == [
      "dci_completeness", "sap", "new_score"]
  groups = report.by_setting(trials)
  section = methods._metric_section  # pylint: disable=protected-access
  blocks = section(groups, "mig", "MIG", 3, True, ["mig/shape", "mig/x"])
  assert blocks[0] == "### MIG (higher is better)"
  assert "| A | 3 | 0.210 ± 0.010 | 0.200 … 0.220 |" in blocks[1]
  # A's seeds lie far above B's (Welch p < 0.001, Holm over 3 pairs); C's spread is wide.
  assert blocks[2].startswith("Different after the Holm correction: A over B: Δ = +0.100 [")
  assert "No difference detected for the other 2 pairs (power: 80 % only for" in blocks[2]
  assert "| A | 0.310 ± 0.010 | 0.000 ± 0.000 |" in blocks[4]
  elbo = section(groups, "elbo", "ELBO", 2, True, [])
  assert elbo[2].startswith("Different after the Holm correction: B over A: Δ = +1.00 [")
  same = section(groups, "new_score", "new_score", 3, True, [])
  assert same[2].startswith("*No difference detected* between any pair of methods")
  findings = methods._findings(  # pylint: disable=protected-access
      groups, report.score_keys(trials), [0, 1, 2])
  assert any(f.startswith("**MIG.** Highest mean: A (0.210 ± 0.010); the corrected tests put it "
                          "above B only") for f in findings)
  assert any(f.startswith("**new_score.** Highest mean: A and B and C (tied)") for f in findings)
  assert any("The scores do not put the same method first" in f for f in findings)
  panels = [(k, report.score_label(k)) for k in report.score_keys(trials) + ["mig/shape"]]
  assert report.score_label("mig/shape") == "MIG: shape"
  path = figures.seed_box_figure(groups, panels, tmp_path / "box.png", "title")
  assert path == tmp_path / "box.png" and path.stat().st_size > 1000
  assert figures.seed_box_figure(groups, [("absent", "absent")], tmp_path / "no.png", "t") is None
  assert not (tmp_path / "no.png").exists()


def test_methods_report_says_which_method_was_still_learning(tmp_path):
  """The validation ELBO per epoch, mean over seeds, from each trial's history.json."""
  def trial(method, seed, elbos):
    run_dir = tmp_path / f"{method}-{seed}"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "history.json").write_text(json.dumps(
        [{"epoch": i + 1, "validation/elbo": e} for i, e in enumerate(elbos)]))
    return core.Trial(f"{method} seed {seed}", {}, run_dir=run_dir, setting=method, seed=seed,
                      metrics={"mig": 0.1, "reconstruction": 90.0})
  trials = [trial("A", 0, [-200.0, -120.0, -110.0]), trial("A", 1, [-220.0, -130.0, -118.0]),
            trial("B", 0, [-400.0, -300.0, -200.0]), trial("B", 1, [-500.0, -350.0, -270.0])]
  assert report.validation_elbos(trials[0]) == [-200.0, -120.0, -110.0]
  findings = methods._findings(  # pylint: disable=protected-access
      report.by_setting(trials), ["mig"], [0, 1])
  text = "\n".join(findings)
  assert "the largest last-epoch gain is B's (+90.0 nats)" in text
  assert "| A | -210.0 → -125.0 → -114.0 | +11.0 | +8.8 % |" in text
  assert "| B | -450.0 → -325.0 → -235.0 | +90.0 | +27.7 % |" in text
  # Trials without a history (a report read from results.json alone) add nothing.
  assert report.still_learning(report.by_setting([core.Trial("C seed 0", {}, setting="C")])) == []
  assert report.still_learning(report.by_setting(trials), "β")[1].startswith("| β |")


def test_methods_report_with_one_finished_method_compares_nothing():
  """A partial report (`--report-only` while the study trains) with one method's seeds: it said
  'every seed of it above every seed of every other method' with no other method there."""
  trials = [core.Trial(f"A seed {s}", {}, metrics={"mig": 0.1 + s / 100, "reconstruction": 90.0},
                       setting="A", seed=s) for s in (0, 1, 2)]
  groups = report.by_setting(trials)
  findings = methods._findings(groups, ["mig"], [0, 1, 2])  # pylint: disable=protected-access
  assert findings == ["**One method.** Only A is in this report (the others are pending or were "
                      "not run), so nothing is compared: the tables above give its numbers."]
  section = methods._metric_section(groups, "mig", "MIG", 3, True, [])  # pylint: disable=protected-access
  assert section[2] == "Only A is in this report: no other method to compare with."
  across = "\n".join(report.seed_summary(trials, [("mig", "MIG", 3, True)]))
  assert "for every pair" not in across and "Differences the seeds separate" not in across


def test_methods_config_is_the_disentanglement_study_but_for_the_method(tmp_path):
  """Every method trains the `disentanglement` study's network on its data for its budget and
  is scored at its sizes; only the kind and its one setting differ."""
  def without_kind(config):
    data = config_lib.to_dict(config)
    model = {k: v for k, v in data["model"].items()
             if k not in ("kind", *kinds.KINDS) and v is not None}
    # DCI: scored by the methods study, left out of the disentanglement study (its report does
    # not show it, and its classifiers cost 4-5 CPU minutes per model).
    assert data["evaluate"]["dci"] == config.run.name.startswith("methods")
    return (model, data["ingest"], {k: v for k, v in data["train"].items() if k != "seed"},
            {k: v for k, v in data["evaluate"].items() if k != "dci"})
  reference = core.load_study_config(core.resolve_study_config_path("disentanglement"),
                                     output=tmp_path)[3][0].config
  trials = core.load_study_config(core.resolve_study_config_path("methods"), output=tmp_path)[3]
  assert len(trials) == 18 and sorted({t.seed for t in trials}) == [0, 1, 2]
  settings = {t.setting: (t.config.model.kind, t.config.model.settings) for t in trials}
  assert list(settings) == TRIALS["methods"]
  for trial in trials:
    model, ingest, train, evaluate = without_kind(trial.config)
    ref_model, ref_ingest, ref_train, ref_evaluate = without_kind(reference)
    assert (model, train, evaluate) == (ref_model, ref_train, ref_evaluate), trial.name
    assert ingest["data"] == ref_ingest["data"] and ingest["split"] == ref_ingest["split"]
  # The third of each of disentanglement_lib's six values (the YAML's comment).
  assert settings["β-VAE"][1].kl_weight == 4.0
  assert settings["β-TCVAE"][1].tc_weight == 4.0
  assert settings["FactorVAE"][1].gamma == 30.0
  assert (settings["DIP-VAE-I"][1].lambda_od, settings["DIP-VAE-I"][1].lambda_d_factor) == (5, 10)
  assert (settings["DIP-VAE-II"][1].lambda_od, settings["DIP-VAE-II"][1].lambda_d_factor) == (5, 1)
  annealed = settings["AnnealedVAE"][1]
  assert (annealed.max_capacity, annealed.gamma, annealed.capacity_epochs) == (25, 1000, 1)


def test_report_only_trains_nothing_and_names_the_pending_trials(study_dir):
  """A study with one more trial than the finished quick study: --report-only reports on the
  finished ones, names the new one as pending and trains nothing."""
  output = study_dir / "disentanglement"
  if not (output / "results.json").is_file():
    studies.run_study("disentanglement", quick=True, output=output)
  raw = yaml.safe_load((core.STUDY_CONFIG_DIR / "disentanglement.yaml").read_text())
  raw["trials"].append({"name": "β=2", "model.vae.kl_weight": 2.0})
  config = study_dir / "with-pending.yaml"
  config.write_text(yaml.safe_dump(raw, allow_unicode=True))
  runs = sorted(p.name for p in (output / "runs").iterdir())
  path = studies.run_study("disentanglement", config=str(config), quick=True, output=output,
                           report_only=True)
  assert sorted(p.name for p in (output / "runs").iterdir()) == runs  # no new run folder
  text = Path(path).read_text()
  assert ("**Pending.** This report covers the 4 trials that had finished (`--report-only`); "
          "1 more had not and are left out: **β=2**.") in text
  assert f"*Reproduce:* `kerasvae study disentanglement --config {config} --quick`" in text
  results = json.loads((output / "results.json").read_text())
  assert [t["name"] for t in results["trials"]] == ["β=1", "β=4", "β=8", "β=16"]
  assert results["pending"] == ["β=2"]
  with pytest.raises(ConfigError, match="at most one of --force and --report-only"):
    studies.run_study("disentanglement", quick=True, output=output, force=True, report_only=True)
  with pytest.raises(Exception, match="No trial of the study in .* has finished yet"):
    studies.run_study("disentanglement", quick=True, output=study_dir / "empty",
                      report_only=True)


def test_disentanglement_small_reports_seeds(study_dir, keep_quick_findings):
  output = study_dir / "disentanglement-small"
  path = studies.run_study("disentanglement", config="disentanglement-small", quick=True,
                           output=output)
  text = Path(path).read_text()
  results = json.loads((output / "results.json").read_text())
  trials = results["trials"]
  assert [t["name"] for t in trials] == [f"β={b} seed {s}" for b in (1, 4) for s in (0, 1)]
  assert [(t["setting"], t["seed"]) for t in trials] == [(f"β={b}", s) for b in (1, 4)
                                                         for s in (0, 1)]
  header, rows = _results_table(text)
  assert header[:3] == ["β", "seed", "β-VAE score"]
  assert [r[:2] for r in rows] == [[b, s] for b in "14" for s in "01"]
  # The summary row of each β is the mean and spread of its seeds' numbers.
  summary = text.split("Mean ± standard deviation over the seeds:", 1)[1]
  for beta in (1, 4):
    mig = [t["metrics"]["mig"] for t in trials if t["name"].startswith(f"β={beta} ")]
    assert f"| {beta} | 2 | " in summary
    assert f"{np.mean(mig):.3f} ± {np.std(mig, ddof=1):.3f}" in summary
  assert "over 2 and 2 seeds" in text
  assert "*Reproduce:* `kerasvae study disentanglement --config disentanglement-small --quick`" \
      in text
  assert ", seeds 0 and 1). From scratch" in text
  figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
  assert sorted(Path(f).name for f in figures) == sorted(
      [f"{kind}_beta_{b}_seed_{s}.png" for kind in ("traversals", "information") for b in (1, 4)
       for s in (0, 1)] + ["across_seeds.png", "rate_distortion.png"])


@pytest.mark.parametrize("beta1, beta4, expected", [
    ([0.1, 0.11, 0.12], [0.3, 0.31, 0.32], "MIG 0.310 ± 0.010 against 0.110 ± 0.010 (β = 4 "
     "higher: Δ = +0.200 ["),
    ([0.1, 0.3, 0.15], [0.2, 0.25, 0.4], "(no difference detected: Δ = +0.100 ["),
    ([0.1, 0.3, 0.15], [0.2, 0.25, 0.4], "The tests detect no difference between β = 4"),
    ([0.3, 0.31, 0.32], [0.1, 0.11, 0.12], "(β = 1 higher: Δ = -0.200"),
    ([0.3, 0.31, 0.32], [0.1, 0.11, 0.12], "The tests call the plain VAE higher on 1 of the 3 "
     "scores, the other way round from the paper"),
])
def test_disentanglement_seed_verdicts(beta1, beta4, expected):
  trial = lambda mig: core.Trial("t", {}, metrics={"beta_vae_score": 0.5,  # noqa: E731
                                                   "factor_vae_score": 0.5, "mig": mig})
  text = disentanglement._beta_4_against_1([trial(v) for v in beta1],
                                           [trial(v) for v in beta4], "")
  assert expected in text


def test_disentanglement_one_seed_draws_no_verdict():
  """One seed per β: no 'separates' from the error over evaluation points (issue 26)."""
  trial = lambda score: core.Trial("t", {}, metrics={"beta_vae_score": score})  # noqa: E731
  text = disentanglement._beta_4_against_1([trial(0.62)], [trial(0.99)], "")
  assert "cannot be told from one seed" in text and "standard error" not in text


@pytest.mark.parametrize("migs, expected", [
    ({1.0: [0.03, 0.01, 0.07], 8.0: [0.18, 0.10, 0.04], 16.0: [0.05, 0.06, 0.09]},
     "β=8 (no difference from β = 1, 16 detected by the Holm-corrected Welch tests: no "
     "ranking)"),
    ({1.0: [0.03, 0.01, 0.02], 8.0: [0.18, 0.19, 0.20], 16.0: [0.05, 0.06, 0.07]},
     "β=8 (above every other β: Welch, Holm-corrected)"),
    ({1.0: [0.03], 8.0: [0.18]}, "β=8"),
    ({1.0: [0.1, 0.2], 4.0: [0.2, 0.1]}, "β=1 and 4 (tied)"),
    ({1.0: [float("nan")]}, "no β (not measured)"),
])
def test_best_beta_ranks_only_where_the_seeds_separate(migs, expected):
  """'The best MIG is at β = 8' with three seeds says whether its seeds lie above the others'
  (issue 26: a difference only where the seed spread separates it)."""
  groups = {b: [core.Trial("t", {}, metrics={"mig": v}) for v in values]
            for b, values in migs.items()}
  assert disentanglement.best_beta(groups, "mig") == expected


def test_dsprites_data_paragraph_names_the_restricted_grid(tmp_path):
  path = core.resolve_study_config_path("disentanglement-small")
  _, _, _, trials = core.load_study_config(path, output=tmp_path, overrides=[
      "ingest.data.dsprites.pos_y=[0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30]"])
  text = report.data_paragraph(trials[0].config, {"train": 440, "validation": 53, "test": 19})
  assert ("the grid restricted to shapes square; scales 5; orientations 0; pos_y 0, 2, 4, 6, 8, "
          "10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30 (512 images), every image of it. Three "
          "disjoint splits: 440 train, 53 validation") in text
  assert "19 test. Every number below is on the test split." in text
  _, _, _, trials = core.load_study_config(core.resolve_study_config_path("disentanglement"),
                                           output=tmp_path)
  text = report.data_paragraph(trials[0].config, {"train": 36000, "validation": 2000,
                                                  "test": 2000})
  assert "the full grid of 737,280 images, 40,000 images drawn from it with seed 0" in text


@pytest.mark.parametrize("name", ["latent-dim", "beta", "ae-vs-vae", "priors"])
def test_mnist_study_quick(name, study_dir, mnist_dir, request):
  output = study_dir / name
  if name in ("ae-vs-vae", "priors"):  # their findings are checked below
    request.getfixturevalue("keep_quick_findings")
  path = studies.run_study(name, quick=True, output=output,
                           overrides=_mnist_overrides(mnist_dir))
  text, results = check_study(name, output, path, sample_quality=True)
  assert "digits 0–7,999 train, 8,000–8,999 validate" in text and "1,000" in text
  assert results["split_counts"] == {"train": 8000, "validation": 1000, "test": 1000}
  # The current schema and what early stopping selected on (issue 36).
  assert results["schema"]["version"] == 2 and results["selection"] == "validation/objective"
  assert "**Selection.** Early stopping and the kept checkpoint follow each model's own" in text
  # The data are named as MNIST's digits (`report.data_words`), never as garments.
  assert "held-out digits" in text and "real digits" in text
  assert not re.search(r"garment|fashion|real images|held-out images", text, re.IGNORECASE)
  # The sample-quality classifier is trained once per study and saved in the study dir.
  assert (output / core.CLASSIFIER_FILE).is_file()
  if name == "ae-vs-vae":
    check_ae_vs_vae_noise(text, results)
  if name == "priors":
    # The stated ordering is the one in the table.
    iwae = {t["name"]: t["metrics"]["iwae_log_likelihood"] for t in results["trials"]}
    order = sorted(iwae, key=lambda k: -iwae[k])
    names = {"standard Gaussian": "standard Gaussian N(0, I)", "mixture": "Gaussian mixture",
             "VampPrior": "VampPrior"}
    assert "orders the priors " + " > ".join(names[k] for k in order) in text
    # The quick study states the K it used (5) and explains only the columns it has.
    assert "K = 5 samples per digit" in text and "K = 5000" not in text
    assert "*FD*" in text and "*class entropy*" not in text and "*grey pixels*" not in text
    assert "our trials train on 8,000 MNIST digits" in text


def test_study_force_redoes_every_trial_and_the_shared_ingest_once(tmp_path, monkeypatch):
  from kerasvae import pipeline  # pylint: disable=import-outside-toplevel
  calls = []
  monkeypatch.setattr(pipeline, "run_pipeline", lambda config, steps, force=False, run_dir=None:
                      calls.append((config.run.name, tuple(steps), force))
                      or {"run_dir": tmp_path, "examples": tmp_path})
  monkeypatch.setattr(core.artifacts, "read_json", lambda path: {})
  _, _, _, trials = core.load_study_config(core.resolve_study_config_path("beta"),
                                           output=tmp_path)
  for i, trial in enumerate(trials[:2]):
    core.run_trial(trial, force=True, force_ingest=i == 0)
  core.run_trial(trials[2])
  assert [c[1:] for c in calls] == [
      (("ingest",), True), (("train", "evaluate"), True),
      (("ingest",), False), (("train", "evaluate"), True),
      (("ingest", "train", "evaluate"), False)]
  received = {}
  monkeypatch.setattr(studies, "run_study", lambda name, **kwargs: received.update(kwargs) or "r")
  assert cli.main(["study", "beta", "--force", "--quick"]) == 0
  assert received["force"] is True and received["quick"] is True


def test_unknown_study_lists_the_names():
  names = ", ".join(repr(name) for name in sorted(studies.STUDIES))
  with pytest.raises(ConfigError, match=re.escape(f"Expected a study name among [{names}]. "
                                                  "Received: name='nope'.") + "$"):
    studies.run_study("nope")


def test_cli_unknown_study_exits_2(capsys):
  assert cli.main(["study", "nope"]) == 2
  assert "Expected a study name among" in capsys.readouterr().err


def test_study_config_order_base_quick_set_trial(tmp_path):
  path = core.STUDY_CONFIG_DIR / "latent-dim.yaml"
  _, _, settings, trials = core.load_study_config(
      path, overrides=["train.epochs=3", "model.latent_dim=7", "study.num_samples=50"],
      quick=True, output=tmp_path)
  # quick sets steps_per_epoch; --set beats quick; the trial's own override beats --set.
  assert [t.config.model.latent_dim for t in trials] == [2, 10, 25, 50]
  assert {t.config.train.epochs for t in trials} == {3}
  assert {t.config.train.steps_per_epoch for t in trials} == {10}
  assert settings.num_samples == 50
  assert {t.config.run.runs_dir for t in trials} == {str(tmp_path / "runs")}
  assert len({t.config.run.name for t in trials}) == 4
  full = core.load_study_config(path, output=tmp_path)[3]
  assert {t.config.train.steps_per_epoch for t in full} == {None}


@pytest.mark.parametrize("path", sorted(core.STUDY_CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bundled_study_config_validates(path, tmp_path):
  for quick in (False, True):
    trials = core.load_study_config(path, quick=quick, output=tmp_path)[3]
    assert len(trials) >= 2 and len({t.config.run.name for t in trials}) == len(trials)


def test_full_only_trials_are_left_out_of_quick(tmp_path):
  path = core.STUDY_CONFIG_DIR / "ae-vs-vae.yaml"
  quick = core.load_study_config(path, quick=True, output=tmp_path)[3]
  full = core.load_study_config(path, output=tmp_path)[3]
  assert [t.name for t in quick] == TRIALS["ae-vs-vae"]
  # A full study trains each trial once per seed of study.seeds (five in the MNIST studies).
  assert [t.name for t in full][:20] == [f"{n} seed {s}" for n in TRIALS["ae-vs-vae"]
                                         for s in (0, 1, 2, 3, 4)]
  assert [t.config.train.seed for t in full][:5] == [0, 1, 2, 3, 4]
  sweep = [(t.config.model.noisy_autoencoder.noise_factor,
            t.config.model.noisy_autoencoder.noise_scale) for t in full
           if t.full_only and t.seed == 0]
  assert sweep == [(f, "total") for f in (0.01, 0.02, 0.1, 0.2, 1.0)]
  with pytest.raises(ConfigError, match=r"trials\[0\]: expected the training seeds in "
                     r"study.seeds .*Received: train.seed=3"):
    bad = tmp_path / "seeded.yaml"
    bad.write_text("base: {}\ntrials: [{name: a, train.seed: 3}]\n")
    core.load_study_config(bad, output=tmp_path)
  with pytest.raises(ConfigError, match=r"--set train.seed: expected the training seeds"):
    core.load_study_config(path, output=tmp_path, overrides=["train.seed=4"])
  bad = tmp_path / "bad.yaml"
  bad.write_text("base: {}\ntrials: [{name: a, full_only: 'yes'}]\n")
  with pytest.raises(ConfigError, match=r"trials\[0\].full_only: expected true or false"):
    core.load_study_config(bad, output=tmp_path)


def test_study_config_rejects_unknown_keys(tmp_path):
  bad = tmp_path / "bad.yaml"
  bad.write_text("base: {}\ntrials: [{model.latent_dims: 2}]\n")
  with pytest.raises(ConfigError, match="latent_dims"):
    core.load_study_config(bad, output=tmp_path)
  bad.write_text("base: {}\ntrials: []\n")
  with pytest.raises(ConfigError, match="trials: expected a non-empty list"):
    core.load_study_config(bad, output=tmp_path)


def test_disentanglement_study_without_its_scores_is_refused_before_anything_runs(tmp_path):
  output = tmp_path / "study"
  with pytest.raises(ConfigError, match=r"Expected evaluate.disentanglement=true in every trial. "
                     r"Received: false in 'β=1', 'β=4', 'β=8', 'β=16' \(to time"):
    studies.run_study("disentanglement", quick=True, output=output,
                      overrides=["evaluate.disentanglement=false"])
  assert not output.exists()


def test_class_entropy_bits():
  uniform = np.eye(10)[np.arange(1000) % 10]  # [1000, 10] one-hot, each class 100 times
  assert core.class_entropy_bits(uniform) == pytest.approx(math.log2(10))
  assert core.class_entropy_bits(np.eye(10)[np.zeros(50, int)]) == 0.0
  two = np.eye(10)[np.array([0, 0, 0, 1])]  # p = (3/4, 1/4)
  assert core.class_entropy_bits(two) == pytest.approx(
      -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_grey_fraction():
  images = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.79, 0.8, 1.0]).reshape(1, 2, 4, 1)
  assert core.grey_fraction(images) == pytest.approx(3 / 8)


def test_nearest_code_ratio():
  rng = np.random.RandomState(0)
  codes = rng.normal(size=(500, 3))
  # Points on the codes are at distance 0; a far-away cloud is many spacings away.
  assert ae_vs_vae._nearest_code_ratio(codes[:100], codes, rng) == pytest.approx(0.0, abs=1e-5)
  assert ae_vs_vae._nearest_code_ratio(codes[:100] + 100.0, codes, rng) > 50


def test_trend_and_format():
  assert report.trend([1, 2, 3]) == "rises"
  assert report.trend([3, 2, 2]) == "falls"
  assert report.trend([1, 3, 2]) == "is not monotone"
  assert report.trend([1, 1.05, 0.98], tolerance=0.1) == "stays flat"
  assert report.fmt(-0.004, 2) == "-0.00" and report.fmt(3) == "3"
  assert report.fmt([1.0, 2.5], 1) == "1.0 2.5"
  assert report.table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_sample_quality_text_explains_only_the_table_columns():
  text = mnist.sample_quality_text(report.DATA_WORDS["mnist"], 200, mnist.SAMPLE_COLUMNS[:2])
  assert "*FD*" in text and "*confidence*" in text and "200 random latent points" in text
  assert "*class entropy*" not in text and "*grey pixels*" not in text
  full = mnist.sample_quality_text(report.DATA_WORDS["mnist"], 200)
  assert all(f"*{name}*" in full for name in ("FD", "confidence", "class entropy", "grey pixels"))


def _data_words(study_config, tmp_path, overrides=()):
  path = core.resolve_study_config_path("", study_config)
  trials = core.load_study_config(path, overrides=overrides, output=tmp_path)[3]
  return report.data_words(trials[0].config.ingest)


@pytest.mark.parametrize("study", ["latent-dim", "beta", "ae-vs-vae", "priors"])
def test_data_words_come_from_the_data_config_not_the_study(study, tmp_path):
  assert _data_words(study, tmp_path) == report.DATA_WORDS["mnist"]
  assert _data_words(f"fashion-mnist-{study}", tmp_path) == report.DATA_WORDS["fashion_mnist"]
  # The same study on other data: Debian's Fashion-MNIST folder, a user's IDX files, and
  # Kuzushiji-MNIST (whose folder contains 'mnist' but holds no digits).
  for folder, expected in (
      ("/usr/share/datasets/fashion-mnist", report.DATA_WORDS["fashion_mnist"]),
      ("/data/my_scans", report.OTHER_DATA_WORDS), ("/data/kmnist", report.OTHER_DATA_WORDS)):
    assert _data_words(study, tmp_path, [
        f"ingest.data.idx.images={folder}/train-images-idx3-ubyte.gz"]) == expected, folder


def test_data_words_of_npz_tfds_and_dsprites_data(tmp_path):
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from kerasvae.data import config as data_config  # pylint: disable=import-outside-toplevel

  def words(data):
    return report.data_words(config_lib.from_dict(data_config.IngestConfig, {"data": data}))

  assert words({"source": "npz", "npz": {"path": "/data/fashion_mnist.npz"}}).name \
      == "Fashion-MNIST"
  assert words({"source": "npz", "npz": {"path": "/data/mnist.npz"}}).name == "MNIST"
  assert words({"source": "tfds", "tfds": {"name": "fashion_mnist"}}).name == "Fashion-MNIST"
  assert words({"source": "tfds", "tfds": {"name": "mnist:3.0.1"}}).name == "MNIST"
  assert words({"source": "tfds", "tfds": {"name": "emnist"}}) == report.OTHER_DATA_WORDS
  assert words({"source": "dsprites"}) == report.OTHER_DATA_WORDS


def test_report_wording_names_the_data():
  """The wording that needs no trained model: digits for MNIST only, never garments there."""
  mnist_words = report.DATA_WORDS["mnist"]
  text = mnist.sample_quality_text(mnist_words, 200)
  assert "held-out digits" in text and "an FID analogue for MNIST" in text
  assert "the ten digits are equally frequent" in text and "*real digits*" in text
  for words in (report.DATA_WORDS["fashion_mnist"], report.OTHER_DATA_WORDS):
    text = mnist.sample_quality_text(words, 200)
    assert "digit" not in text.lower(), text
    assert "held-out images" in text and "*real images*" in text
    assert "the ten classes are equally frequent" in text
  fashion = mnist.sample_quality_text(report.DATA_WORDS["fashion_mnist"], 200)
  assert "an FID analogue for Fashion-MNIST" in fashion and "some fashion item?" in fashion
  assert "an FID analogue for this data" in mnist.sample_quality_text(report.OTHER_DATA_WORDS, 200)


def test_study_text_takes_every_data_noun_from_data_words():
  """No string of the MNIST-family analyses says 'digit' itself: the noun comes from
  `context.data_words`, so a Fashion-MNIST report cannot call its images digits."""
  import ast  # pylint: disable=import-outside-toplevel
  for module in (mnist, core):
    tree = ast.parse(Path(module.__file__).read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr)}
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
               and isinstance(node.value, str) and id(node) not in docstrings]
    assert strings and not [s for s in strings if re.search(r"digit|garment", s, re.I)], module


def test_data_paragraph_names_the_data(tmp_path):
  counts = {"train": 8000, "validation": 1000, "test": 1000}
  for study, expected in (
      ("priors", "MNIST here is the official MNIST *test* split of 10,000 digits"),
      ("fashion-mnist-priors", "**Data.** Fashion-MNIST (Xiao et al. 2017")):
    path = core.resolve_study_config_path("", study)
    config = core.load_study_config(path, output=tmp_path)[3][0].config
    text = report.data_paragraph(config, counts)
    assert expected in text
    assert ("digit" in text) == (study == "priors"), text
  path = core.resolve_study_config_path("priors")
  config = core.load_study_config(path, output=tmp_path, overrides=[
      "ingest.data.idx.images=/data/scans/train-images-idx3-ubyte.gz"])[3][0].config
  text = report.data_paragraph(config, counts)
  assert text.startswith("**Data.** IDX images (`/data/scans/train-images-idx3-ubyte.gz`): "
                         "images 0–7,999 train") and "MNIST" not in text and "digit" not in text


def test_budget_names_every_training_seed():
  def trial(name, seed):
    t = core.Trial(name=name, overrides={}, train_seconds=60.0, evaluate_seconds=6.0,
                   epochs_run=2, steps_per_epoch=10)
    t.config = core.load_study_config(core.resolve_study_config_path("disentanglement-small"),
                                      quick=True, output=Path("/nonexistent"))[3][0].config
    t.config.train.seed = seed
    return t
  one = report.budget_section([trial("a", 0), trial("b", 0)], 150.0, quick=False)
  assert ", seed 0). From scratch, the trials' training and evaluation take 2.2 minutes" in one
  seeded = report.budget_section([trial("a", 0), trial("b", 1), trial("c", 2)], 150.0, False)
  assert ", seeds 0, 1 and 2). From scratch" in seeded


def test_training_seconds_of_a_resumed_training_written_before_the_train_step_recorded_it(
    tmp_path):
  # A train step that records it is read as is.
  assert core.training_seconds(tmp_path, {"seconds": 10.0, "training_seconds": 250.0}) == 250.0
  # An older one: the last run saw 2 of 3 epochs; the history's epochs add up to more.
  (tmp_path / "history.json").write_text(json.dumps(
      [{"epoch": 1, "seconds": 100.0}, {"epoch": 2, "seconds": 90.0}, {"epoch": 3, "seconds": 80.0}]))
  assert core.training_seconds(tmp_path, {"seconds": 185.0}) == 270.0
  # Not resumed: the run's own wall-clock (epochs plus evaluations) is the larger.
  assert core.training_seconds(tmp_path, {"seconds": 300.0}) == 300.0
  assert core.training_seconds(tmp_path / "none", {"seconds": 300.0}) == 300.0


def test_factor_carried_names_the_most_informative_factor_of_used_latents():
  metrics = {"mutual_information": [[0.9, 0.1], [0.02, 0.01], [0.3, 0.6], [1.0, 1.0]],
             "factor_names": ["x", "y"], "kl_per_dim": [2.0, 1.0, 0.5, 0.001]}
  assert disentanglement.factor_carried(metrics) == ["x", "–", "y", "–"]
  assert disentanglement.factor_carried({"kl_per_dim": [1.0]}) == []


def test_seed_summary_tests_each_pair_with_welch_and_holm():
  def trial(setting, seed, elbo):
    return core.Trial(f"{setting} seed {seed}", {}, metrics={"elbo": elbo}, setting=setting,
                      seed=seed)
  trials = ([trial("a", s, v) for s, v in enumerate((-100.0, -101.0, -102.0))]
            + [trial("b", s, v) for s, v in enumerate((-110.0, -110.5, -111.0))]
            + [trial("c", s, v) for s, v in enumerate((-99.0, -103.0, -101.5))])
  blocks = report.seed_summary(trials, (("elbo", "ELBO ↑", 2, True),))
  table, statement, findings = blocks[1], blocks[2], blocks[3]
  assert "| a | 0, 1, 2 | -101.00 ± 1.00 |" in table
  assert "3 comparisons" in statement and "Holm–Bonferroni" in statement
  # The smallest of the three Welch p-values (scipy's, an independent computation) is
  # multiplied by 3 (Holm's first step); a and c (Δ = 0.17, sd 2.0) are not told apart.
  p_ab = stats.ttest_ind([-100.0, -101.0, -102.0], [-110.0, -110.5, -111.0],
                         equal_var=False).pvalue
  assert f"different: a over b: Δ = +9.50 [+7.42, +11.58], Holm p = {3 * p_ab:.3f}" in findings
  assert "c over b" in findings and "a over c" not in findings
  assert "no difference detected for the other 1 pair(s)" in findings
  against_first = report.seed_summary(trials, (("elbo", "ELBO ↑", 2, True),),
                                      plan="against_first")
  assert "2 comparisons" in against_first[2] and "c over b" not in against_first[3]
  assert "b under a" not in against_first[3] and "a over b" in against_first[3]
  one_seed = report.seed_summary([trial("a", 0, -1.0), trial("b", 0, -2.0)],
                                 (("elbo", "ELBO ↑", 2, True),))
  assert "One training seed" in one_seed[-1]


def test_latent_dim_summary_reads_every_seed_and_states_a_direction_only_where_tested():
  """'Samples became sharper (grey pixels 0.377 → 0.365)' from seed 0 alone (issue 36): the
  summary now gives every seed and a direction only where the corrected test finds one."""
  def trial(setting, seed, grey, fd):
    return core.Trial(f"{setting} seed {seed}", {}, setting=setting, seed=seed, metrics={
        "grey_fraction": grey, "frechet_distance": fd, "class_entropy_bits": 3.2,
        "classifier_confidence": 0.8})
  trials = ([trial("2", s, g, f) for s, g, f in ((0, 0.377, 60.0), (1, 0.360, 61.0),
                                                 (2, 0.370, 62.0))]
            + [trial("50", s, g, f) for s, g, f in ((0, 0.365, 20.0), (1, 0.372, 21.0),
                                                    (2, 0.368, 22.0))])
  text = mnist.in_short(report.by_setting(trials), "2", "50", "d=2", "d=50",
                        report.DATA_WORDS["fashion_mnist"])
  assert "no difference detected in grey pixels (grey pixels 0.377, 0.360 and 0.370 " \
         "(seeds 0, 1 and 2) at d=2" in text
  assert "closer to held-out images (FD 60.0, 61.0 and 62.0 (seeds 0, 1 and 2) at d=2" in text
  assert "sharper" not in text and "Holm-corrected over these four numbers" in text
  assert report.per_seed(report.by_setting(trials), "2", "absent") == "–"
  assert report.DATA_WORDS["fashion_mnist"].class_name(1) == "Trouser"
  assert report.DATA_WORDS["mnist"].class_name(7) == "7"


def test_information_heatmap_greys_inactive_latents_on_a_shared_scale(tmp_path):
  information = np.array([[1.2, 0.1], [0.9, 0.0], [0.0, 1.0]])
  path = figures.information_heatmap(information, ["x", "y"], tmp_path / "h.png", "t",
                                     mig_per_factor=[0.3, 0.9], inactive=[1], vmax=2.0)
  assert path.stat().st_size > 1000
  # Rows of inactive latents, from KL and the threshold in the config.
  trial = core.Trial("t", {}, config=types.SimpleNamespace(
      evaluate=types.SimpleNamespace(active_latent_kl=0.1)),
      metrics={"kl_per_dim": [2.0, 0.05, 0.1, 0.3]})
  assert disentanglement.inactive_latents(trial) == [1, 2]
  assert disentanglement.information_scale(
      [core.Trial("a", {}, metrics={"mutual_information": [[0.2, 1.5]]}),
       core.Trial("b", {}, metrics={})]) == 1.5


def test_a_quick_report_keeps_its_findings_heading_and_drops_their_text():
  blocks = ["## Results", "a table", "## What the numbers say", "β=40 is best", "more",
            "## Figures", "![a](b.png)"]
  assert report.without_findings(blocks) == [
      "## Results", "a table", "## What the numbers say", report.QUICK_FINDINGS, "## Figures",
      "![a](b.png)"]
  assert report.without_findings(["## Results", "x"]) == ["## Results", "x"]


def test_run_folders_spell_out_greek_and_find_runs_named_the_old_way(tmp_path):
  """`beta-β=1-…` was `beta-_=1-…`; a study finds a finished run under the old name."""
  path = core.STUDY_CONFIG_DIR / "beta.yaml"
  trials = core.load_study_config(path, output=tmp_path)[3]
  names = [t.config.run.name for t in trials if t.seed == 0]
  assert names == ["beta-beta=1_seed_0", "beta-beta=5_seed_0", "beta-beta=10_seed_0",
                   "beta-beta=40_seed_0"]
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  first = trials[0].config
  old = common.run_directory(first).with_name(
      common.run_directory(first).name.replace("beta-beta=1", "beta-_=1"))
  old.mkdir(parents=True)
  reloaded = core.load_study_config(path, output=tmp_path)[3]
  assert common.run_directory(reloaded[0].config) == old
  assert reloaded[1].config.run.name == "beta-beta=1_seed_1"  # no old run: the new name
  assert core.slug("λ=10, σ·R") == "lambda=10_sigma_R"
