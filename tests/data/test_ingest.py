"""The ingest step: bad inputs fail clearly and leave nothing; good ones round-trip."""

import hashlib
import importlib
import logging
import os

import numpy as np
import pytest
from PIL import Image

from kerasvae.config import ConfigError, from_dict
from kerasvae.data.config import IngestConfig
from kerasvae.data.ingest import hash_fraction, ingest
from kerasvae.data.reader import load_split, read_metadata
from kerasvae.data.sources import DataError, read_idx
from tests.data import helpers

# The package exports the function `ingest`, which hides the module of the same name.
ingest_lib = importlib.import_module("kerasvae.data.ingest")


@pytest.fixture
def out(tmp_path):
  return tmp_path / "artifacts" / "examples"


def _fails(cfg, out, error, *fragments):
  with pytest.raises(error) as info:
    ingest(cfg, out)
  for fragment in fragments:
    assert fragment in str(info.value), str(info.value)
  helpers.assert_nothing_left(out.parent)
  return str(info.value)


# ------------------------------------------------------------------ bad input

def test_missing_file(tmp_path, out):
  missing = tmp_path / "nope-images.gz"
  _fails(helpers.config({"source": "idx", "idx": {"images": str(missing)}}), out,
         FileNotFoundError, "idx.images", str(missing))


def test_missing_directory(tmp_path, out):
  missing = tmp_path / "no_folder"
  _fails(helpers.config({"source": "image_folder", "image_folder": {"root": str(missing)}}), out,
         FileNotFoundError, "image_folder.root", str(missing))


def test_idx_wrong_magic(tmp_path, out):
  path = helpers.write_idx(tmp_path / "bad.idx", helpers.random_images(4),
                           magic=bytes([0x12, 0x34, 0x08, 0x03]))
  message = _fails(helpers.config({"source": "idx", "idx": {"images": str(path)}}), out,
                   DataError, str(path), "magic", "0x12340803")
  assert "Expected" in message or "expected" in message


@pytest.mark.parametrize("compress", [False, True])
def test_idx_truncated(tmp_path, out, compress):
  path = helpers.write_idx(tmp_path / "t.idx", helpers.random_images(5), compress=compress)
  path.write_bytes(path.read_bytes()[:-40])
  _fails(helpers.config({"source": "idx", "idx": {"images": str(path)}}), out, DataError,
         str(path), "truncated")


def test_label_count_mismatch(tmp_path, out):
  images = helpers.write_idx(tmp_path / "i.idx", helpers.random_images(6))
  labels = helpers.write_idx(tmp_path / "l.idx", np.arange(5, dtype=np.uint8))
  _fails(helpers.config({"source": "idx", "idx": {"images": str(images), "labels": str(labels)}}),
         out, DataError, str(labels), "expected 6 labels", "Received: 5 labels")


def test_npz_label_count_mismatch(tmp_path, out):
  path = tmp_path / "a.npz"
  np.savez(path, images=helpers.random_images(4), labels=np.arange(3))
  _fails(helpers.config({"source": "npz", "npz": {"path": str(path)}}), out, DataError,
         str(path), "expected 4 labels")


