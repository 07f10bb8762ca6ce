"""The real `kerasvae` command on one tiny finished run, where files and signals get in the way
(issue 41, cases 1, 3, 6 and 8): a hand-edited models.config, a models.config that is a
directory, a file where a version folder goes, a read-only file system, an over-long path
component, a file name that is not UTF-8, and SIGTERM during an export. Each ends in a
correct result or one named line, and nothing half-written.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format

from kerasvae import cli
from kerasvae import serving
from tests import pipeline_helpers
from tests.pipeline_helpers import finished_tiny_run
from tests.reliability.test_bad_inputs import assert_named_error
from tests.reliability.test_bad_inputs import tree
from tests.reliability.test_image_formats import GREY
from tests.reliability.test_image_formats import write_png
from tests.reliability.test_models_config import parse



@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  return finished_tiny_run(tmp_path_factory.mktemp("models_config"))


def _export(config_path, capsys, *args):
  capsys.readouterr()
  code = cli.main(["export", "--config", str(config_path), "--force", *args])
  return code, capsys.readouterr()


def test_export_force_keeps_a_hand_added_entry(finished, capsys):
  """The issue's case 1: add a `config { … }` entry, then `kerasvae export --force`."""
  tmp_path, config_path, _ = finished
  path = tmp_path / "saved_models" / "models.config"
  config = parse(path)
  entry = config.model_config_list.config.add()
  entry.name, entry.base_path = "by_hand", "/srv/by_hand"
  entry.model_version_policy.all.SetInParent()
  config.model_config_list.config[0].version_labels["canary"] = 1
  path.write_text(text_format.MessageToString(config))
  code, out = _export(config_path, capsys)
  assert code == 0, out.err
  assert parse(path) == config


def test_export_refuses_a_models_config_directory_and_leaves_no_version(finished, capsys):
  """The issue's case 3: models.config made a directory. Refused by name, before anything is
  written: no complete version behind, and the run's previous version is still there."""
  tmp_path, config_path, _ = finished
  base = tmp_path / "saved_models"
  (base / "models.config").rename(base / "models.config.saved")
  (base / "models.config").mkdir()
  try:
    before = tree(tmp_path)
    code, out = _export(config_path, capsys)
    assert code == 2, out.err
    assert out.err == (
        f"kerasvae export: error: {base / 'models.config'}: expected a text-format "
        "ModelServerConfig with a model_config_list (the file tensorflow_model_server "
        "--model_config_file reads), so that export can add its model's entry and keep the "
        "others. Received: a directory. The file is left as it is and nothing was exported: "
        "fix or move it, then export again.\n")
    assert tree(tmp_path) == before
  finally:
    (base / "models.config").rmdir()
    (base / "models.config.saved").rename(base / "models.config")


def test_a_version_folder_replaced_by_a_file_is_named_and_skipped(finished, capsys):
  """The issue's case 8: a file named like a version blocked every later export with
  "[Errno 17] Refusing to replace…". It is not a version: named, and the next number is used."""
  tmp_path, config_path, _ = finished
  model_dir = tmp_path / "saved_models" / "tiny"
  newest = serving.list_versions(model_dir)[-1]
  blocker = model_dir / str(newest + 1)
  blocker.write_text("not a version")
  try:
    code, out = _export(config_path, capsys)
    assert code == 0, out.err
    assert (f"export: warning: {blocker} is a file, not a version folder: TF Serving does not "
            f"load it and export skips its number; remove it if it is not yours") in out.out
    assert serving.list_versions(model_dir)[-1] == newest + 2
  finally:
    blocker.unlink()


def test_sigterm_during_export_says_nothing_was_written(finished):
  """The issue's case 8: SIGTERM during `kerasvae export` exited with no message. Sent while
  the SavedModel is being written (its hidden temporary exists): the command says what was
  and was not written, exits 143, and leaves no version, no temporary and models.config as
  it was."""
  tmp_path, config_path, _ = finished
  model_dir = tmp_path / "saved_models" / "tiny"
  config_before = (tmp_path / "saved_models" / "models.config").read_bytes()
  versions_before = serving.list_versions(model_dir)
  proc = subprocess.Popen([sys.executable, "-m", "kerasvae.cli", "export", "--config",
                           str(config_path), "--force"], cwd=tmp_path,
                          env=pipeline_helpers.subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 240
    while not list(model_dir.glob(".export.tmp-*")):
      assert proc.poll() is None, proc.communicate()
      assert time.monotonic() < deadline, "the export never started writing"
      time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
  finally:
    proc.kill()
    proc.wait()
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  assert "Traceback" not in err
  assert err.strip().splitlines()[-1] == (
      f"kerasvae export: interrupted: SIGTERM: nothing was written: no new version in "
      f"saved_models/tiny (the partial one was removed) and saved_models/models.config is as "
      f"it was; run the same command again to export.").replace(
          "saved_models", str(tmp_path / "saved_models")), err
  assert serving.list_versions(model_dir) == versions_before
  assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]
  assert (tmp_path / "saved_models" / "models.config").read_bytes() == config_before


