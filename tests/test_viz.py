"""Tests for kerasvae.viz: layouts checked pixel by pixel, latents checked against hand-built ones."""

import os
import statistics

import numpy as np
import pytest
from PIL import Image

from kerasvae import viz
from kerasvae.viz import plots


def constant_tiles(n, h=4, w=5, c=1):
  """Tile i is filled with the value (i + 1) / (n + 1), so its grid position can be read back."""
  values = (np.arange(n) + 1) / (n + 1)
  return np.broadcast_to(values[:, None, None, None], (n, h, w, c)).copy(), values


class RecordingDecoder:
  """decode_fn that records every z it is called with and returns z[:, 0] as a flat grey image."""

  def __init__(self, h=3, w=3):
    self.calls = []
    self.h, self.w = h, w

  def __call__(self, z):
    self.calls.append(np.array(z))
    value = (np.asarray(z)[:, 0] + 10) / 20  # [N], in [0, 1] for |z0| <= 10
    return np.broadcast_to(value[:, None, None, None], (len(z), self.h, self.w, 1)).copy()


def ramp_decoder(z):
  """Image = horizontal ramp whose brightness encodes z: left half (z0+3)/6, right half (z1+3)/6."""
  z = np.asarray(z)
  images = np.zeros((len(z), 4, 4, 1))
  images[:, :, :2, 0] = ((z[:, 0] + 3) / 6)[:, None, None]
  images[:, :, 2:, 0] = ((z[:, 1] + 3) / 6)[:, None, None]
  return images


# ----------------------------------------------------------------------------- image_grid


def test_grid_places_image_i_at_row_major_tile():
  images, values = constant_tiles(7, h=4, w=5)
  grid = viz.image_grid(images, ncols=3, padding=2, pad_value=1.0)
  # 3 rows x 3 columns: H' = 3 * (4 + 2) + 2, W' = 3 * (5 + 2) + 2.
  assert grid.shape == (20, 23, 1)
  assert grid.dtype == np.uint8
  for i, v in enumerate(values):
    r, c = divmod(i, 3)
    top, left = 2 + r * 6, 2 + c * 7
    tile = grid[top:top + 4, left:left + 5, 0]
    np.testing.assert_array_equal(tile, np.round(v * 255))
  # The two unused tiles of the last row and all padding are pad_value.
  assert np.all(grid[14:18, 16:21] == 255)
  assert np.all(grid[:2] == 255) and np.all(grid[:, :2] == 255)
  assert np.all(grid[6:8] == 255)


def test_grid_default_ncols_is_ceil_sqrt_and_padding_arithmetic():
  images, _ = constant_tiles(10, h=28, w=28)
  grid = viz.image_grid(images)  # ncols = 4, nrows = 3
  assert grid.shape == (3 * 30 + 2, 4 * 30 + 2, 1)
  grid = viz.image_grid(images, ncols=10, padding=0)
  assert grid.shape == (28, 280, 1)
  grid = viz.image_grid(images, ncols=50, padding=1)  # ncols capped at N
  assert grid.shape == (30, 10 * 29 + 1, 1)


def test_grid_pad_value_and_rgb_channels():
  images = np.zeros((2, 3, 3, 3))
  images[0, ..., 0] = 1.0  # red
  images[1, ..., 2] = 1.0  # blue
  grid = viz.image_grid(images, ncols=2, padding=1, pad_value=0.5)
  assert grid.shape == (5, 9, 3)
  np.testing.assert_array_equal(grid[2, 2], [255, 0, 0])
  np.testing.assert_array_equal(grid[2, 6], [0, 0, 255])
  np.testing.assert_array_equal(grid[0, 0], [128, 128, 128])


def test_grid_clips_out_of_range_values_and_keeps_uint8():
  images = np.array([-0.5, 0.25, 1.7]).reshape(3, 1, 1, 1)
  grid = viz.image_grid(images, ncols=3, padding=0)
  np.testing.assert_array_equal(grid[0, :, 0], [0, 64, 255])
  raw = np.array([[7]], dtype=np.uint8).reshape(1, 1, 1, 1)
  assert viz.image_grid(raw, padding=0)[0, 0, 0] == 7  # uint8 input used as is


