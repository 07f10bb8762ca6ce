"""Symbolic links are not followed out of the folders the user named.

A run folder (run.runs_dir, a run directory, a step folder, --run-dir) or an export model
folder that is a link would send every artifact, and the removals of --force, wherever it
points: refused before anything is written. An image_folder class folder or file that links
out of image_folder.root would read whatever it names as training data: refused, naming the
link; links that stay inside the root are read.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.test_bad_inputs import assert_named_error
from tests.reliability.test_bad_inputs import tree
from tests.reliability.test_bad_inputs import write_config
from tests.reliability.test_bad_inputs import write_png


def run_directory(tmp_path, config_file):
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  cwd = os.getcwd()
  os.chdir(tmp_path)
  try:
    return common.run_directory(configs.load_pipeline_config(config_file))
  finally:
    os.chdir(cwd)


@pytest.fixture
def elsewhere(tmp_path):
  """A folder outside the working directory that links point to; must stay untouched."""
  path = tmp_path.parent / f"{tmp_path.name}-elsewhere"
  path.mkdir()
  (path / "keep.txt").write_text("mine")
  yield path
  assert sorted(p.name for p in path.iterdir()) == ["keep.txt"], "written through a link"


def test_runs_dir_that_is_a_symlink_is_refused(tmp_path, elsewhere, monkeypatch, capsys):
  write_config(tmp_path / "c.yaml")
  (tmp_path / "runs").symlink_to(elsewhere)
  assert_named_error(["ingest", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"error: run\.runs_dir: expected a folder, not a symbolic link: kerasvae "
                     r"writes only into the folder named\. Received: \S*/runs -> \S*-elsewhere\. "
                     r"Name the folder itself: run\.runs_dir=\S*-elsewhere$")


@pytest.mark.parametrize("link", ["run", "step", "examples"])
def test_folder_below_runs_dir_that_is_a_symlink_is_refused(link, tmp_path, elsewhere,
                                                           monkeypatch, capsys):
  write_config(tmp_path / "c.yaml")
  run_dir = tmp_path / run_directory(tmp_path, "c.yaml")
  place = {"run": run_dir, "step": run_dir / "train", "examples": tmp_path / "runs" / "examples"}
  place[link].parent.mkdir(parents=True, exist_ok=True)
  place[link].symlink_to(elsewhere)
  err = assert_named_error(["ingest", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                           r"error: run\.runs_dir: expected only real folders and files under "
                           r"\S*/runs: kerasvae does not write through symbolic links\. Received: "
                           r"\S+ -> \S*-elsewhere\. Remove the link")
  assert f"Received: {place[link].absolute()} -> " in err


def test_run_dir_option_that_is_a_symlink_is_refused(tmp_path, elsewhere, monkeypatch, capsys):
  write_config(tmp_path / "c.yaml")
  (tmp_path / "mine").symlink_to(elsewhere)
  assert_named_error(["ingest", "--config", "c.yaml", "--run-dir", "mine"], tmp_path,
                     monkeypatch, capsys,
                     r"error: --run-dir: expected a folder, not a symbolic link.*"
                     r"Name the folder itself: --run-dir=\S*-elsewhere$")


def test_export_model_folder_that_is_a_symlink_is_refused(tmp_path, elsewhere, monkeypatch,
                                                          capsys):
  write_config(tmp_path / "c.yaml", export={"base_dir": "saved_models", "model_name": "vae"})
  (tmp_path / "saved_models").mkdir()
  (tmp_path / "saved_models" / "vae").symlink_to(elsewhere)
  # The pipeline's own refusal, with no upstream run for the early check to name first.
  from kerasvae.steps import table  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(table, "check_upstream", lambda *args, **kwargs: None)
  assert_named_error(["export", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"error: export\.base_dir: expected only real folders and files under "
                     r"\S*/saved_models: kerasvae does not write through symbolic links\. "
                     r"Received: \S*/saved_models/vae -> \S*-elsewhere")


def image_root(tmp_path):
  root = tmp_path / "images"
  for name in ("a", "b"):
    for i in range(3):
      write_png(root / name / f"{i}.png", 8, 8)
  return root


@pytest.mark.parametrize("link", ["class-folder", "file", "root-level-file"])
def test_image_folder_link_out_of_the_root_is_refused(link, tmp_path, elsewhere, monkeypatch,
                                                      capsys):
  root = image_root(tmp_path)
  outside = tmp_path.parent / f"{tmp_path.name}-outside"
  write_png(outside / "secret.png", 8, 8)
  place = {"class-folder": root / "c", "file": root / "a" / "secret.png",
           "root-level-file": root / "secret.png"}[link]
  place.symlink_to(outside if link == "class-folder" else outside / "secret.png")
  write_config(tmp_path / "c.yaml", ingest={"data": {"source": "image_folder", "image_folder": {
      "root": "images", "labels_from_subfolders": link != "root-level-file"}},
                                            "split": {"eval_fraction": 0.3}, "num_shards": 1})
  assert_named_error(["ingest", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     rf"error: {place}: expected a file or folder inside image_folder\.root="
                     rf"{root}: symbolic links are followed only within it\. Received: a link "
                     rf"to {outside}")


def test_image_folder_links_inside_the_root_and_a_linked_root_are_read(tmp_path):
  from kerasvae.data import config as data_config  # pylint: disable=import-outside-toplevel
  from kerasvae.data import sources  # pylint: disable=import-outside-toplevel
  root = image_root(tmp_path)
  (root / "a" / "again.png").symlink_to(root / "b" / "0.png")
  (tmp_path / "linked").symlink_to(root)
  source = sources.ImageFolderSource(data_config.ImageFolderConfig(root=str(tmp_path / "linked")))
  assert source.label_names == ["a", "b"]
  assert sorted(p.relative_to(tmp_path / "linked").as_posix() for p, _ in source.files) == [
      "a/0.png", "a/1.png", "a/2.png", "a/again.png", "b/0.png", "b/1.png", "b/2.png"]
  images = np.concatenate([chunk["images"] for _, chunk in source.chunks()])
  assert images.shape == (7, 8, 8, 1)


def test_refuse_symlinks_checks_only_from_the_named_folder_down(tmp_path):
  """Folders above the one the user named may be links (a home on another disk)."""
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  (tmp_path / "real" / "runs" / "r1").mkdir(parents=True)
  (tmp_path / "home").symlink_to(tmp_path / "real")
  artifacts.refuse_symlinks(tmp_path / "home" / "runs" / "r1" / "train", tmp_path / "home" / "runs",
                            "run.runs_dir")
  (tmp_path / "real" / "runs" / "r1" / "ckpt").symlink_to(tmp_path)
  with pytest.raises(artifacts.SymlinkError, match=r"Received: \S*/r1/ckpt -> "):
    artifacts.refuse_symlinks(tmp_path / "home" / "runs" / "r1", tmp_path / "home" / "runs",
                              "run.runs_dir")
  assert tree(tmp_path / "real") == {"runs", "runs/r1", "runs/r1/ckpt"}
  assert Path(tmp_path / "home").is_symlink()