def _folder(tmp_path, sizes, extra=None):
  root = tmp_path / "folder"
  for i, size in enumerate(sizes):
    (root / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
    Image.fromarray(helpers.random_images(1, size, seed=i)[0]).save(root / f"class{i % 2}" / f"{i}.png")
  if extra:
    (root / "class0" / extra).write_text("not an image")
  return root


def test_image_folder_mixed_sizes(tmp_path, out):
  root = _folder(tmp_path, [8, 8, 8, 10])
  _fails(helpers.config({"source": "image_folder", "image_folder": {"root": str(root)}}), out,
         DataError, "3.png", "resize", "10x10")
  cfg = helpers.config({"source": "image_folder",
                        "image_folder": {"root": str(root), "resize": [6, 7]}})
  data = load_split(ingest(cfg, out), "train")
  assert data["image"].shape[1:] == (6, 7, 1)


def test_image_folder_non_image_fail(tmp_path, out):
  root = _folder(tmp_path, [8, 8], extra="notes.txt")
  _fails(helpers.config({"source": "image_folder", "image_folder": {"root": str(root)}}), out,
         DataError, "notes.txt", "PNG or JPEG")


def test_image_folder_non_image_skip(tmp_path, out):
  root = _folder(tmp_path, [8, 8, 8, 8], extra="broken.png")
  cfg = helpers.config({"source": "image_folder",
                        "image_folder": {"root": str(root), "on_bad_file": "skip"}},
                       split={"eval_fraction": 0.0, "validation_fraction": 0.0})
  with pytest.warns(UserWarning, match="broken.png"):
    ingest(cfg, out)
  metadata = read_metadata(out)
  assert metadata["splits"]["train"]["num_examples"] == 4
  assert metadata["label_names"] == ["class0", "class1"]
  assert sorted(load_split(out, "train")["label"].tolist()) == [0, 0, 1, 1]


def test_image_folder_stores_the_classes_mixed_not_one_after_another(tmp_path, out):
  # Sorted class by class, a split too large to shuffle in memory would reach a shuffle buffer
  # one class at a time.
  root = _folder(tmp_path, [8] * 40)  # class0: 0.png, 2.png, ...; class1: 1.png, 3.png, ...
  cfg = helpers.config({"source": "image_folder", "image_folder": {"root": str(root)}},
                       split={"eval_fraction": 0.0, "validation_fraction": 0.0})
  labels = load_split(ingest(cfg, out), "train")["label"]
  assert sorted(labels.tolist()) == [0] * 20 + [1] * 20
  assert set(labels[:10].tolist()) == {0, 1} and set(labels[-10:].tolist()) == {0, 1}
  again = load_split(ingest(cfg, tmp_path / "again"), "train")["label"]
  np.testing.assert_array_equal(again, labels)  # a stable order


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(tmp_path, out, bad):
  images = np.random.RandomState(0).uniform(size=(5, 4, 4)).astype(np.float32)
  images[3, 1, 2] = bad
  path = tmp_path / "f.npz"
  np.savez(path, images=images)
  _fails(helpers.config({"source": "npz", "npz": {"path": str(path)}}), out, DataError,
         str(path), "finite")


def test_empty_sources(tmp_path, out):
  path = tmp_path / "empty.npz"
  np.savez(path, images=np.zeros((0, 4, 4), np.uint8))
  _fails(helpers.config({"source": "npz", "npz": {"path": str(path)}}), out, DataError,
         str(path), "at least one image")
  (tmp_path / "empty_dir").mkdir()
  _fails(helpers.config({"source": "image_folder",
                         "image_folder": {"root": str(tmp_path / "empty_dir")}}),
         out, DataError, "empty_dir", "at least one image")


def test_npz_missing_key(tmp_path, out):
  path = tmp_path / "k.npz"
  np.savez(path, pictures=helpers.random_images(3))
  _fails(helpers.config({"source": "npz", "npz": {"path": str(path)}}), out, DataError,
         "images_key", "pictures")


def test_float_out_of_range(tmp_path, out):
  path = tmp_path / "f.npz"
  np.savez(path, images=np.full((3, 4, 4), 7.0, np.float32))
  _fails(helpers.config({"source": "npz", "npz": {"path": str(path)}}), out, DataError,
         "pixel_max", "max=7.0")


def test_config_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"config\.data\.idx: unknown key 'imagez'"):
    from_dict(IngestConfig, {"data": {"source": "idx", "idx": {"imagez": "x"}}})
  with pytest.raises(ConfigError, match=r"data\.source: expected one of"):
    from_dict(IngestConfig, {"data": {"source": "csv"}})
  with pytest.raises(ConfigError, match="idx.images"):
    from_dict(IngestConfig, {"data": {"source": "idx"}})
  with pytest.raises(ConfigError, match="scale_to_unit"):
    from_dict(IngestConfig, {"binarize": "dynamic", "scale_to_unit": False})


def test_interrupted_ingest_leaves_nothing(npz_path, out, monkeypatch):
  calls = []

  def interrupted(self, chunk):
    calls.append(1)
    raise KeyboardInterrupt

  monkeypatch.setattr(ingest_lib._SplitWriter, "write", interrupted)
  with pytest.raises(KeyboardInterrupt):
    ingest(helpers.config({"source": "npz", "npz": {"path": str(npz_path)}}), out)
  assert calls
  helpers.assert_nothing_left(out.parent)