@pytest.mark.parametrize("shape", [(4, 5, 5), (4, 5, 5, 2), (4, 5, 5, 4), (5, 5, 1), (2, 0, 5, 1)])
def test_grid_rejects_bad_shapes_naming_the_argument(shape):
  with pytest.raises(ValueError, match=r"Expected images of shape \[N, H, W, C\].*"
                                       r"Received: images.shape="):
    viz.image_grid(np.zeros(shape))


def test_grid_rejects_bad_arguments_and_nan():
  images = np.zeros((2, 3, 3, 1))
  with pytest.raises(ValueError, match="Received: ncols=0"):
    viz.image_grid(images, ncols=0)
  with pytest.raises(ValueError, match="Received: padding=-1"):
    viz.image_grid(images, padding=-1)
  with pytest.raises(ValueError, match="Received: pad_value=2"):
    viz.image_grid(images, pad_value=2)
  with pytest.raises(ValueError, match="Received: images.shape=\\(0, 3, 3, 1\\)"):
    viz.image_grid(np.zeros((0, 3, 3, 1)))
  images[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="1 NaN"):
    viz.image_grid(images)


# ----------------------------------------------------------------------------- upscale


def test_upscale_is_nearest_neighbour_blocks():
  a = np.array([[1, 2], [3, 4]], dtype=np.uint8)
  np.testing.assert_array_equal(viz.upscale(a, 2),
                                [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
  batch = np.arange(2 * 2 * 3 * 1).reshape(2, 2, 3, 1)
  up = viz.upscale(batch, 3)
  assert up.shape == (2, 6, 9, 1)
  np.testing.assert_array_equal(up[:, ::3, ::3], batch)
  with pytest.raises(ValueError, match="Received: factor=0"):
    viz.upscale(a, 0)


def test_auto_scale_makes_a_10x10_digit_grid_about_600px_wide():
  assert viz.auto_scale(302) == 2  # 10 x 28 px digits with 2 px padding
  assert viz.auto_scale(700) == 1
  assert viz.auto_scale(10) == viz.MAX_AUTO_SCALE
  assert viz.upscale(np.zeros((28, 302)), None).shape == (56, 604)


# ----------------------------------------------------------------------------- save_png


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3)])
def test_save_png_round_trip(tmp_path, shape):
  rng = np.random.default_rng(0)
  array = rng.integers(0, 256, shape, dtype=np.uint8)
  path = viz.save_png(array, tmp_path / "sub" / "dir" / "x.png")  # creates parents
  with Image.open(path) as image:
    assert image.mode == ("RGB" if shape[-1:] == (3,) else "L")
    back = np.asarray(image)
  np.testing.assert_array_equal(back, array.reshape(back.shape))
  assert os.listdir(path.parent) == ["x.png"]  # no temporary file left


