"""The dSprites generator: grid order, determinism and the geometry of the renders."""

import time

import numpy as np
import pytest

from kerasvae.config import ConfigError, from_dict
from kerasvae.data.config import IngestConfig
from kerasvae.data.dsprites import DSprites, FACTOR_SIZES
from kerasvae.data.ingest import ingest
from kerasvae.data.reader import load_split, read_metadata

SQUARE, ELLIPSE, HEART = 0, 1, 2
DATA = DSprites()


def _render(shape, scale, orientation, pos_x, pos_y):
  classes = np.array([[0, shape, scale, orientation, pos_x, pos_y]])
  return DATA.render(classes)[0, ..., 0]  # [64, 64]


def _centroid(image):
  rows, cols = np.nonzero(image)
  return cols.mean() + 0.5, rows.mean() + 0.5  # (x, y) of pixel centres


def test_grid_size_and_order():
  assert len(DATA) == 737280 == np.prod(FACTOR_SIZES)
  assert DATA.factor_sizes == (1, 3, 6, 40, 32, 32) and DATA.num_factors == 6
  assert DATA.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
  assert DATA.latent_factor_indices == [1, 2, 3, 4, 5]
  # The last factor varies fastest, as in the original archive.
  np.testing.assert_array_equal(DATA.classes_of([0, 1, 32, 32 * 32, 737279]),
                                [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0],
                                 [0, 0, 0, 1, 0, 0], [0, 2, 5, 39, 31, 31]])
  index = np.random.RandomState(0).randint(0, len(DATA), 1000)
  np.testing.assert_array_equal(DATA.index_of(DATA.classes_of(index)), index)
  values = DATA.factor_values(DATA.classes_of([737279]))[0]
  np.testing.assert_allclose(values, [1, 3, 1.0, 39 * 2 * np.pi / 40, 1.0, 1.0])
  np.testing.assert_allclose(DATA.factor_values_of("scale"), np.linspace(0.5, 1, 6))
  with pytest.raises(ValueError, match="Expected 0 <= classes"):
    DATA.render([[0, 3, 0, 0, 0, 0]])


def test_sampling_and_determinism():
  a = DATA.sample_factors(50, np.random.RandomState(3))
  b = DATA.sample_factors(50, np.random.RandomState(3))
  np.testing.assert_array_equal(a, b)
  assert a.shape == (50, 6) and (a[:, 0] == 0).all()
  assert ((a >= 0) & (a < np.array(FACTOR_SIZES))).all()
  images = DATA.sample_observations_from_factors(a, np.random.RandomState(0))
  assert images.shape == (50, 64, 64, 1) and images.dtype == np.float32
  assert set(np.unique(images)) <= {0.0, 1.0}
  np.testing.assert_array_equal(images, DATA.sample_observations_from_factors(a, None))
  np.testing.assert_array_equal(images, DATA.sample_observations_from_factors(a[:, 1:], None))
  np.testing.assert_array_equal(DATA.render(a[:7]), DATA.images(DATA.index_of(a[:7])))


def test_shapes_stay_inside_the_frame():
  grid = np.array([[0, s, 5, o, x, y] for s in range(3) for o in range(40)
                   for x in (0, 31) for y in (0, 31)])
  images = DATA.render(grid)[..., 0]  # [480, 64, 64]
  assert (images.sum(axis=(1, 2)) > 40).all()
  border = np.ones((64, 64), bool)
  border[1:-1, 1:-1] = False
  assert not images[:, border].any()


def test_area_grows_with_scale_squared():
  rs = np.random.RandomState(1)
  for shape in range(3):
    combos = rs.randint(0, [40, 32, 32], size=(100, 3))
    areas = []
    for scale in range(6):
      classes = np.column_stack([np.zeros(100, int), np.full(100, shape), np.full(100, scale), combos])
      areas.append(DATA.render(classes).sum(axis=(1, 2, 3)).mean())
    ratio = np.array(areas) / areas[-1]
    np.testing.assert_allclose(ratio, np.linspace(0.5, 1, 6) ** 2, rtol=0.06)
  # Absolute areas against the documented geometry (side 10.24 px; ellipse axes 0.7, 0.35 side).
  side = 0.16 * 64
  assert _render(SQUARE, 5, 0, 16, 16).sum() == pytest.approx(side ** 2, rel=0.08)
  assert _render(ELLIPSE, 5, 0, 16, 16).sum() == pytest.approx(np.pi * 0.7 * 0.35 * side ** 2, rel=0.08)