# ---------------------------------------------------------------- good input

def test_default_config_is_the_dsprites_quickstart():
  cfg = IngestConfig()
  assert cfg.data.source == "dsprites"
  assert cfg.data.dsprites.num_examples == 20000 and cfg.data.dsprites.seed == 0
  assert cfg.split.method == "hash" and cfg.split.eval_fraction == pytest.approx(0.1)
  assert cfg.split.validation_fraction == pytest.approx(0.1)
  assert (cfg.train_split_name, cfg.validation_split_name, cfg.eval_split_name) == (
      "train", "validation", "test")


def test_npz_round_trip(npz_path, out):
  cfg = helpers.config({"source": "npz", "npz": {"path": str(npz_path), "factor_names": ["a", "b"]}},
                       split={"eval_fraction": 0.25, "validation_fraction": 0.2},
                       train_split_name="fit", validation_split_name="select",
                       eval_split_name="holdout", num_shards=3)
  ingest(cfg, out)
  raw = np.load(npz_path)
  h = hash_fraction(np.arange(60), "kerasvae")  # the documented split rule
  to_eval = h < 0.25
  to_validation = (h >= 0.25) & (h < 0.45)
  metadata = read_metadata(out)
  assert sorted(p.name for p in out.iterdir()) == [
      "Split-fit", "Split-holdout", "Split-select", "metadata.json", "schema.pbtxt"]
  assert metadata["splits"]["holdout"]["num_examples"] == to_eval.sum() > 0
  assert metadata["splits"]["select"]["num_examples"] == to_validation.sum() > 0
  assert metadata["factor_names"] == ["a", "b"]
  assert metadata["image_shape"] == [8, 8, 1]
  for split, mask in (("train", ~to_eval & ~to_validation), ("validation", to_validation),
                      ("holdout", to_eval)):
    data = load_split(out, split)
    np.testing.assert_array_equal(data["image"][..., 0] * 255.0, raw["images"][mask])
    np.testing.assert_array_equal(data["label"], raw["labels"][mask])
    np.testing.assert_array_equal(data["factors"], raw["factors"][mask])
    np.testing.assert_array_equal(data["factor_classes"], raw["factor_classes"][mask])
  stats = metadata["statistics"]["fit"]
  train_pixels = raw["images"][~to_eval & ~to_validation] / 255.0
  assert stats["pixel_mean"] == pytest.approx(train_pixels.mean())
  assert stats["pixel_std"] == pytest.approx(train_pixels.std())
  counts = np.bincount(raw["labels"][~to_eval & ~to_validation], minlength=3)
  assert stats["label_histogram"] == {str(k): int(c) for k, c in enumerate(counts) if c}
  schema = (out / "schema.pbtxt").read_text()
  for name in ("image", "shape", "label", "factors", "factor_classes"):
    assert f'name: "{name}"' in schema
  assert (out / "Split-fit" / "statistics.json").is_file()
  assert load_split(out, "train", limit=5)["image"].shape == (5, 8, 8, 1)


def test_float_npy_round_trip_and_static_binarize(tmp_path, out):
  images = np.random.RandomState(2).uniform(size=(20, 5, 5, 3)).astype(np.float32)
  np.save(tmp_path / "f.npy", images)
  data_block = {"source": "npz", "npz": {"path": str(tmp_path / "f.npy")}}
  ingest(helpers.config(data_block, split={"eval_fraction": 0.0, "validation_fraction": 0.0}), out)
  np.testing.assert_array_equal(load_split(out, "train")["image"], images)
  binary = tmp_path / "artifacts" / "binary"
  ingest(helpers.config(data_block, split={"eval_fraction": 0.0, "validation_fraction": 0.0}, binarize="static",
                        threshold=0.3), binary)
  np.testing.assert_array_equal(load_split(binary, "train")["image"], (images > 0.3).astype(np.float32))


