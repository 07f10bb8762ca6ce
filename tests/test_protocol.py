"""The held-out protocol (issue 26): selection reads the validation split, never the test split."""

import numpy as np

from kerasvae.data import reader
from kerasvae.steps import configs
from kerasvae import pipeline
from tests import pipeline_helpers


def test_training_and_its_selection_never_read_the_test_split(tmp_path, monkeypatch, capsys):
  """Early stopping, the best checkpoint and every per-epoch number read only train and
  validation: a spy on the reader records every split the train step asks for."""
  path = pipeline_helpers.tiny_config(tmp_path, train={
      "epochs": 3, "batch_size": 32, "early_stopping_patience": 1, "images_every_epochs": 1,
      "projector_examples": 20, "progress": False}, evaluate={
          "iwae_samples": 10, "iwae_examples": 50, "disentanglement": False})
  config = configs.load_pipeline_config(str(path))
  out = pipeline.run_pipeline(config, steps=("ingest",))
  meta = reader.read_metadata(out["examples"])
  test_name = reader.split_name(meta, "eval")
  asked = []
  for name in ("load_split", "make_dataset"):
    original = getattr(reader, name)

    def spy(examples_dir, split, *args, original=original, **kwargs):
      asked.append(reader.split_name(reader.read_metadata(examples_dir), split))
      return original(examples_dir, split, *args, **kwargs)

    monkeypatch.setattr(reader, name, spy)
  out = pipeline.run_pipeline(config, steps=("train",))
  assert set(asked) == {"train", "validation"} and test_name not in asked
  history = reader_history(out["run_dir"])
  assert all("validation/elbo" in r for r in history) and not any(
      k.startswith(("eval/", "test/")) for r in history for k in r)
  # The evaluate step then scores the test split and says so.
  monkeypatch.undo()
  out = pipeline.run_pipeline(config, steps=("evaluate",))
  printed = capsys.readouterr().out
  assert "train: DefaultDistributionStrategy (auto), 1 replica" in printed
  # The tiny config has no thresholds (issue 30): evaluate says it blesses everything.
  assert ("evaluate: warning: no evaluate.thresholds or change_thresholds: every model is "
          "blessed, whatever its metrics") in printed
  metrics = _json(out["run_dir"] / "evaluate" / "metrics.json")
  assert metrics["split"] == test_name == "test"
  assert metrics["num_examples"] == meta["splits"]["test"]["num_examples"]
  assert np.isfinite(metrics["iwae_examples_elbo"])
  assert 0.0 <= metrics["mutual_information_xz"] <= metrics["mutual_information_bound"] + 1e-9


def reader_history(run_dir):
  return _json(run_dir / "train" / "history.json")


def _json(path):
  import json  # pylint: disable=import-outside-toplevel
  return json.loads(path.read_text())