def test_centroid_tracks_position():
  for shape in range(3):
    for orientation in (0, 7, 23):
      xs = np.array([_centroid(_render(shape, 5, orientation, p, 16))[0] for p in range(32)])
      ys = np.array([_centroid(_render(shape, 5, orientation, 16, p))[1] for p in range(32)])
      for track in (xs, ys):
        slope, intercept = np.polyfit(np.linspace(0, 1, 32), track, 1)
        residual = track - (slope * np.linspace(0, 1, 32) + intercept)
        assert np.abs(residual).max() < 0.6  # pixelation only
        assert intercept + slope / 2 == pytest.approx(32, abs=0.3)  # centred range
        assert 44 < slope < 52  # about 64 - 2 * (half-diagonal + 1 px)


def test_rotation():
  for x, y in ((0, 0), (13, 21), (31, 5)):
    square = _render(SQUARE, 5, 0, x, y)
    np.testing.assert_array_equal(square, _render(SQUARE, 5, 10, x, y))  # 90 degrees
    np.testing.assert_array_equal(_render(ELLIPSE, 4, 3, x, y), _render(ELLIPSE, 4, 23, x, y))  # 180
  assert not np.array_equal(square, _render(SQUARE, 5, 5, 31, 5))  # 45 degrees differs
  ellipse = _render(ELLIPSE, 5, 0, 16, 16)
  rows, cols = np.nonzero(ellipse)
  assert np.ptp(cols) > 1.6 * np.ptp(rows)  # long axis horizontal at orientation 0
  rows, cols = np.nonzero(_render(ELLIPSE, 5, 10, 16, 16))
  assert np.ptp(rows) > 1.6 * np.ptp(cols)  # vertical after 90 degrees
  # Rotation is about the centre: the centroid does not move.
  for shape in range(3):
    centres = np.array([_centroid(_render(shape, 5, o, 16, 16)) for o in range(40)])
    assert np.abs(centres - centres.mean(axis=0)).max() < 0.5


