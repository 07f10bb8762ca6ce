"""The TFDS source: mocked data, a locally prepared dummy dataset, and offline failures."""

import time
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kerasvae.data.ingest import ingest
from kerasvae.data.reader import load_split, read_metadata
from kerasvae.data.sources import DataError
from tests.data import helpers



def test_mock_mnist_with_source_splits(tmp_path):
  cfg = helpers.config({"source": "tfds", "tfds": {"name": "mnist", "data_dir": str(tmp_path / "tfds")}},
                       split={"method": "source", "validation_start": 25})
  with tfds.testing.mock_data(num_examples=30):
    out = ingest(cfg, tmp_path / "a")
  metadata = read_metadata(out)
  assert {k: v["num_examples"] for k, v in metadata["splits"].items()} == {
      "train": 25, "validation": 5, "test": 30}
  assert metadata["image_shape"] == [28, 28, 1]
  assert metadata["label_names"] == [str(i) for i in range(10)]
  data = load_split(out, "train")
  assert data["image"].shape == (25, 28, 28, 1) and data["label"].max() < 10


def test_mock_dsprites_factors(tmp_path):
  cfg = helpers.config({"source": "tfds", "tfds": {"name": "dsprites", "eval_split": None,
                                                   "data_dir": str(tmp_path / "tfds")}},
                       split={"eval_fraction": 0.0, "validation_fraction": 0.0})
  with tfds.testing.mock_data(num_examples=12, max_value=1):
    out = ingest(cfg, tmp_path / "a")
  metadata = read_metadata(out)
  assert metadata["factor_names"] == ["orientation", "scale", "shape", "x_position", "y_position"]
  data = load_split(out, "train")
  assert data["factors"].shape == (12, 5) and data["factor_classes"].shape == (12, 5)
  assert data["image"].shape == (12, 64, 64, 1)


def test_offline_without_prepared_data_fails_fast(tmp_path):
  start = time.perf_counter()
  with pytest.raises(DataError) as info:
    ingest(helpers.config({"source": "tfds", "tfds": {"name": "fashion_mnist",
                                                      "data_dir": str(tmp_path / "tfds")}}),
           tmp_path / "out" / "a")
  assert time.perf_counter() - start < 30
  message = str(info.value)
  assert "fashion_mnist" in message and "tfds build fashion_mnist" in message
  assert "download: true" in message
  helpers.assert_nothing_left(tmp_path / "out")


def test_unknown_name(tmp_path):
  with pytest.raises(DataError, match="tfds.name: .*Received: name='not_a_dataset_xyz'"):
    ingest(helpers.config({"source": "tfds", "tfds": {"name": "not_a_dataset_xyz"}}),
           tmp_path / "out" / "a")
  helpers.assert_nothing_left(tmp_path / "out")


def test_unknown_split(tmp_path):
  # Mocked data knows no split names; give the builder real-looking ones.
  splits = {name: mock.Mock(num_examples=10, num_bytes=0) for name in ("train", "test")}
  with tfds.testing.mock_data(num_examples=10), mock.patch.object(
      tfds.core.DatasetInfo, "splits", new_callable=mock.PropertyMock, return_value=splits):
    with pytest.raises(DataError, match=r"tfds.eval_split: expected a split of mnist among "
                                        r"\['train', 'test'\]. Received: eval_split='valid'"):
      ingest(helpers.config({"source": "tfds", "tfds": {"name": "mnist", "eval_split": "valid"}},
                            split={"method": "source"}), tmp_path / "out" / "a")
  helpers.assert_nothing_left(tmp_path / "out")


def test_prepared_dummy_dataset_and_unknown_split(tmp_path):
  # Preparing TFDS's dummy dataset needs importlib_resources, absent from some installs.
  pytest.importorskip("importlib_resources")
  data_dir = tmp_path / "tfds"
  builder = tfds.testing.DummyMnist(data_dir=str(data_dir))
  builder.download_and_prepare()  # generated locally, no network
  block = {"name": builder.name, "data_dir": str(data_dir)}
  out = ingest(helpers.config({"source": "tfds", "tfds": block},
                              split={"method": "source", "validation_fraction": 0.0}),
               tmp_path / "ok")
  metadata = read_metadata(out)
  expected = {"train": builder.info.splits["train"].num_examples, "validation": 0,
              "test": builder.info.splits["test"].num_examples}
  assert {k: v["num_examples"] for k, v in metadata["splits"].items()} == expected
  reference = next(iter(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)
                                      .batch(10**6))))
  data = load_split(out, "train")
  np.testing.assert_array_equal(data["image"] * 255, reference["image"].astype(np.float32))
  np.testing.assert_array_equal(data["label"], reference["label"])
  with pytest.raises(DataError, match=r"tfds.train_split: expected a split of .* Received: "
                                      r"train_split='validation'"):
    ingest(helpers.config({"source": "tfds", "tfds": {**block, "train_split": "validation"}}),
           tmp_path / "out" / "a")
  helpers.assert_nothing_left(tmp_path / "out")
