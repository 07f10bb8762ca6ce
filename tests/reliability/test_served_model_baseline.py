"""Validation against the served model (issue 30, item 3): a candidate worse than the newest
version another run exported is not blessed, and blessing.json shows both."""

import json

from kerasvae import cli
from kerasvae.steps import baseline
from kerasvae.steps import configs
from tests import pipeline_helpers


def _run(tmp_path, name, capsys, **train):
  path = pipeline_helpers.tiny_config(
      tmp_path, run={"name": name, "runs_dir": str(tmp_path / "runs")},
      train={"epochs": 2, "batch_size": 32, "progress": False, **train},
      evaluate={"iwae_samples": 5, "iwae_examples": 50, "disentanglement": False,
                "change_thresholds": {"elbo": 3.0}})
  code = cli.main(["run", "--config", str(path)])
  out = capsys.readouterr().out
  config = configs.load_pipeline_config(str(path))
  run_dir = next((tmp_path / "runs").glob(f"{name}-*"))
  return code, out, config, json.loads((run_dir / "evaluate" / "blessing.json").read_text())


def test_a_worse_candidate_is_not_exported_over_the_served_model(tmp_path, capsys):
  code, out, config, first = _run(tmp_path, "good", capsys, epochs=4)
  assert code == 0 and first["baseline"]["version_dir"] is None
  assert "no baseline (the first export of this model name)" in out
  served = tmp_path / "saved_models" / "tiny" / "1"
  assert served.is_dir()
  # A quick experiment (one step) under another run name: far worse, refused, not exported.
  code, out, _, blessing = _run(tmp_path, "quick", capsys, epochs=1, steps_per_epoch=1)
  comparison = blessing["baseline"]
  assert comparison["version_dir"] == str(served) and comparison["examples"] == 50
  check = comparison["checks"][0]
  assert check["metric"] == "elbo" and check["change"] > 3.0 and not check["passed"]
  assert check["change"] == check["baseline"] - check["candidate"]
  assert not blessing["blessed"] and code == 2
  assert "FAILED" in out and not (tmp_path / "saved_models" / "tiny" / "2").exists()
  # Rerunning the served model's own run compares it with no one (its own export is skipped).
  assert baseline.find_baseline(config, served.parents[2] / "runs" / "x") == (
      served, json.loads((served / "assets.extra" / "kerasvae.json").read_text())
      .get("metadata_sha256"))


def test_change_thresholds_are_checked_when_the_config_loads(tmp_path, capsys):
  assert cli.main(["config", "--set", "evaluate.change_thresholds={elbo: -1}"]) == 2
  assert "expected a finite number >= 0" in capsys.readouterr().err
