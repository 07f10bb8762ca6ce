"""`kerasvae study ood --quick` on small generated stand-ins for Fashion-MNIST and MNIST, and the
study's arithmetic: detection metrics against scikit-learn, Holm against a hand computation,
the report a pure function of results.json."""

import json

import numpy as np
import pytest
import yaml
from sklearn import metrics as sk_metrics

from kerasvae import cli
from kerasvae.metrics import anomaly
from kerasvae.studies import ood
from kerasvae.studies import report
from tests.data.helpers import write_idx


def test_detection_metrics_against_scikit_learn():
  rng = np.random.default_rng(0)
  inside, outside = rng.normal(0, 1, 300), rng.normal(1, 1, 200)
  inside[:20] = outside[:20]  # ties count one half
  labels = np.r_[np.zeros(300), np.ones(200)]
  scores = np.r_[inside, outside]
  assert anomaly.auroc(inside, outside) == pytest.approx(sk_metrics.roc_auc_score(labels, scores))
  assert anomaly.auprc(inside, outside) == pytest.approx(
      sk_metrics.average_precision_score(labels, scores))
  # The highest threshold (among the OOD scores) that still flags at least 95 % of them.
  threshold = max(t for t in outside if np.mean(outside >= t) >= 0.95)
  assert anomaly.fpr_at_tpr(inside, outside) == pytest.approx(np.mean(inside >= threshold))
  assert anomaly.auroc(inside, inside + 100) == 1.0 and anomaly.auroc(inside + 100, inside) == 0.0
  with pytest.raises(ValueError, match="Expected finite scores"):
    anomaly.auroc([0.0, np.nan], [1.0])


def test_holm_against_a_hand_computation():
  # p sorted 0.01, 0.02, 0.03, 0.5 -> 4 * 0.01, max(0.04, 3 * 0.02), max(0.06, 2 * 0.03), 0.5
  assert ood.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
  assert ood.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 capped at 1, monotone
  assert ood.holm([0.3, 0.04]) == pytest.approx([0.3, 0.08])


def test_mutation_replaces_the_stated_fraction():
  images = np.full((200, 28, 28, 1), 0.5, np.float32)
  mutated = anomaly.mutate(images, 0.2, np.random.default_rng(0))
  changed = np.mean(mutated != 0.5)
  assert 0.19 < changed < 0.21  # a uniform grey level is 0.5 only by chance (1 in 256: none)
  assert set(np.unique(np.round(mutated * 255))) <= set(range(256))


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
  """The quick study with `--config` a YAML extending the bundled one: the same base, quick
  block and settings, two trials on 500 generated 28x28 images each."""
  tmp = tmp_path_factory.mktemp("ood")
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:28, :28]

  def digits(n, width):  # bright strokes on black, like the two data sets (different widths)
    centre = rng.uniform(8, 20, (n, 2))
    d = (yy - centre[:, :1, None]) ** 2 + (xx - centre[:, 1:, None]) ** 2
    return np.clip(255 * np.exp(-d / width) + rng.normal(0, 10, (n, 28, 28)), 0,
                   255).astype(np.uint8)

  paths = {}
  for name, width in (("fashion", 60.0), ("mnist", 8.0)):
    paths[name] = write_idx(tmp / f"{name}-images.gz", digits(500, width), compress=True)
    paths[name + "_test"] = write_idx(tmp / f"{name}-test.gz", digits(100, width),
                                      compress=True)
  config = {
      "extends": "ood",
      "trials": [
          {"name": "fashion-mnist", "ingest.data.idx.images": str(paths["fashion"]),
           "ingest.data.idx.labels": None, "ingest.data.idx.eval_images":
           str(paths["fashion_test"]), "ingest.split.method": "source",
           "ingest.split.validation_start": 400},
          {"name": "mnist", "ingest.data.idx.images": str(paths["mnist"]),
           "ingest.data.idx.labels": None, "ingest.split.eval_start": 450,
           "ingest.split.validation_start": 400}],
  }
  path = tmp / "ood-small.yaml"
  path.write_text(yaml.safe_dump(config))
  output = tmp / "study"
  assert cli.main(["study", "ood", "--quick", "--config", str(path), "--output",
                   str(output)]) == 0
  return output


def test_quick_study_writes_report_results_and_figures(quick_study):
  results = json.loads((quick_study / "results.json").read_text())
  assert [t["name"] for t in results["trials"]] == ["fashion-mnist", "mnist"]
  sets = results["trials"][0]["ood"]["sets"]
  assert sorted(sets) == sorted(["MNIST", "uniform noise", "constant", "flipped", "inverted"])
  for figure in results["figures"]:
    assert (quick_study / figure["path"]).is_file()
  assert {f["kind"] for f in results["figures"]} == {"hist", "roc"}
  text = (quick_study / "report.md").read_text()
  assert text == ood.report_text(results)  # the report is a function of results.json alone
  assert "Quick mode" in text and "One training seed: no difference" in text
  assert report.QUICK_FINDINGS in text and "trap of Nalisnick" not in text  # no conclusions


def test_quick_study_metrics_recompute_from_the_saved_scores(quick_study):
  results = json.loads((quick_study / "results.json").read_text())
  stored = np.load(quick_study / "scores" / "fashion-mnist.npz")
  for score in ood.SCORES:
    inside, outside = stored[f"test|{score}"], stored[f"MNIST|{score}"]
    labels = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    expected = sk_metrics.roc_auc_score(labels, np.r_[inside, outside])
    got = results["trials"][0]["ood"]["sets"]["MNIST"]["scores"][score]["auroc"]
    assert got == pytest.approx(expected)
  # The scores are what their definitions say: the corrected score is −log p(x) − L(x).
  log_px = -stored["test|log_likelihood"]
  assert np.all(np.isfinite(log_px))
  complexity = -log_px - stored["test|complexity"]
  assert np.all((complexity > 0) & (complexity < 28 * 28 * 8 * np.log(2) * 1.2))


def test_the_committed_report_and_the_docs_are_rendered_from_results_json(tmp_path):
  """docs/studies/ood/report.md, docs/serving.md's quoted numbers and the README row are what
  the study's functions make of the committed results.json: no number is typed."""
  from tests.markdown import README  # pylint: disable=import-outside-toplevel
  study = README.parent / "docs" / "studies" / "ood"
  results = json.loads((study / "results.json").read_text())
  assert (study / "report.md").read_text() == ood.report_text(results)
  for figure in results["figures"]:
    assert (study / figure["path"]).is_file()
  serving_md = tmp_path / "serving.md"
  readme = tmp_path / "README.md"
  serving_md.write_text((README.parent / "docs" / "serving.md").read_text())
  readme.write_text(README.read_text())
  ood.render_docs(results, serving_md, readme)
  assert serving_md.read_text() == (README.parent / "docs" / "serving.md").read_text()
  assert readme.read_text() == README.read_text()
  assert not results["quick"] and len({t["seed"] for t in results["trials"]}) == 3