def test_dsprites_npz_layout(tmp_path, out):
  # DeepMind's dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, in miniature: a compressed npz with
  # uint8 imgs [N, 64, 64] in {0, 1}, int64 latents_classes and float64 latents_values [N, 6], and
  # `metadata`, a pickled dict the reader must not need (it loads with allow_pickle=False).
  from kerasvae.data.dsprites import DSprites
  data = DSprites()
  classes = data.classes_of(np.arange(0, 737280, 9973))
  path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
  metadata = {"date": "April 2017", "version": 1, "title": "dSprites dataset",
              "latents_names": data.factor_names,
              "latents_sizes": np.array(data.factor_sizes),
              "latents_possible_values": {name: data.factor_values_of(name)
                                          for name in data.factor_names}}
  np.savez_compressed(path, metadata=metadata, imgs=data.render(classes)[..., 0],
                      latents_classes=classes, latents_values=data.factor_values(classes))
  with np.load(path, allow_pickle=False) as archive:
    assert archive["imgs"].dtype == np.uint8 and archive["imgs"].shape == (len(classes), 64, 64)
    assert archive["latents_values"].dtype == np.float64
    with pytest.raises(ValueError, match="allow_pickle"):
      archive["metadata"]  # pylint: disable=pointless-statement
  ingest(helpers.config({"source": "npz", "npz": {"path": str(path)}},
                        split={"eval_fraction": 0.0, "validation_fraction": 0.0}), out)
  loaded = load_split(out, "train")
  np.testing.assert_array_equal(loaded["image"], data.render(classes).astype(np.float32))
  np.testing.assert_array_equal(loaded["factor_classes"], classes)
  np.testing.assert_allclose(loaded["factors"], data.factor_values(classes), rtol=1e-6)
  np.testing.assert_array_equal(loaded["label"], classes[:, 1])
  metadata = read_metadata(out)
  assert metadata["factor_names"] == list(data.factor_names)
  assert metadata["label_names"] == ["square", "ellipse", "heart"]


def test_reuse_and_refuse(npz_path, out, caplog):
  cfg = helpers.config({"source": "npz", "npz": {"path": str(npz_path)}})
  ingest(cfg, out)
  stamp = os.stat(out / "metadata.json").st_mtime_ns
  with caplog.at_level(logging.INFO, logger="kerasvae.data.ingest"):
    assert ingest(cfg, out) == out
  assert "Reusing" in caplog.text
  assert os.stat(out / "metadata.json").st_mtime_ns == stamp
  other = helpers.config({"source": "npz", "npz": {"path": str(npz_path)}}, num_shards=2)
  with pytest.raises(FileExistsError, match="another config"):
    ingest(other, out)
  ingest(other, out, force=True)
  assert len(read_metadata(out)["splits"]["train"]["files"]) == 2
  assert [p.name for p in out.parent.iterdir()] == ["examples"]  # no temporary leftovers


def test_reuse_notices_changed_content(npz_path, out):
  cfg = helpers.config({"source": "npz", "npz": {"path": str(npz_path)}})
  ingest(cfg, out)
  np.savez(npz_path, images=helpers.random_images(60, seed=9))
  with pytest.raises(FileExistsError):
    ingest(cfg, out)


def test_idx_source_splits(tmp_path, out):
  images = helpers.random_images(12)
  paths = {name: str(helpers.write_idx(tmp_path / f"{name}.idx", array, compress=True))
           for name, array in (("images", images[:9]), ("labels", np.arange(9, dtype=np.uint8)),
                               ("eval_images", images[9:]),
                               ("eval_labels", np.arange(3, dtype=np.uint8)))}
  ingest(helpers.config({"source": "idx", "idx": paths},
                        split={"method": "source", "validation_start": 7}), out)
  np.testing.assert_array_equal(load_split(out, "test")["image"][..., 0] * 255, images[9:])
  np.testing.assert_array_equal(load_split(out, "train")["label"], np.arange(7))
  np.testing.assert_array_equal(load_split(out, "validation")["label"], [7, 8])
  # Without validation_start the validation split is a hash band of the source's train split.
  ingest(helpers.config({"source": "idx", "idx": paths},
                        split={"method": "source", "validation_fraction": 0.5}), tmp_path / "h")
  to_validation = hash_fraction(np.arange(9), "kerasvae") < 0.5
  np.testing.assert_array_equal(load_split(tmp_path / "h", "validation")["label"],
                                np.arange(9)[to_validation])
  np.testing.assert_array_equal(load_split(tmp_path / "h", "train")["label"],
                                np.arange(9)[~to_validation])
  np.save(tmp_path / "images.npy", images)
  with pytest.raises(ConfigError, match="split.method"):
    ingest(helpers.config({"source": "npz", "npz": {"path": str(tmp_path / "images.npy")}},
                          split={"method": "source"}), tmp_path / "x")


