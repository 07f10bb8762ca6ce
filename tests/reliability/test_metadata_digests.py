"""Metadata files carry their own digest: a byte changed in one, even one that leaves valid JSON,
is named with the command that redoes its step; `kerasvae run` rewrites an Examples artifact
whose metadata is damaged, and `export` names a damaged existing version."""

import json
import re
from pathlib import Path

import pytest

from kerasvae import artifacts
from kerasvae import cli
from kerasvae import serving
from kerasvae.data import reader
from tests.pipeline_helpers import finished_tiny_run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """One tiny finished `kerasvae run` (no disentanglement scores: seconds, not minutes)."""
  return finished_tiny_run(tmp_path_factory.mktemp("metadata"))


def change_a_digit(path, key):
  """Changes the first digit of the number after `"key": ` in a JSON file, which stays valid
  JSON with the same keys; returns a function that puts the original bytes back."""
  original = path.read_bytes()
  text = original.decode()
  match = re.search(rf'"{key}": -?([0-9])', text)
  assert match, f"no number for {key!r} in {path}"
  i = match.start(1)
  text = text[:i] + ("2" if text[i] == "1" else "1") + text[i + 1:]
  json.loads(text)  # still JSON
  path.write_text(text)
  return lambda: path.write_bytes(original)


def examples_dir(run_dir):
  return Path(json.loads((run_dir / "ingest" / "metadata.json").read_text())["outputs"]
              ["examples"])


# (the file, the command that reads it, the command the error names)
DAMAGED = {
    "examples": (lambda run_dir: examples_dir(run_dir) / "metadata.json", "train",
                 "kerasvae ingest --force"),
    "ingest": (lambda run_dir: run_dir / "ingest" / "metadata.json", "train",
               "kerasvae ingest --force"),
    "train": (lambda run_dir: run_dir / "train" / "metadata.json", "run",
              "kerasvae train --force"),
    "evaluate": (lambda run_dir: run_dir / "evaluate" / "metadata.json", "run",
                 "kerasvae evaluate --force"),
    "export": (lambda run_dir: run_dir / "export" / "metadata.json", "run",
               "kerasvae export --force"),
}


@pytest.mark.parametrize("artifact", sorted(DAMAGED))
def test_a_digit_changed_in_a_metadata_file_is_named_with_the_step_to_redo(
    finished_run, capsys, artifact):
  _, config_path, run_dir = finished_run
  where, command, redo = DAMAGED[artifact]
  path = where(run_dir)
  restore = change_a_digit(path, "seconds")
  try:
    capsys.readouterr()
    assert cli.main([command, "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is damaged: its content differs from what was written (SHA-256 " in err, err
    assert f"Redo the step that wrote it: `{redo}`." in err
    assert "Traceback" not in err
  finally:
    restore()


def test_every_metadata_file_and_exported_version_records_its_own_digest(finished_run):
  tmp_path, _, run_dir = finished_run
  version = serving.list_versions(tmp_path / "saved_models" / "tiny")[-1]
  info_path = tmp_path / "saved_models" / "tiny" / str(version) / "assets.extra" / "kerasvae.json"
  for path in [where(run_dir) for where, _, _ in DAMAGED.values()] + [info_path]:
    meta = json.loads(path.read_text())
    assert len(meta[artifacts.METADATA_DIGEST]) == 64, path
    assert artifacts.metadata_damage(meta) is None
  assert "saved_model.pb" in json.loads(info_path.read_text())["digests"]
  restore = change_a_digit(info_path, "latent_dim")
  try:
    with pytest.raises(artifacts.ArtifactError,
                       match=r"kerasvae.json is damaged: its content differs .*"
                             r"`kerasvae export --force`"):
      serving.read_export_metadata(info_path.parent.parent)
  finally:
    restore()


def test_a_changed_digest_key_is_damage_and_metadata_without_a_digest_still_reads(tmp_path):
  """Old metadata (written before metadata digests) reads as it is; a byte changed in the
  digest's own key does not pass for old: the note beside it says there was a digest."""
  path = tmp_path / "metadata.json"
  written = artifacts.write_metadata(path, {"step": "train", "path": tmp_path, "shape": (2, 3)})
  assert artifacts.read_json(path) == written  # paths and tuples digested as read back
  assert written["path"] == str(tmp_path) and written["shape"] == [2, 3]
  text = path.read_text()
  path.write_text(text.replace(f'"{artifacts.METADATA_DIGEST}"', '"metadata_sha257"'))
  with pytest.raises(artifacts.ArtifactError,
                     match=r"metadata.json is damaged: its metadata_sha256 field is missing"):
    artifacts.read_json(path, redo="kerasvae train --force")
  old = {k: v for k, v in written.items()
         if k not in (artifacts.METADATA_DIGEST, artifacts.METADATA_DIGEST_NOTE)}
  path.write_text(json.dumps(old))
  assert artifacts.read_json(path) == old


def test_metadata_written_before_digests_is_reused(finished_run, capsys):
  _, config_path, run_dir = finished_run
  path = run_dir / "train" / "metadata.json"
  original = path.read_bytes()
  meta = json.loads(original)
  for key in (artifacts.METADATA_DIGEST, artifacts.METADATA_DIGEST_NOTE):
    del meta[key]
  path.write_text(json.dumps(meta))
  try:
    capsys.readouterr()
    assert cli.main(["run", "--config", str(config_path)]) == 0
    assert "train: reusing" in capsys.readouterr().out
  finally:
    path.write_bytes(original)


@pytest.mark.parametrize("damage", ["valid-json", "not-json"])
def test_run_rewrites_an_examples_artifact_whose_metadata_is_damaged(finished_run, capsys,
                                                                     damage):
  _, config_path, run_dir = finished_run
  examples = examples_dir(run_dir)
  path = examples / "metadata.json"
  if damage == "valid-json":
    change_a_digit(path, "images_per_second")
  else:
    path.write_text(path.read_text()[:-20])
  capsys.readouterr()
  assert cli.main(["run", "--config", str(config_path)]) == 0
  out = capsys.readouterr().out
  assert f"ingest: the Examples artifact {examples} is damaged (metadata.json" in out
  assert "writing it again from the source" in out
  assert "train: reusing" in out  # the same data again: the model stays
  meta = reader.read_metadata(examples)
  assert artifacts.find_damage(examples, meta["digests"]) is None


@pytest.mark.parametrize("damaged_file", ["saved_model.pb", "assets.extra/kerasvae.json"])
def test_export_force_names_a_damaged_existing_version(finished_run, capsys, damaged_file):
  tmp_path, config_path, _ = finished_run
  model_dir = tmp_path / "saved_models" / "tiny"
  version = model_dir / str(serving.list_versions(model_dir)[-1])
  if damaged_file == "saved_model.pb":
    data = bytearray((version / damaged_file).read_bytes())
    data[len(data) // 2] ^= 0x10
    (version / damaged_file).write_bytes(bytes(data))
    problem = "saved_model.pb has other bytes than were written"
  else:
    change_a_digit(version / damaged_file, "latent_dim")
    problem = "assets.extra/kerasvae.json: its content differs from what was written"
  capsys.readouterr()
  assert cli.main(["export", "--config", str(config_path), "--force"]) == 0
  out = capsys.readouterr().out
  assert f"export: warning: the existing version {version} is damaged: {problem}" in out, out
  assert version.is_dir()  # named, and left for the user to decide
  assert serving.list_versions(model_dir)[-1] > int(version.name)