def test_save_png_overwrites_atomically_and_failed_write_leaves_nothing(tmp_path, monkeypatch):
  path = tmp_path / "x.png"
  viz.save_png(np.zeros((2, 2), np.uint8), path)
  viz.save_png(np.full((3, 3), 9, np.uint8), path)
  assert np.asarray(Image.open(path)).shape == (3, 3)

  def broken_save(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG half")
    raise OSError("disk full")
  monkeypatch.setattr(Image.Image, "save", broken_save)
  with pytest.raises(OSError, match="disk full"):
    viz.save_png(np.zeros((2, 2), np.uint8), tmp_path / "new.png")
  with pytest.raises(OSError, match="disk full"):
    viz.save_png(np.zeros((2, 2), np.uint8), path)
  # No new file, no temporary, and the old file is intact.
  assert sorted(os.listdir(tmp_path)) == ["x.png"]
  monkeypatch.undo()
  np.testing.assert_array_equal(np.asarray(Image.open(path)), np.full((3, 3), 9))


def test_save_png_rejects_floats_and_bad_shapes(tmp_path):
  with pytest.raises(TypeError, match="Received: array.dtype=float64"):
    viz.save_png(np.zeros((2, 2)), tmp_path / "x.png")
  with pytest.raises(ValueError, match=r"Received: array.shape=\(2, 2, 2\)"):
    viz.save_png(np.zeros((2, 2, 2), np.uint8), tmp_path / "x.png")
  assert not os.listdir(tmp_path)


def test_to_tensorboard_image_shapes_and_dtype():
  out = viz.to_tensorboard_image(np.full((4, 5), 0.5))
  assert out.shape == (1, 4, 5, 1) and out.dtype == np.uint8 and out[0, 0, 0, 0] == 128
  rgb = np.zeros((4, 5, 3), np.uint8)
  assert viz.to_tensorboard_image(rgb).shape == (1, 4, 5, 3)
  assert viz.to_tensorboard_image(rgb[None]).shape == (1, 4, 5, 3)
  with pytest.raises(ValueError, match=r"Received: array.shape=\(2, 4, 5, 3\)"):
    viz.to_tensorboard_image(np.zeros((2, 4, 5, 3)))


# ----------------------------------------------------------------------------- composition


def test_labelled_rows_keeps_rows_intact_and_adds_label_margin():
  rows = [np.full((10, 30, 1), 60, np.uint8), np.full((10, 30, 1), 100, np.uint8)]
  out = viz.labelled_rows(rows, ["original", "reconstruction"], title="Title")
  assert out.dtype == np.uint8 and out.shape[2] == 1
  boxes = []
  for value in (60, 100):  # grey levels the black text antialiasing barely produces
    ys, xs = np.nonzero(out[:, :, 0] == value)
    top, left = ys.min(), xs.max() - 29
    np.testing.assert_array_equal(out[top:top + 10, left:left + 30, 0], value)
    boxes.append((top, left))
  assert boxes[0][0] + 10 <= boxes[1][0]  # first row above the second
  assert boxes[0][1] == boxes[1][1] > 80  # left-aligned, after a label column
  assert out[:, :boxes[0][1] - 5, 0].min() == 0  # labels drawn in black
  with pytest.raises(ValueError, match="len\\(row_labels\\)=1"):
    viz.labelled_rows(rows, ["only one"])


def test_side_by_side_mixes_grey_and_rgb_panels():
  grey = np.full((20, 10, 1), 50, np.uint8)
  rgb = np.zeros((30, 12, 3), np.uint8)
  rgb[..., 1] = 200
  out = viz.side_by_side([("a", grey), ("b", rgb)], gap=20)
  assert out.shape[2] == 3
  assert out.shape[0] >= 30 and out.shape[1] >= 10 + 12 + 20
  assert np.any(np.all(out == [50, 50, 50], axis=-1))
  assert np.sum(np.all(out == [0, 200, 0], axis=-1)) == 30 * 12
  with pytest.raises(ValueError, match="panels=\\[\\]"):
    viz.side_by_side([])


# ----------------------------------------------------------------------------- traversals


def test_traversal_latents_sweep_one_axis_and_hold_the_rest_at_base():
  base = np.array([0.5, -1.0, 2.0, 0.0])
  z, values = viz.traversal_latents(4, base=base, num_steps=5, span=2.0, dims=[2, 0])
  np.testing.assert_allclose(values, [-2, -1, 0, 1, 2])
  assert z.shape == (2, 5, 4)
  for r, d in enumerate([2, 0]):
    np.testing.assert_allclose(z[r, :, d], [-2, -1, 0, 1, 2])
    others = [k for k in range(4) if k != d]
    np.testing.assert_allclose(z[r][:, others], np.tile(base[others], (5, 1)))


def test_traversal_images_decodes_recorded_z_in_one_call():
  decoder = RecordingDecoder()
  images = viz.traversal_images(decoder, 3, num_steps=7, span=3.0)
  assert images.shape == (3, 7, 3, 3, 1)
  assert len(decoder.calls) == 1
  z = decoder.calls[0].reshape(3, 7, 3)
  for d in range(3):
    np.testing.assert_allclose(z[d, :, d], np.linspace(-3, 3, 7), atol=1e-6)
    np.testing.assert_array_equal(np.delete(z[d], d, axis=1), 0.0)  # base defaults to zeros
  # Row 0 sweeps z0, which the decoder writes as brightness (z0 + 10) / 20.
  np.testing.assert_allclose(images[0, :, 0, 0, 0], (np.linspace(-3, 3, 7) + 10) / 20, atol=1e-6)
  np.testing.assert_allclose(images[1, :, 0, 0, 0], 0.5)


def test_traversal_rejects_bad_arguments():
  decoder = RecordingDecoder()
  with pytest.raises(ValueError, match=r"Received: dims=\[3\]"):
    viz.traversal_images(decoder, 3, dims=[3])
  with pytest.raises(ValueError, match=r"Received: base.shape=\(2,\)"):
    viz.traversal_images(decoder, 3, base=[0.0, 1.0])
  with pytest.raises(ValueError, match="Received: span=0"):
    viz.traversal_images(decoder, 3, span=0)
  with pytest.raises(ValueError, match=r"Received: decode_fn\(z\).shape=\(27, 5\)"):
    viz.traversal_images(lambda z: np.zeros((len(z), 5)), 3)


def test_traversal_figure_writes_labelled_png(tmp_path):
  path = tmp_path / "traversal.png"
  image = viz.traversal_figure(RecordingDecoder(28, 28), 2, path, num_steps=9,
                               annotations=["KL 2.31", "KL 0.01"])
  with Image.open(path) as png:
    np.testing.assert_array_equal(np.asarray(png), image[:, :, 0])
  # 9 tiles of 28 px (272 px with padding) are upscaled by 3 for readability.
  assert image.shape[1] >= 9 * 28 * 3
  with pytest.raises(ValueError, match="len\\(annotations\\)=1"):
    viz.traversal_figure(RecordingDecoder(), 2, path, annotations=["KL 1"])
  # An unused latent's row is faded towards grey, the other row unchanged.
  faded = viz.traversal_figure(RecordingDecoder(28, 28), 2, tmp_path / "faded.png", num_steps=9,
                               annotations=["KL 2.31", "inactive"], faded=[1])
  assert faded.dtype == np.uint8 and faded.shape[0] == image.shape[0]  # a longer label
  assert faded[:, -200:].mean() != image[:, -200:].mean()


# ----------------------------------------------------------------------------- manifold


def test_manifold_latents_orientation_and_quantiles():
  z, values = viz.manifold_latents(n=5, use_quantiles=True)
  normal = statistics.NormalDist()
  expected = [normal.inv_cdf(p) for p in np.linspace(0.05, 0.95, 5)]
  np.testing.assert_allclose(values, expected)
  np.testing.assert_allclose(values[0], -1.6448536, atol=1e-6)  # Phi^-1(0.05)
  np.testing.assert_allclose(z[0, 0], [values[0], values[-1]])  # top-left: min z0, max z1
  np.testing.assert_allclose(z[-1, -1], [values[-1], values[0]])  # bottom-right
  _, lin = viz.manifold_latents(n=4, span=1.5, use_quantiles=False)
  np.testing.assert_allclose(lin, [-1.5, -0.5, 0.5, 1.5])


def test_manifold_images_corners_follow_plot_convention():
  grid = viz.manifold_images(ramp_decoder, n=3, span=3.0, use_quantiles=False, padding=0)
  assert grid.shape == (12, 12, 1)
  tile = lambda r, c: grid[4 * r:4 * r + 4, 4 * c:4 * c + 4, 0]
  # Left half of a tile is (z0 + 3) / 6, right half (z1 + 3) / 6. Values are -3, 0, 3.
  np.testing.assert_array_equal(tile(0, 0)[:, :2], 0)      # top-left: z0 = -3
  np.testing.assert_array_equal(tile(0, 0)[:, 2:], 255)    #           z1 = +3
  np.testing.assert_array_equal(tile(0, 2)[:, :2], 255)    # top-right: z0 = +3
  np.testing.assert_array_equal(tile(2, 0)[:, 2:], 0)      # bottom-left: z1 = -3
  np.testing.assert_array_equal(tile(1, 1), 128)           # centre: z = (0, 0)


def test_manifold_images_higher_dim_sweeps_requested_axes():
  decoder = RecordingDecoder()
  viz.manifold_images(decoder, n=3, latent_dim=4, dims=(1, 3), base=[9, 0, 9, 0],
                      use_quantiles=False, span=1.0)
  z = decoder.calls[0]  # [9, 4]
  np.testing.assert_allclose(z[:, [0, 2]], 9.0)
  np.testing.assert_allclose(z[0], [9, -1, 9, 1])
  with pytest.raises(ValueError, match=r"Received: dims=\[0, 0\]"):
    viz.manifold_images(decoder, n=3, dims=(0, 0))


def test_manifold_figure_writes_png(tmp_path):
  image = viz.manifold_figure(ramp_decoder, tmp_path / "m.png", n=4, title="manifold")
  assert (tmp_path / "m.png").is_file()
  assert image.shape[0] > 4 * 4 * viz.auto_scale(16) and image.dtype == np.uint8


# ----------------------------------------------------------------------------- interpolation


def test_interpolation_endpoints_equal_decoded_endpoints():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=3), rng.normal(size=3)
  for method in ("linear", "slerp"):
    images = viz.interpolation_images(ramp_decoder, a, b, num_steps=6, method=method)
    assert images.shape == (6, 4, 4, 1)
    np.testing.assert_allclose(images[0], ramp_decoder(a[None].astype(np.float32))[0], atol=1e-6)
    np.testing.assert_allclose(images[-1], ramp_decoder(b[None].astype(np.float32))[0], atol=1e-6)