def test_mnist_idx(mnist_dir, tmp_path):
  md5 = {"t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
  for name, digest in md5.items():
    assert hashlib.md5((mnist_dir / name).read_bytes()).hexdigest() == digest
  images_path = mnist_dir / "t10k-images-idx3-ubyte.gz"
  labels_path = mnist_dir / "t10k-labels-idx1-ubyte.gz"
  out = tmp_path / "mnist"
  ingest(helpers.config({"source": "idx", "idx": {"images": str(images_path),
                                                  "labels": str(labels_path)}}), out)
  metadata = read_metadata(out)
  counts = {name: s["num_examples"] for name, s in metadata["splits"].items()}
  assert sum(counts.values()) == 10000 and 800 < counts["test"] < 1200
  assert 800 < counts["validation"] < 1200
  histogram = np.zeros(10, int)
  for stats in metadata["statistics"].values():
    for label, count in stats["label_histogram"].items():
      histogram[int(label)] += count
  # The published class counts of the MNIST test set.
  assert histogram.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  raw_images, raw_labels = read_idx(images_path), read_idx(labels_path)
  assert raw_labels[:3].tolist() == [7, 2, 1]
  eval_mask = hash_fraction(np.arange(10000), "kerasvae") < 0.1
  data = load_split(out, "eval")
  np.testing.assert_array_equal(data["label"], raw_labels[eval_mask])
  np.testing.assert_array_equal(np.round(data["image"][..., 0] * 255), raw_images[eval_mask])


def test_index_split_sends_the_tail_to_validation_and_test(tmp_path):
  images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)
  np.savez(tmp_path / "a.npz", images=images)
  out = ingest({"data": {"source": "npz", "npz": {"path": str(tmp_path / "a.npz")}},
                "split": {"method": "index", "eval_start": 45, "validation_start": 40},
                "num_shards": 2},
               tmp_path / "examples")
  train, validation, test = (load_split(out, s) for s in ("train", "validation", "test"))
  np.testing.assert_array_equal(train["image"][:, 0, 0, 0] * 255, np.arange(40))
  np.testing.assert_array_equal(validation["image"][:, 0, 0, 0] * 255, np.arange(40, 45))
  np.testing.assert_array_equal(test["image"][:, 0, 0, 0] * 255, np.arange(45, 50))
  with pytest.raises(ConfigError, match=r"validation_start: expected .* Received: "
                     r"validation_start=None"):
    ingest({"data": {"source": "npz", "npz": {"path": str(tmp_path / "a.npz")}},
            "split": {"method": "index", "eval_start": 45}}, tmp_path / "other")


def test_the_three_splits_are_disjoint_and_cover_the_source(tmp_path):
  """Every example lands in exactly one split, for each split method."""
  images = np.arange(200, dtype=np.uint8).reshape(200, 1, 1, 1)  # each image its own index
  np.savez(tmp_path / "a.npz", images=images)
  for i, split in enumerate(({"eval_fraction": 0.2, "validation_fraction": 0.3},
                             {"method": "index", "eval_start": 150, "validation_start": 120})):
    out = ingest({"data": {"source": "npz", "npz": {"path": str(tmp_path / "a.npz")}},
                  "split": split, "num_shards": 2}, tmp_path / f"examples{i}")
    seen = [set(np.round(load_split(out, s)["image"][:, 0, 0, 0] * 255).astype(int).tolist())
            for s in ("train", "validation", "test")]
    assert all(seen) and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert seen[0] | seen[1] | seen[2] == set(range(200))