def test_heart_has_two_lobes_and_a_point():
  heart = _render(HEART, 5, 0, 16, 16)
  rows = np.flatnonzero(heart.any(axis=1))
  widths = heart[rows].sum(axis=1)
  top, bottom = widths[: len(rows) // 2], widths[len(rows) // 2:]
  assert widths[-1] <= 3 and top.max() > bottom.max()  # a point at the bottom, wide top
  flipped = _render(HEART, 5, 20, 16, 16)  # 180 degrees: the point is on top
  rows = np.flatnonzero(flipped.any(axis=1))
  assert flipped[rows[0]].sum() <= 3
  # At a larger size the notch between the lobes shows: two runs in the top rows.
  from kerasvae.data import dsprites as lib
  t = np.linspace(-1.5, 1.5, 301)
  x, y = np.meshgrid(t, -t)
  mask = lib._heart_inside(x, y)
  top_row = mask[np.flatnonzero(mask.any(axis=1))[2]]
  assert np.count_nonzero(np.diff(top_row.astype(int)) == 1) == 2


def test_render_is_fast():
  classes = DATA.sample_factors(20000, np.random.RandomState(0))
  start = time.perf_counter()
  DATA.render(classes)
  assert time.perf_counter() - start < 5.0  # about 0.6 s here; 100k in ~3 s


def test_dsprites_source_subset_round_trip(tmp_path):
  cfg = from_dict(IngestConfig, {"data": {"source": "dsprites", "dsprites": {
      "num_examples": 300, "seed": 4, "shapes": ["heart", "square"], "pos_x": [0, 1, 2, 3],
      "scales": [5]}}, "split": {"eval_fraction": 0.2}})
  out = ingest(cfg, tmp_path / "ds")
  metadata = read_metadata(out)
  assert sum(s["num_examples"] for s in metadata["splits"].values()) == 300
  assert metadata["factor_names"] == list(DATA.factor_names)
  assert metadata["label_names"] == ["square", "ellipse", "heart"]
  for split in ("train", "eval"):
    data = load_split(out, split)
    classes = data["factor_classes"]
    assert set(classes[:, 1]) <= {SQUARE, HEART} and set(classes[:, 4]) <= {0, 1, 2, 3}
    assert (classes[:, 2] == 5).all()
    np.testing.assert_array_equal(data["image"], DATA.render(classes).astype(np.float32))
    np.testing.assert_allclose(data["factors"], DATA.factor_values(classes), rtol=1e-6)
    np.testing.assert_array_equal(data["label"], classes[:, 1])
    index = DATA.index_of(classes)
    assert not (np.diff(index) > 0).all()  # stored in a random order, not the grid's
  with pytest.raises(ConfigError, match="num_examples: expected at most 10240"):
    cfg.data.dsprites.num_examples = 20000
    ingest(cfg, tmp_path / "too_many")
  assert not (tmp_path / "too_many").exists()


def test_metrics_sample_the_restricted_grid_the_model_trained_on(tmp_path):
  from kerasvae.steps.evaluate import ground_truth_data  # pylint: disable=import-outside-toplevel
  cfg = from_dict(IngestConfig, {"data": {"source": "dsprites", "dsprites": {
      "num_examples": 50, "shapes": ["heart", "square"], "scales": [5], "orientations": [0, 10],
      "pos_x": [3, 7, 30]}}})
  truth = ground_truth_data(read_metadata(ingest(cfg, tmp_path / "ds")))
  assert tuple(truth.factor_sizes) == (1, 2, 1, 2, 3, 32)
  assert list(truth.latent_factor_indices) == [1, 3, 4, 5]  # one-class factors are not scored
  local = truth.sample_factors(200, np.random.RandomState(0))  # [200, 6] indices into the lists
  assert set(local[:, 1]) == {0, 1} and set(local[:, 4]) == {0, 1, 2}
  full = np.stack([np.zeros(200, int), np.array([SQUARE, HEART])[local[:, 1]],
                   np.full(200, 5), np.array([0, 10])[local[:, 3]],
                   np.array([3, 7, 30])[local[:, 4]], local[:, 5]], axis=1)
  np.testing.assert_array_equal(truth.sample_observations_from_factors(local, None),
                                DATA.render(full).astype(np.float32))
  unrestricted = from_dict(IngestConfig, {"data": {"source": "dsprites",
                                                   "dsprites": {"num_examples": 20}}})
  assert isinstance(ground_truth_data(read_metadata(ingest(unrestricted, tmp_path / "all"))),
                    DSprites)


def test_a_shuffle_buffer_sees_every_shape_from_the_first_batch(tmp_path, monkeypatch):
  # A split past the in-memory budget is shuffled through a buffer; stored in the grid's order,
  # a buffer of a tenth of the split would hold squares only for the first third of an epoch.
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(reader, "IN_MEMORY_BYTES", 0)
  cfg = from_dict(IngestConfig, {"data": {"source": "dsprites", "dsprites": {
      "num_examples": None, "scales": [5], "orientations": [0], "pos_x": list(range(0, 32, 4)),
      "pos_y": list(range(0, 32, 4))}}, "split": {"eval_fraction": 0.0001}})
  out = ingest(cfg, tmp_path / "ds")  # 3 shapes x 8 x 8 = 192 images
  ds = reader.make_dataset(out, "train", 16, shuffle=True, seed=0, shuffle_buffer=19,
                           deterministic=True)
  first = next(iter(ds))
  assert set(first["label"].numpy()) == {SQUARE, ELLIPSE, HEART}