def test_interpolation_latents_linear_and_slerp_against_formulas():
  a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
  lin = viz.interpolation_latents(a, b, num_steps=3)
  np.testing.assert_allclose(lin, [[1, 0], [0.5, 1], [0, 2]])
  slerp = viz.interpolation_latents(a, b, num_steps=3, method="slerp")
  # Angle pi/2: midpoint = sin(pi/4) / sin(pi/2) * (a + b).
  np.testing.assert_allclose(slerp[1], np.sin(np.pi / 4) * (a + b))
  parallel = viz.interpolation_latents(a, 3 * a, num_steps=3, method="slerp")
  np.testing.assert_allclose(parallel[1], 2 * a)  # falls back to linear
  batch = viz.interpolation_latents(np.stack([a, a]), np.stack([b, -a]), num_steps=4)
  assert batch.shape == (2, 4, 2)
  with pytest.raises(ValueError, match="Received: method='cubic'"):
    viz.interpolation_latents(a, b, method="cubic")
  with pytest.raises(ValueError, match=r"z_end.shape=\(3,\)"):
    viz.interpolation_latents(a, np.zeros(3))


def test_interpolation_figure_one_row_per_pair(tmp_path):
  decoder = RecordingDecoder(8, 8)
  starts, ends = np.zeros((3, 2)), np.ones((3, 2))
  viz.interpolation_figure(decoder, starts, ends, tmp_path / "i.png", num_steps=5)
  assert decoder.calls[0].shape == (15, 2)
  assert (tmp_path / "i.png").is_file()


