"""Damaged artifacts are named, never reused silently: each step checks the digests it recorded."""

import json
import re

import pytest

from kerasvae import cli
from kerasvae import training
from kerasvae.data import reader
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import finished_tiny_run
from tests.pipeline_helpers import tiny_config
from tests.pipeline_helpers import tiny_trainer


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """One tiny finished `kerasvae run` (no disentanglement scores: seconds, not minutes)."""
  return finished_tiny_run(tmp_path_factory.mktemp("damaged"))


def flip_byte(path, position=None):
  """Flips one bit of one byte of `path` (the middle byte by default); returns a restorer."""
  data = bytearray(path.read_bytes())
  original = bytes(data)
  position = len(data) // 2 if position is None else position
  data[position] ^= 0x10
  path.write_bytes(bytes(data))
  return lambda: path.write_bytes(original)


def examples_of(run_dir):
  meta = json.loads((run_dir / "ingest" / "metadata.json").read_text())
  return next(iter(sorted((__import__("pathlib").Path(meta["outputs"]["examples"])
                           / "Split-train").glob("*.gz"))))


def test_every_step_records_digests_of_what_it_wrote(finished_run):
  _, _, run_dir = finished_run
  shard = examples_of(run_dir)
  examples = json.loads((shard.parent.parent / "metadata.json").read_text())
  assert f"Split-train/{shard.name}" in examples["digests"]
  train = json.loads((run_dir / "train" / "metadata.json").read_text())
  assert set(train["digests"]) == {"model/model.keras", "history.json"}
  size = (run_dir / "train" / "model" / "model.keras").stat().st_size
  assert train["digests"]["model/model.keras"]["size"] == size
  evaluate = json.loads((run_dir / "evaluate" / "metadata.json").read_text())
  assert {"metrics.json", "blessing.json"} <= set(evaluate["digests"])
  export = json.loads((run_dir / "export" / "metadata.json").read_text())
  assert "saved_model.pb" in export["digests"]


def test_a_damaged_shard_is_named_by_train_and_rewritten_by_ingest(finished_run, capsys):
  _, config_path, _ = finished_run
  shard = examples_of(finished_run[2])
  flip_byte(shard)
  capsys.readouterr()
  assert cli.main(["train", "--config", str(config_path), "--force"]) == 2
  err = capsys.readouterr().err
  assert f"The Examples artifact {shard.parent.parent} is damaged: Split-train/{shard.name} " \
         "has other bytes than were written" in err
  assert "Redo the ingest step with `kerasvae ingest`" in err
  assert (finished_run[2] / "train" / "model" / "model.keras").is_file()  # nothing removed
  assert cli.main(["ingest", "--config", str(config_path)]) == 0  # redoes it itself
  assert f"ingest: the Examples artifact {shard.parent.parent} is damaged" in \
      capsys.readouterr().out
  meta = json.loads((shard.parent.parent / "metadata.json").read_text())
  assert common.artifacts.find_damage(shard.parent.parent, meta["digests"]) is None


@pytest.mark.parametrize("in_memory", [True, False], ids=["read-up-front", "streamed"])
def test_a_damaged_shard_without_recorded_digests_is_named_when_read(finished_run, capsys,
                                                                    monkeypatch, in_memory):
  """An Examples artifact written before ingest recorded digests cannot be checked up front:
  the damaged record file is named when read, with the step to redo (not a DataLossError),
  whether the split is read into memory first or streamed through the training."""
  _, config_path, run_dir = finished_run
  if not in_memory:
    monkeypatch.setattr(reader, "IN_MEMORY_BYTES", 0)
  shard = examples_of(run_dir)
  meta_path = shard.parent.parent / "metadata.json"
  meta_text = meta_path.read_text()
  meta_path.write_text(json.dumps({k: v for k, v in json.loads(meta_text).items() if k not in (
      "digests", common.artifacts.METADATA_DIGEST, common.artifacts.METADATA_DIGEST_NOTE)}))
  restore = flip_byte(shard)
  try:
    capsys.readouterr()
    assert cli.main(["train", "--config", str(config_path), "--force"]) == 2
    out, err = capsys.readouterr()
    assert re.search(f"The Examples artifact {re.escape(str(shard.parent.parent))} cannot be "
                     r"read: corrupted record at [0-9]+\. Redo the ingest step with "
                     r"`kerasvae ingest --force`\.\n", err), err
    assert "Traceback" not in err
    # --force failed before an epoch: the model it was to replace is back, nothing aside.
    assert f"train: nothing was trained; the previous model in {run_dir / 'train'} is kept" in out
    assert (run_dir / "train" / "model" / "model.keras").is_file()
    assert common.reusable(run_dir / "train", json.loads(
        (run_dir / "train" / "metadata.json").read_text())["fingerprint"])
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]
  finally:
    restore()
    meta_path.write_text(meta_text)


