"""Relative data paths: a bundled config's against the data directory, a YAML file's against
its own folder, a `--set` value's against the current directory; never the cwd for files."""

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from kerasvae.data.config import bundled_data_dir
from kerasvae.steps import configs
from kerasvae.studies import core
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
  """A current directory that is neither the repository nor its parent."""
  cwd = tmp_path / "somewhere" / "else"
  cwd.mkdir(parents=True)
  monkeypatch.chdir(cwd)
  return cwd


def test_bundled_mnist_configs_resolve_against_the_data_directory_from_any_cwd(elsewhere,
                                                                               monkeypatch):
  monkeypatch.delenv("KERASVAE_DATA_DIR", raising=False)
  expected = REPO.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
  assert bundled_data_dir() == REPO.parent / "shared" / "data"
  for name in ("mnist_vae", "mnist_priors"):
    config = configs.load_pipeline_config(name)
    assert config.ingest.data.idx.images == str(expected)
    assert config.ingest.data.idx.labels == str(expected.parent / "t10k-labels-idx1-ubyte.gz")
  for study in ("latent-dim", "beta", "ae-vs-vae", "priors"):
    _, _, _, trials = core.load_study_config(core.resolve_study_config_path(study),
                                             output=elsewhere / "study")
    assert {t.config.ingest.data.idx.images for t in trials} == {str(expected)}
  monkeypatch.setenv("KERASVAE_DATA_DIR", str(elsewhere / "data"))
  config = configs.load_pipeline_config("mnist_vae")
  assert config.ingest.data.idx.images == str(elsewhere / "data" / "mnist" /
                                              "t10k-images-idx3-ubyte.gz")


def test_a_yaml_files_relative_paths_are_its_folders_and_set_values_the_cwds(tmp_path,
                                                                              elsewhere):
  folder = tmp_path / "project"
  folder.mkdir()
  path = folder / "my.yaml"
  path.write_text(yaml.safe_dump({"ingest": {"data": {
      "source": "idx", "idx": {"images": "data/images.gz", "labels": "/abs/labels.gz"},
      "npz": {"path": "../arrays.npz"}, "image_folder": {"root": "pictures"},
      "tfds": {"data_dir": "~/tensorflow_datasets"}}}}))
  config = configs.load_pipeline_config(path)
  data = config.ingest.data
  assert data.idx.images == str(folder / "data" / "images.gz")
  assert data.idx.labels == "/abs/labels.gz"
  assert data.npz.path == str(tmp_path / "arrays.npz")
  assert data.image_folder.root == str(folder / "pictures")
  assert data.tfds.data_dir == "~/tensorflow_datasets"
  # A path typed on the command line is the shell's: relative to the current directory.
  config = configs.load_pipeline_config(path, ["ingest.data.idx.images=mine/images.gz"])
  assert config.ingest.data.idx.images == str(elsewhere / "mine" / "images.gz")


def test_mnist_vae_ingests_from_another_directory(tmp_path):
  if not (REPO.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
    pytest.skip("no MNIST in ../shared/data/mnist beside the repository, where mnist_vae "
                "reads it without KERASVAE_DATA_DIR")
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  env = subprocess_env()
  env.pop("KERASVAE_DATA_DIR", None)
  proc = subprocess.run(
      [sys.executable, "-m", "kerasvae.cli", "ingest", "--config", "mnist_vae",
       "--set", f"run.runs_dir={tmp_path / 'runs'}"],
      cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "ingest: " in proc.stdout and "(test 1000, train 8000, validation 1000)" in proc.stdout
  assert os.listdir(cwd) == []  # nothing written to the current directory


def test_fashion_mnist_is_found_in_the_data_directory_or_where_debian_installs_it(
    elsewhere, monkeypatch, tmp_path):
  """The bundled Fashion-MNIST configs read $KERASVAE_DATA_DIR/fashion_mnist, else the files of
  Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)."""
  from kerasvae.data import config as data_config  # pylint: disable=import-outside-toplevel
  debian = tmp_path / "debian" / "fashion-mnist"
  debian.mkdir(parents=True)
  (debian / "train-images-idx3-ubyte.gz").write_bytes(b"")
  monkeypatch.setitem(data_config.SYSTEM_DATA_DIRS, "fashion_mnist", (debian,))
  monkeypatch.setenv("KERASVAE_DATA_DIR", str(elsewhere / "data"))  # holds nothing
  config = configs.load_pipeline_config("fashion_mnist_vae")
  assert config.ingest.data.idx.images == str(debian / "train-images-idx3-ubyte.gz")
  # A file the package does not hold is named in the data directory (the error says where).
  assert config.ingest.data.idx.labels == str(elsewhere / "data" / "fashion_mnist" /
                                              "train-labels-idx1-ubyte.gz")
  assert (config.ingest.split.method, config.ingest.split.validation_start) == ("source", 55000)
  _, _, _, trials = core.load_study_config(core.resolve_study_config_path(
      "priors", "fashion-mnist-priors"), output=elsewhere / "study")
  assert {t.config.ingest.data.idx.images for t in trials} == {
      str(debian / "train-images-idx3-ubyte.gz")}
  assert {t.config.train.epochs for t in trials} == {20}  # the study's own budget over priors'


def test_bundled_fashion_mnist_ingests_to_its_official_splits(tmp_path):
  """The full data set, where it is on disk: 55,000 / 5,000 / the official 10,000 test images."""
  from kerasvae.data import sources  # pylint: disable=import-outside-toplevel
  config = configs.load_pipeline_config("fashion_mnist_vae")
  if not os.path.isfile(config.ingest.data.idx.images):
    pytest.skip(f"Fashion-MNIST is not at {config.ingest.data.idx.images} (set "
                "KERASVAE_DATA_DIR or install Debian's dataset-fashion-mnist)")
  source = sources.open_source(config.ingest.data)
  counts = {}
  for role, chunk in source.chunks(use_source_splits=True):
    counts[role] = counts.get(role, 0) + len(chunk["images"])
  assert counts == {"train": 60000, "eval": 10000}
  train_positions = np.arange(60000)
  validation = config.ingest.split.validation_mask(train_positions, train_positions)
  assert int(validation.sum()) == 5000 and validation[55000:].all()
