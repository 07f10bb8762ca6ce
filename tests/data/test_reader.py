"""The tf.data reader: batches, determinism, dynamic binarisation, per-worker sharding."""

import numpy as np
import pytest
import tensorflow as tf

from kerasvae.data import reader
from kerasvae.data.ingest import ingest
from kerasvae.data.reader import load_split, make_dataset, read_metadata
from tests.data import helpers


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
  """100 8x8 images labelled 0..99 (the label identifies the image), 4 shards."""
  tmp = tmp_path_factory.mktemp("reader")
  np.savez(tmp / "a.npz", images=helpers.random_images(100), labels=np.arange(100))
  return ingest(helpers.config({"source": "npz", "npz": {"path": str(tmp / "a.npz")}},
                               split={"eval_fraction": 0.0, "validation_fraction": 0.0}), tmp / "artifact")


def _labels(ds):
  return np.concatenate([b["label"].numpy() for b in ds])


def test_batches(artifact):
  ds = make_dataset(artifact, "train", 32, shuffle=False)
  batches = list(ds)
  assert [b["image"].shape[0] for b in batches] == [32, 32, 32, 4]
  assert batches[0]["image"].dtype == tf.float32 and batches[0]["label"].dtype == tf.int64
  data = load_split(artifact, "train")
  np.testing.assert_array_equal(np.concatenate([b["image"] for b in batches]), data["image"])
  assert 0.0 <= data["image"].min() and data["image"].max() <= 1.0
  dropped = make_dataset(artifact, "train", 32, drop_remainder=True)
  assert len(list(dropped)) == 3
  repeated = make_dataset(artifact, "train", 30, repeat=True)
  assert len(list(repeated.take(10))) == 10


@pytest.fixture(params=["permutation", "buffer"])
def shuffle_mode(request, monkeypatch):
  """Both shuffles: by a permutation of the in-memory split, and (for a split past
  IN_MEMORY_BYTES) through a shuffle buffer."""
  if request.param == "buffer":
    monkeypatch.setattr(reader, "IN_MEMORY_BYTES", 0)
  return request.param


def test_shuffle_covers_each_example_once_per_epoch(artifact, shuffle_mode):
  ds = make_dataset(artifact, "train", 16, seed=1)
  first, second = _labels(ds), _labels(ds)
  assert sorted(first) == sorted(second) == list(range(100))
  assert not np.array_equal(first, second)  # reshuffled each epoch
  assert len(list(make_dataset(artifact, "train", 16, seed=1, drop_remainder=True))) == 6


def test_repeated_batches_run_across_epochs(artifact, shuffle_mode):
  # Batch 30 over 100 examples: no partial batch, and every 100 consecutive examples of the
  # stream are one epoch, so each example comes once per epoch.
  ds = make_dataset(artifact, "train", 30, seed=2, repeat=True, drop_remainder=True,
                    deterministic=True)
  batches = [b["label"].numpy() for b in ds.take(10)]
  assert {len(b) for b in batches} == {30}
  stream = np.concatenate(batches)  # 3 epochs
  for epoch in range(3):
    assert sorted(stream[100 * epoch:100 * (epoch + 1)]) == list(range(100))
  assert not np.array_equal(stream[:100], stream[100:200])


def test_deterministic(artifact):
  def epochs(seed):
    ds = make_dataset(artifact, "train", 16, seed=seed, deterministic=True, repeat=True)
    return _labels(ds.take(14))  # two epochs and a bit

  np.testing.assert_array_equal(epochs(5), epochs(5))
  assert not np.array_equal(epochs(5), epochs(6))
  a = _labels(make_dataset(artifact, "train", 16, deterministic=True))
  np.testing.assert_array_equal(a, _labels(make_dataset(artifact, "train", 16, deterministic=True)))


def test_deferred_finish_in_a_compiled_step_gives_the_same_images(artifact):
  finish = tf.function(reader.finish_fn(read_metadata(artifact)), jit_compile=True)
  deferred = next(iter(make_dataset(artifact, "train", 32, seed=4, deterministic=True,
                                    defer_finish=True)))
  assert "image" not in deferred and deferred["pixels"].dtype == tf.uint8
  assert deferred["pixels"].shape == (32, 64)  # flat, as stored
  expected = next(iter(make_dataset(artifact, "train", 32, seed=4, deterministic=True)))
  np.testing.assert_allclose(finish(deferred)["image"], expected["image"], rtol=1e-6)
  np.testing.assert_array_equal(deferred["label"], expected["label"])