def test_a_damaged_model_is_named_with_the_step_to_redo(finished_run, capsys):
  _, config_path, run_dir = finished_run
  restore = flip_byte(run_dir / "train" / "model" / "model.keras")
  try:
    capsys.readouterr()
    assert cli.main(["run", "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert f"The trained model {run_dir / 'train'} is damaged: model/model.keras has other " \
           "bytes than were written" in err
    assert "Redo the train step with `kerasvae train --force`" in err
    assert "Traceback" not in err
    assert cli.main(["export", "--config", str(config_path), "--force"]) == 2
    assert "model/model.keras has other bytes" in capsys.readouterr().err
  finally:
    restore()
  assert cli.main(["run", "--config", str(config_path)]) == 0


def test_a_damaged_evaluation_is_redone_and_a_damaged_export_named(finished_run, capsys):
  tmp_path, config_path, run_dir = finished_run
  metrics = (run_dir / "evaluate" / "metrics.json").read_text()
  (run_dir / "evaluate" / "metrics.json").write_text(metrics.replace('"', "'", 1))
  capsys.readouterr()
  assert cli.main(["evaluate", "--config", str(config_path)]) == 0
  out = capsys.readouterr().out
  assert f"evaluate: the evaluation {run_dir / 'evaluate'} is damaged (metrics.json has" in out
  assert (run_dir / "evaluate" / "metrics.json").read_text() == metrics  # same seed, same result
  version = tmp_path / "saved_models" / "tiny" / "1"
  restore = flip_byte(version / "saved_model.pb")
  try:
    assert cli.main(["export", "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert f"The exported SavedModel {version.resolve()} is damaged: saved_model.pb" in err
    assert "`kerasvae export --force` (it writes a new version)" in err
  finally:
    restore()


def _trainer(work_dir, epochs):
  config = configs.TrainConfig(epochs=epochs, batch_size=8, progress=False, jit_compile="false",
                               checkpoint_min_seconds=0, keep_checkpoints=5)
  return tiny_trainer(work_dir, config)


@pytest.mark.parametrize("damaged_file", ["data-00000-of-00001", "index"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, capsys, damaged_file):
  _trainer(tmp_path, 3).train()
  checkpoints = tmp_path / "checkpoints"
  flip_byte(checkpoints / f"ckpt-3.{damaged_file}")
  capsys.readouterr()
  history = _trainer(tmp_path, 4).train()
  out = capsys.readouterr().out
  assert f"train: the checkpoint {checkpoints}/ckpt-3 is damaged (" in out
  assert f"resuming from {checkpoints}/ckpt-2 (2 epochs done)" in out
  assert [r["epoch"] for r in history] == [1, 2, 3, 4]


def test_every_checkpoint_damaged_is_a_named_error(tmp_path):
  _trainer(tmp_path, 2).train()
  for number in (1, 2):
    flip_byte(tmp_path / "checkpoints" / f"ckpt-{number}.data-00000-of-00001")
  with pytest.raises(training.TrainingError,
                     match=r"Every checkpoint in .*checkpoints is damaged: .*ckpt-2 .*ckpt-1 .*"
                           r"`kerasvae train --force`"):
    _trainer(tmp_path, 3).train()


def test_export_killed_before_its_metadata_is_not_exported_again(finished_run, capsys):
  tmp_path, config_path, run_dir = finished_run
  versions = sorted(p.name for p in (tmp_path / "saved_models" / "tiny").iterdir())
  (run_dir / "export" / "metadata.json").unlink()  # what a kill after the rename leaves
  capsys.readouterr()
  assert cli.main(["export", "--config", str(config_path)]) == 0
  assert "exported by an interrupted run" in capsys.readouterr().out
  assert sorted(p.name for p in (tmp_path / "saved_models" / "tiny").iterdir()) == versions
  meta = json.loads((run_dir / "export" / "metadata.json").read_text())
  assert meta["outputs"]["saved_model"].endswith(f"/tiny/{versions[-1]}")


def test_an_autoencoder_under_a_vaes_model_name_is_refused(finished_run, capsys):
  tmp_path, _, _ = finished_run
  (tmp_path / "ae").mkdir()
  config_path = tiny_config(tmp_path / "ae", model={"kind": "autoencoder"},
                            evaluate={"disentanglement": False, "iwae_samples": 0},
                            export={"base_dir": str(tmp_path / "saved_models"),
                                    "model_name": "tiny"})
  versions = sorted(p.name for p in (tmp_path / "saved_models" / "tiny").iterdir())
  capsys.readouterr()
  assert cli.main(["run", "--config", str(config_path)]) == 2
  err = capsys.readouterr().err
  assert "kerasvae run: error: Expected the signatures of" in err
  assert "Received: Autoencoder with decode, encode, sample, serving_default (without " \
         "anomaly_score, log_likelihood" in err
  assert "--set export.allow_signature_change=true" in err
  assert sorted(p.name for p in (tmp_path / "saved_models" / "tiny").iterdir()) == versions
  assert cli.main(["export", "--config", str(config_path),
                   "--set", "export.allow_signature_change=true"]) == 0
  assert len(list((tmp_path / "saved_models" / "tiny").iterdir())) == len(versions) + 1