# ----------------------------------------------------------------------------- scatter and figures


def test_latent_scatter_uses_pca_when_d_above_2(tmp_path, monkeypatch):
  rng = np.random.default_rng(0)
  z = rng.normal(size=(300, 5)) * [5.0, 1.0, 0.1, 0.1, 0.1]
  calls = []
  original = plots._pca_2d
  monkeypatch.setattr(plots, "_pca_2d", lambda x: calls.append(x.shape) or original(x))
  image = viz.latent_scatter_figure(z, rng.integers(0, 10, 300), tmp_path / "s.png", title="t")
  assert calls == [(300, 5)]
  assert image.ndim == 3 and image.shape[2] == 3 and image.shape[1] >= 600
  with Image.open(tmp_path / "s.png") as png:
    assert png.size == (image.shape[1], image.shape[0])
  viz.latent_scatter_figure(z[:, :2], None, tmp_path / "s2.png")
  viz.latent_scatter_figure(z[:, :2], rng.random(300), tmp_path / "s3.png")
  assert calls == [(300, 5)]  # D = 2 is plotted as is
  with pytest.raises(ValueError, match=r"Received: z.shape=\(300, 1\)"):
    viz.latent_scatter_figure(z[:, :1], None, tmp_path / "bad.png")
  with pytest.raises(ValueError, match=r"Received: labels.shape=\(3,\)"):
    viz.latent_scatter_figure(z, [1, 2, 3], tmp_path / "bad.png")