def _read_only(folder, *args):
  """Runs `kerasvae ARGS` with `folder` bind-mounted read-only onto itself (a user and mount
  namespace: no root needed); skips where user namespaces are not allowed."""
  if shutil.which("unshare") is None or subprocess.run(
      ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
    pytest.skip("no user namespaces here: cannot make a read-only bind mount")
  script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
            'exec "$1" -m kerasvae.cli "${@:2}"')
  return subprocess.run(["unshare", "-rm", "bash", "-c", script, str(folder), sys.executable,
                         *args], cwd=folder, env=pipeline_helpers.subprocess_env(),
                        capture_output=True, text=True, timeout=300)


def test_a_finished_run_on_a_read_only_file_system_is_read_without_a_lock(finished):
  """The issue's case 6: the lock file could not be made, so even a complete, reusable run
  failed with a traceback. It is read without a lock; a step that must write says so."""
  tmp_path, config_path, run_dir = finished
  before = tree(tmp_path)
  proc = _read_only(tmp_path, "evaluate", "--config", str(config_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"evaluate: reusing {run_dir / 'evaluate'} (same model and config" in proc.stdout
  proc = _read_only(tmp_path, "evaluate", "--config", str(config_path), "--force")
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f"kerasvae evaluate: error: {run_dir / 'evaluate'}: expected a writable folder. Received: "
      "a read-only file system ([Errno 30] Read-only file system). Finished steps are read "
      "there without writing; to run a step, point run.runs_dir (or --run-dir, "
      "export.base_dir) at a writable folder.")
  assert tree(tmp_path) == before


def test_a_path_component_over_255_bytes_is_named(tmp_path, monkeypatch, capsys):
  """The issue's case 6: `--set run.runs_dir=/tmp/bbb…` (300 characters) gave a traceback."""
  long = "b" * 300
  assert_named_error(
      ["ingest", "--set", f"run.runs_dir={tmp_path / long}",
       "--set", "ingest.data.dsprites.num_examples=100"], tmp_path, monkeypatch, capsys,
      rf"kerasvae ingest: error: {tmp_path}/b+\.\.\.: expected path components of at "
      r"most 255 bytes \(the file system's limit\)\. Received: a component of 300 bytes "
      r"\(b{20}\.\.\.b{10}\)\. Choose shorter names \(run\.runs_dir, run\.name, "
      r"export\.base_dir, --run-dir\)\.\n$")


def test_an_image_file_name_that_is_not_utf8_is_named(tmp_path, monkeypatch, capsys):
  """The issue's case 6: a file name with invalid UTF-8 in an image folder gave a traceback
  (`artifacts.hash_fraction`). Refused by name; skipped with on_bad_file=skip."""
  folder = tmp_path / "img"
  write_png(folder / "good.png", [[[1]] * 3] * 3, 8, GREY)
  write_png(folder / "good2.png", [[[2]] * 3] * 3, 8, GREY)
  bad = os.fsencode(folder) + b"/caf\xe9.png"  # Latin-1, not UTF-8
  Path(os.fsdecode(bad)).write_bytes((folder / "good.png").read_bytes())
  args = ["ingest", "--set", "run.runs_dir=runs", "--set", "ingest.data.source=image_folder",
          "--set", "ingest.data.image_folder.root=img", "--set", "ingest.split.eval_fraction=0.5"]
  assert_named_error(
      args, tmp_path, monkeypatch, capsys,
      r"kerasvae ingest: error: \S*/img/caf\\udce9\.png: expected a PNG or JPEG image "
      r"\(image_folder\.on_bad_file='fail'\)\. Received: a file name that is not valid UTF-8 "
      r"\(b'caf\\xe9\.png'\): rename the file\n$")
  monkeypatch.chdir(tmp_path)
  with pytest.warns(UserWarning, match=r"Skipping \S*/img/caf\\udce9\.png"):
    assert cli.main(args + ["--set", "ingest.data.image_folder.on_bad_file=skip"]) == 0