def test_dynamic_binarisation(tmp_path):
  # Each image has one grey level p; a Bernoulli(p) draw has mean p.
  levels = np.repeat(np.array([0, 51, 128, 204, 255], np.uint8), 8)  # [40]
  images = np.broadcast_to(levels[:, None, None], (40, 8, 8)).copy()
  np.savez(tmp_path / "grey.npz", images=images, labels=np.arange(40))
  out = ingest(helpers.config({"source": "npz", "npz": {"path": str(tmp_path / "grey.npz")}},
                              split={"eval_fraction": 0.0, "validation_fraction": 0.0}, binarize="dynamic"), tmp_path / "a")
  assert read_metadata(out)["preprocessing"]["binarize"] == "dynamic"
  ds = make_dataset(out, "train", 40, shuffle=False, seed=3)
  draws = []
  for _ in range(30):  # 30 epochs, one batch each
    batch = next(iter(ds))
    np.testing.assert_array_equal(batch["label"], np.arange(40))
    draws.append(batch["image"].numpy())
  draws = np.stack(draws)  # [30, 40, 8, 8, 1]
  assert set(np.unique(draws)) == {0.0, 1.0}
  assert not np.array_equal(draws[0], draws[1])  # a fresh draw every epoch
  p = levels / 255.0
  means = draws.mean(axis=(0, 2, 3, 4))  # [40] over 30 * 64 draws each
  sigma = np.sqrt(p * (1 - p) / (30 * 64))
  assert np.all(np.abs(means - p) <= 5 * sigma + 1e-9)
  # Drawn inside a compiled step instead (the train step's way): the same distribution.
  finish = tf.function(reader.finish_fn(read_metadata(out)), jit_compile=True)
  deferred = make_dataset(out, "train", 40, shuffle=False, seed=3, defer_finish=True)
  compiled = np.stack([finish(next(iter(deferred)))["image"].numpy() for _ in range(30)])
  assert set(np.unique(compiled)) == {0.0, 1.0}
  assert not np.array_equal(compiled[0], compiled[1])
  assert np.all(np.abs(compiled.mean(axis=(0, 2, 3, 4)) - p) <= 5 * sigma + 1e-9)
  # Reproducible from the seed, within one epoch and across runs.
  again = make_dataset(out, "train", 40, shuffle=False, seed=3)
  np.testing.assert_array_equal(next(iter(again))["image"], draws[0])
  # load_split: one fixed draw for evaluation, or the intensities.
  np.testing.assert_array_equal(load_split(out, "train")["image"], load_split(out, "train")["image"])
  np.testing.assert_allclose(load_split(out, "train", binarize_seed=None)["image"][:, 0, 0, 0], p,
                             rtol=1e-6)


@pytest.mark.parametrize("num_shards", [4, 1])
def test_per_worker_sharding(tmp_path, num_shards):
  np.savez(tmp_path / "a.npz", images=helpers.random_images(50), labels=np.arange(50))
  out = ingest(helpers.config({"source": "npz", "npz": {"path": str(tmp_path / "a.npz")}},
                              split={"eval_fraction": 0.0, "validation_fraction": 0.0}, num_shards=num_shards),
               tmp_path / "a")
  seen = []
  for worker in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                         num_replicas_in_sync=4)
    ds = make_dataset(out, "train", 8, input_context=context, seed=0)
    batches = list(ds)
    assert max(b["image"].shape[0] for b in batches) == 2  # global 8 over 4 replicas
    seen.append(set(_labels(ds).tolist()))
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(50))


def test_split_names_and_errors(artifact, tmp_path):
  assert len(load_split(artifact, "eval")["image"]) == 0
  assert load_split(artifact, "train", limit=7)["label"].tolist() == list(range(7))
  assert len(load_split(artifact, "validation")["image"]) == 0
  with pytest.raises(ValueError, match="Expected a split among"):
    make_dataset(artifact, "holdout", 8)
  with pytest.raises(FileNotFoundError, match="Run the ingest step"):
    read_metadata(tmp_path / "missing")
  (tmp_path / "half").mkdir()
  with pytest.raises(ValueError, match="Expected a complete Examples artifact"):
    make_dataset(tmp_path / "half", "train", 8)