def test_pca_matches_covariance_eigenvectors():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
  projected, ratio = plots._pca_2d(z)
  eigval, eigvec = np.linalg.eigh(np.cov(z, rowvar=False))
  order = np.argsort(eigval)[::-1]
  expected = (z - z.mean(0)) @ eigvec[:, order[:2]]
  np.testing.assert_allclose(np.abs(projected), np.abs(expected), atol=1e-8)  # sign is arbitrary
  np.testing.assert_allclose(ratio, eigval[order[:2]] / eigval.sum())


def test_reconstruction_and_sample_figures(tmp_path):
  rng = np.random.default_rng(0)
  originals = rng.random((12, 28, 28, 1))
  image = viz.reconstruction_figure(originals, originals * 0.5, tmp_path / "r.png", n=10)
  assert image.shape[1] >= 10 * 28 * 2  # upscaled x2: about 600 px wide
  with pytest.raises(ValueError, match=r"Received: reconstructions.shape=\(12, 28, 28, 3\)"):
    viz.reconstruction_figure(originals, np.zeros((12, 28, 28, 3)), tmp_path / "x.png")
  samples = viz.sample_figure(originals[:10], tmp_path / "s.png", ncols=5, scale=1)
  np.testing.assert_array_equal(samples, viz.image_grid(originals[:10], ncols=5))
  assert sorted(os.listdir(tmp_path)) == ["r.png", "s.png"]


def test_line_plot_figure_draws_lines_and_references(tmp_path):
  panels = [{"x_label": "noise", "y_label": "FD", "log_x": True,
             "lines": [{"x": [0.01, 0.1, 1.0], "y": [20.0, 70.0, 230.0], "label": "box",
                        "color": "#ff0000"}],
             "references": [{"y": 35.0, "label": "VAE", "color": "#00ff00"}]},
            {"x_label": "noise", "y_label": "nats",
             "lines": [{"x": [1, 2], "y": [90.0, 200.0], "label": "rec", "color": "#0000ff"}]}]
  image = viz.line_plot_figure(panels, tmp_path / "p.png", title="t")
  assert image.shape == (460, 1100, 3) and image.dtype == np.uint8
  for colour in ([255, 0, 0], [0, 255, 0], [0, 0, 255]):
    assert np.all(image == colour, axis=-1).sum() > 50, colour
  with Image.open(tmp_path / "p.png") as png:
    assert png.size == (1100, 460)
  with pytest.raises(ValueError, match=r"line 'bad' with x.shape=\(2,\), y.shape=\(3,\)"):
    viz.line_plot_figure([{"lines": [{"x": [1, 2], "y": [1, 2, 3], "label": "bad"}]}],
                         tmp_path / "bad.png")
  with pytest.raises(ValueError, match="Received: panels=\\[\\]"):
    viz.line_plot_figure([], tmp_path / "bad.png")
  assert not (tmp_path / "bad.png").exists()
