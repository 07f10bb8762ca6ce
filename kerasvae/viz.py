"""Pictures of a VAE: sample grids, reconstructions, traversals, manifolds, latent scatters.

Everything here is numpy in, uint8 arrays or PNG files out. No model code:
functions that need a model take a `decode_fn(z)` callable mapping latents
`[N, D]` to images `[N, H, W, C]` (or `[N, H, W]`) with values in [0, 1].

Conventions:
  * Images are float in [0, 1], shaped `[N, H, W, C]` with C = 1 (grey) or 3
    (RGB). Values outside [0, 1] are clipped. Grey stays one channel all the way
    to the PNG.
  * `image_grid`, the `*_images` functions and `save_png` never resample: one
    array pixel is one PNG pixel. The `*_figure` functions upscale the tiles by
    an integer factor with nearest neighbour (`scale=None` picks the smallest
    factor making the tiled area at least `MIN_FIGURE_WIDTH` pixels wide, so a
    10 x 10 grid of 28 x 28 digits is saved about 600 px wide and stays crisp).
    Pass `scale=1` to keep native pixels.
  * Figures are written atomically: a temporary file in the target folder is
    renamed over `path`, so a crash never leaves half a PNG.
  * Text is drawn with Pillow and the DejaVu Sans font that ships with
    matplotlib; the latent scatter is a matplotlib figure drawn on an Agg canvas
    object, so the process-wide matplotlib backend is never changed.

Example:
  >>> grid = image_grid(images, ncols=10)            # uint8 [H', W', C]
  >>> sample_figure(images, "samples.png", title="VAE samples")
  >>> traversal_figure(decode_fn, latent_dim=10, path="traversal.png")
"""

import functools
import math
import os
import statistics
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kerasvae import artifacts

# The smallest width, in pixels, of the tiled area of a saved figure when `scale=None`.
MIN_FIGURE_WIDTH = 600
# Upscaling beyond this only makes files big; tiny images are still readable at 8x.
MAX_AUTO_SCALE = 8

_WHITE = 255
_BLACK = 0
_MARGIN = 10
_LABEL_FONT_SIZE = 16
_TICK_FONT_SIZE = 13
_TITLE_FONT_SIZE = 20


# ----------------------------------------------------------------------------- arrays


def _shape_str(x):
  return tuple(int(s) for s in np.shape(x))


def _to_uint8(images, name="images"):
  """Float [0, 1] (clipped) or uint8 array -> uint8 of the same shape."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  if images.dtype == np.bool_:
    return images.astype(np.uint8) * 255
  if not np.issubdtype(images.dtype, np.number):
    raise TypeError(
        f"Expected a numeric array. Received: {name}.dtype={images.dtype}")
  images = images.astype(np.float64)
  bad = int(np.size(images) - np.count_nonzero(np.isfinite(images)))
  if bad:
    raise ValueError(
        f"Expected finite pixel values in [0, 1]. Received: {name} with {bad} "
        "NaN or infinite values (did the model diverge?)")
  return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_images(images, name="images"):
  """Returns `images` as an array [N, H, W, C] with C in (1, 3), or raises naming `name`."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3) or 0 in images.shape[1:3]:
    raise ValueError(
        "Expected images of shape [N, H, W, C] with C = 1 or 3. "
        f"Received: {name}.shape={_shape_str(images)}")
  return images


def _check_positive_int(value, name, minimum=1):
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
      or value < minimum:
    raise ValueError(f"Expected an integer >= {minimum}. Received: {name}={value!r}")
  return int(value)


def _check_image_2d(array, name="array"):
  """Returns a uint8 image [H, W, C] (C in 1, 3, 4) from [H, W] or [H, W, C]."""
  array = np.asarray(array)
  if array.ndim == 2:
    array = array[:, :, None]
  if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape[:2]:
    raise ValueError(
        "Expected an image of shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]. "
        f"Received: {name}.shape={_shape_str(array)}")
  return array


def image_grid(images, ncols=None, padding=2, pad_value=1.0):
  """Tiles a batch of images row-major into one image.

  Image `i` goes to row `i // ncols`, column `i % ncols`. Tiles are separated,
  and surrounded, by `padding` pixels of `pad_value`; unused tiles of the last
  row are filled with `pad_value` too. The output is
  `[nrows * (H + padding) + padding, ncols * (W + padding) + padding, C]`.

  Args:
    images: `[N, H, W, C]` with C = 1 or 3, float in [0, 1] (clipped), or uint8
      in [0, 255] (used as is).
    ncols: tiles per row; default `ceil(sqrt(N))`. Capped at N.
    padding: pixels between and around tiles, >= 0.
    pad_value: colour of the padding, in [0, 1] (1.0 is white).

  Returns:
    uint8 array `[H', W', C]`; grey images stay one channel.

  Raises:
    ValueError: on a bad shape, an empty batch or bad `ncols`/`padding`/`pad_value`.
  """
  images = _check_images(images)
  n, h, w, c = images.shape
  if n == 0:
    raise ValueError(f"Expected at least one image. Received: images.shape={_shape_str(images)}")
  if ncols is None:
    ncols = math.ceil(math.sqrt(n))
  ncols = min(_check_positive_int(ncols, "ncols"), n)
  padding = _check_positive_int(padding, "padding", minimum=0)
  if not 0.0 <= float(pad_value) <= 1.0:
    raise ValueError(f"Expected pad_value in [0, 1]. Received: pad_value={pad_value!r}")
  tiles = _to_uint8(images)  # [N, H, W, C]
  nrows = math.ceil(n / ncols)
  fill = np.uint8(round(float(pad_value) * 255))
  grid = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding, c),
                 fill, dtype=np.uint8)
  for i in range(n):
    top = padding + (i // ncols) * (h + padding)
    left = padding + (i % ncols) * (w + padding)
    grid[top:top + h, left:left + w] = tiles[i]
  return grid


def auto_scale(width, min_width=MIN_FIGURE_WIDTH):
  """The integer upscale factor a figure of natural `width` pixels gets by default.

  The smallest factor making `width * factor >= min_width`, between 1 and
  `MAX_AUTO_SCALE`. A 10-tile row of 28-pixel digits (302 px with padding) gets 2.
  """
  width = _check_positive_int(width, "width")
  return int(min(MAX_AUTO_SCALE, max(1, math.ceil(min_width / width))))


def upscale(array, factor=None):
  """Nearest-neighbour upscaling by an integer factor (each pixel becomes a block).

  Args:
    array: `[H, W]`, `[H, W, C]` or a batch `[N, H, W, C]`, any dtype.
    factor: integer >= 1; default `auto_scale(W)`, i.e. at least
      `MIN_FIGURE_WIDTH` pixels wide.

  Returns:
    The array with H and W multiplied by `factor`, same dtype.
  """
  array = np.asarray(array)
  if array.ndim not in (2, 3, 4):
    raise ValueError(
        "Expected an image [H, W], [H, W, C] or a batch [N, H, W, C]. "
        f"Received: array.shape={_shape_str(array)}")
  h_axis = 1 if array.ndim == 4 else 0
  if factor is None:
    factor = auto_scale(array.shape[h_axis + 1])
  factor = _check_positive_int(factor, "factor")
  if factor == 1:
    return array
  return np.repeat(np.repeat(array, factor, axis=h_axis), factor, axis=h_axis + 1)


def _figure_grid(images, ncols, padding, scale, pad_value=1.0):
  """image_grid after upscaling the tiles by `scale` (auto when None); returns (grid, scale)."""
  images = _check_images(images)
  n, _, w, _ = images.shape
  cols = min(ncols or math.ceil(math.sqrt(max(n, 1))), max(n, 1))
  if scale is None:
    scale = auto_scale(cols * (w + padding) + padding)
  return image_grid(upscale(images, scale), ncols=ncols, padding=padding,
                    pad_value=pad_value), scale


def to_tensorboard_image(array):
  """Converts an image to the `[1, H, W, C]` uint8 batch `tf.summary.image` wants.

  Args:
    array: `[H, W]`, `[H, W, C]` or `[1, H, W, C]` with C in (1, 3, 4); uint8 or
      float in [0, 1] (clipped).

  Returns:
    uint8 array `[1, H, W, C]`.
  """
  array = np.asarray(array)
  if array.ndim == 4:
    if array.shape[0] != 1:
      raise ValueError(
          "Expected one image [H, W, C] or a batch of one [1, H, W, C]. "
          f"Received: array.shape={_shape_str(array)}")
    array = array[0]
  return _to_uint8(_check_image_2d(array), name="array")[None]


# ----------------------------------------------------------------------------- files


def save_png(array, path):
  """Writes a uint8 image to a PNG file atomically; creates parent folders.

  The bytes go to a temporary file in the same folder that is renamed over
  `path` only once complete, so readers see the old file or the new one,
  never half of one; on any error the temporary file is removed, and one
  left by a killed writer is removed by the next write into that folder.

  Args:
    array: uint8 `[H, W]`, `[H, W, 1]`, `[H, W, 3]` (or `[H, W, 4]` RGBA).
    path: the PNG file to write.

  Returns:
    The `Path` written.
  """
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise TypeError(
        "Expected a uint8 image (use image_grid or _to_uint8 for floats). "
        f"Received: array.dtype={array.dtype}")
  array = _check_image_2d(array)
  mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[-1]]
  image = Image.fromarray(array[:, :, 0] if mode == "L" else array, mode=mode)
  path = Path(path)
  with artifacts.atomic_file(path) as f:
    image.save(f, format="PNG")
  return path


# ----------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=None)
def _font(size, bold=False):
  """DejaVu Sans from matplotlib's data folder, else Pillow's built-in font at `size`."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)
  except (ImportError, OSError):
    return ImageFont.load_default(size=size)


_MEASURE = ImageDraw.Draw(Image.new("L", (1, 1)))


def _text_size(text, font):
  left, top, right, bottom = _MEASURE.multiline_textbbox((0, 0), text, font=font)
  return right - left, bottom - top


def _draw_text(draw, xy, text, font, align="left"):
  """Draws `text` with the top-left of its ink box at `xy`."""
  left, top, _, _ = draw.multiline_textbbox((0, 0), text, font=font)
  draw.multiline_text((xy[0] - left, xy[1] - top), text, font=font, fill=_BLACK, align=align)


def _pil(array):
  array = _check_image_2d(array)
  if array.shape[-1] == 1:
    return Image.fromarray(array[:, :, 0], mode="L")
  return Image.fromarray(array[:, :, :3], mode="RGB")


def _canvas(size, arrays):
  """A white canvas, grey if every array is grey, else RGB."""
  grey = all(_check_image_2d(a).shape[-1] == 1 for a in arrays)
  return Image.new("L" if grey else "RGB", size, _WHITE if grey else (_WHITE,) * 3)


def _to_array(image):
  array = np.asarray(image, dtype=np.uint8)
  return array[:, :, None] if array.ndim == 2 else array


def _paste(canvas, array, xy):
  canvas.paste(_pil(array).convert(canvas.mode), (int(xy[0]), int(xy[1])))


def _title_block(title):
  """Height of a title line including its margin below, or 0 for no title."""
  if not title:
    return 0
  return _text_size(title, _font(_TITLE_FONT_SIZE, bold=True))[1] + _MARGIN


def labelled_rows(grid_rows, row_labels, title=None, column_labels=None, row_gap=6):
  """Stacks image rows vertically with a text label left of each row.

  Args:
    grid_rows: list of uint8 images `[H_i, W_i, C]` (e.g. one-row grids from
      `image_grid`), stacked top to bottom, left-aligned.
    row_labels: one string per row (may contain newlines, e.g. "z3\\nKL 2.31"),
      right-aligned against its row and centred vertically.
    title: optional title above everything.
    column_labels: optional strings centred over equal-width columns of the
      widest row (e.g. the latent values of a traversal).
    row_gap: pixels between rows.

  Returns:
    uint8 `[H, W, C]`: grey (C = 1) if all rows are grey, else RGB.
  """
  grid_rows = [_check_image_2d(np.asarray(r), name=f"grid_rows[{i}]")
               for i, r in enumerate(grid_rows)]
  row_labels = list(row_labels)
  if not grid_rows or len(row_labels) != len(grid_rows):
    raise ValueError(
        "Expected one label per row and at least one row. "
        f"Received: len(grid_rows)={len(grid_rows)}, len(row_labels)={len(row_labels)}")
  label_font = _font(_LABEL_FONT_SIZE)
  tick_font = _font(_TICK_FONT_SIZE)
  label_sizes = [_text_size(str(t), label_font) if str(t) else (0, 0) for t in row_labels]
  label_w = max(s[0] for s in label_sizes)
  left = _MARGIN + (label_w + _MARGIN if label_w else 0)
  rows_w = max(r.shape[1] for r in grid_rows)
  title_h = _title_block(title)
  col_h = 0
  if column_labels:
    col_h = max(_text_size(str(t), tick_font)[1] for t in column_labels) + 4
  top = _MARGIN + title_h + col_h
  heights = [max(r.shape[0], s[1]) for r, s in zip(grid_rows, label_sizes)]
  height = top + sum(heights) + row_gap * (len(heights) - 1) + _MARGIN
  title_w = _text_size(title, _font(_TITLE_FONT_SIZE, bold=True))[0] if title else 0
  width = max(left + rows_w + _MARGIN, title_w + 2 * _MARGIN)
  canvas = _canvas((width, height), grid_rows)
  draw = ImageDraw.Draw(canvas)
  if title:
    _draw_text(draw, ((width - title_w) // 2, _MARGIN), title, _font(_TITLE_FONT_SIZE, bold=True))
  if column_labels:
    step = rows_w / len(column_labels)
    for j, text in enumerate(column_labels):
      tw, _ = _text_size(str(text), tick_font)
      _draw_text(draw, (left + (j + 0.5) * step - tw / 2, _MARGIN + title_h), str(text), tick_font)
  y = top
  for row, text, (tw, th), h in zip(grid_rows, row_labels, label_sizes, heights):
    _paste(canvas, row, (left, y + (h - row.shape[0]) // 2))
    if tw:
      _draw_text(draw, (left - _MARGIN - tw, y + (h - th) / 2), str(text), label_font,
                 align="right")
    y += h + row_gap
  return _to_array(canvas)


def side_by_side(panels, gap=20):
  """Puts titled images next to each other, e.g. sample grids of several models.

  Args:
    panels: list of `(title, image)` with `image` a uint8 `[H, W, C]` (or
      `[H, W]`); heights may differ (panels are top-aligned).
    gap: pixels between panels.

  Returns:
    uint8 `[H, W, C]`: grey if every panel is grey, else RGB.
  """
  panels = list(panels)
  if not panels:
    raise ValueError("Expected at least one (title, image) panel. Received: panels=[]")
  images = []
  for i, panel in enumerate(panels):
    if not (isinstance(panel, (tuple, list)) and len(panel) == 2):
      raise ValueError(f"Expected (title, image) pairs. Received: panels[{i}]={type(panel)}")
    images.append(_to_uint8(_check_image_2d(panel[1], name=f"panels[{i}][1]")))
  font = _font(_LABEL_FONT_SIZE, bold=True)
  titles = [str(p[0]) for p in panels]
  title_h = max(_text_size(t, font)[1] for t in titles) + 8 if any(titles) else 0
  widths = [max(a.shape[1], _text_size(t, font)[0]) for t, a in zip(titles, images)]
  width = 2 * _MARGIN + sum(widths) + gap * (len(images) - 1)
  height = 2 * _MARGIN + title_h + max(a.shape[0] for a in images)
  canvas = _canvas((width, height), images)
  draw = ImageDraw.Draw(canvas)
  x = _MARGIN
  for text, array, w in zip(titles, images, widths):
    if text:
      _draw_text(draw, (x + (w - _text_size(text, font)[0]) / 2, _MARGIN), text, font)
    _paste(canvas, array, (x + (w - array.shape[1]) // 2, _MARGIN + title_h))
    x += w + gap
  return _to_array(canvas)


def _rotated_text(text, font):
  """`text` rotated 90 degrees counter-clockwise, as a black-on-white 'L' image."""
  w, h = _text_size(text, font)
  image = Image.new("L", (w + 2, h + 2), _WHITE)
  _draw_text(ImageDraw.Draw(image), (1, 1), text, font)
  return image.rotate(90, expand=True)


def _axes_figure(image, *, x_ticks, y_ticks, x_label, y_label, title=None):
  """Frames an image like a plot: ticks and labels below and left of it.

  Args:
    image: uint8 `[H, W, C]`.
    x_ticks, y_ticks: lists of `(pixel position in image, text)`; labels that
      would overlap their neighbour are skipped.
    x_label, y_label: axis names.
    title: optional title.
  """
  image = _check_image_2d(image)
  h, w = image.shape[:2]
  tick_font, label_font = _font(_TICK_FONT_SIZE), _font(_LABEL_FONT_SIZE)
  tick_len = 5
  ylab = _rotated_text(y_label, label_font)
  ytick_w = max((_text_size(t, tick_font)[0] for _, t in y_ticks), default=0)
  xtick_h = max((_text_size(t, tick_font)[1] for _, t in x_ticks), default=0)
  xlab_w, xlab_h = _text_size(x_label, label_font)
  last_xtick_w = _text_size(x_ticks[-1][1], tick_font)[0] if x_ticks else 0
  left = _MARGIN + ylab.width + 8 + ytick_w + 4 + tick_len
  top = _MARGIN + _title_block(title) + _TICK_FONT_SIZE // 2
  width = left + w + max(_MARGIN, last_xtick_w // 2 + _MARGIN)
  height = top + h + tick_len + 4 + xtick_h + 8 + xlab_h + _MARGIN
  canvas = _canvas((width, height), [image])
  draw = ImageDraw.Draw(canvas)
  if title:
    title_font = _font(_TITLE_FONT_SIZE, bold=True)
    _draw_text(draw, (left + (w - _text_size(title, title_font)[0]) / 2, _MARGIN), title,
               title_font)
  _paste(canvas, image, (left, top))
  draw.rectangle((left - 1, top - 1, left + w, top + h), outline=_BLACK)
  last_end = -math.inf
  for pos, text in x_ticks:
    x = left + pos
    draw.line((x, top + h, x, top + h + tick_len), fill=_BLACK)
    tw, _ = _text_size(text, tick_font)
    if x - tw / 2 > last_end + 6:
      _draw_text(draw, (x - tw / 2, top + h + tick_len + 4), text, tick_font)
      last_end = x + tw / 2
  last_end = -math.inf
  for pos, text in y_ticks:
    y = top + pos
    draw.line((left - 1 - tick_len, y, left - 1, y), fill=_BLACK)
    tw, th = _text_size(text, tick_font)
    if y - th / 2 > last_end + 4:
      _draw_text(draw, (left - 1 - tick_len - 4 - tw, y - th / 2), text, tick_font)
      last_end = y + th / 2
  _draw_text(draw, (left + (w - xlab_w) / 2, height - _MARGIN - xlab_h), x_label, label_font)
  canvas.paste(ylab.convert(canvas.mode), (_MARGIN, top + (h - ylab.height) // 2))
  return _to_array(canvas)


# ----------------------------------------------------------------------------- figures


def reconstruction_figure(originals, reconstructions, path, n=10, title=None, scale=None):
  """Saves the first `n` originals above their reconstructions, rows labelled.

  Args:
    originals: `[N, H, W, C]` in [0, 1].
    reconstructions: the same shape as `originals`.
    path: the PNG to write.
    n: how many pairs to show (fewer if N < n).
    title: optional title.
    scale: tile upscale factor; None picks one (see module docstring).

  Returns:
    The uint8 image written.
  """
  originals = _check_images(originals, "originals")
  reconstructions = _check_images(reconstructions, "reconstructions")
  if originals.shape != reconstructions.shape:
    raise ValueError(
        "Expected reconstructions with the shape of originals "
        f"{_shape_str(originals)}. Received: reconstructions.shape="
        f"{_shape_str(reconstructions)}")
  n = min(_check_positive_int(n, "n"), originals.shape[0])
  top, scale = _figure_grid(originals[:n], n, 2, scale)
  bottom, _ = _figure_grid(reconstructions[:n], n, 2, scale)
  image = labelled_rows([top, bottom], ["original", "reconstruction"], title=title)
  save_png(image, path)
  return image


def sample_figure(samples, path, ncols=10, title=None, scale=None):
  """Saves a grid of samples (row-major, `ncols` per row) with an optional title.

  Returns:
    The uint8 image written.
  """
  samples = _check_images(samples, "samples")
  grid, _ = _figure_grid(samples, _check_positive_int(ncols, "ncols"), 2, scale)
  image = labelled_rows([grid], [""], title=title) if title else grid
  save_png(image, path)
  return image


def _decode(decode_fn, z):
  """Calls decode_fn on z [N, D] and checks it returns [N, H, W, C] (or [N, H, W])."""
  images = np.asarray(decode_fn(z))
  if images.ndim == 3 and images.shape[0] == len(z):
    images = images[..., None]
  if images.ndim != 4 or images.shape[0] != len(z) or images.shape[-1] not in (1, 3):
    raise ValueError(
        f"Expected decode_fn to return images [N, H, W, C] with N={len(z)} and C = 1 or 3. "
        f"Received: decode_fn(z).shape={_shape_str(images)} for z.shape={_shape_str(z)}")
  return images


def _check_base(base, latent_dim):
  if base is None:
    return np.zeros(latent_dim)
  base = np.asarray(base, dtype=np.float64).reshape(-1)
  if base.shape != (latent_dim,):
    raise ValueError(
        f"Expected base of shape [latent_dim]=[{latent_dim}]. "
        f"Received: base.shape={_shape_str(base)}")
  return base


def traversal_latents(latent_dim, *, base=None, num_steps=9, span=3.0, dims=None):
  """The latents of a traversal: `z[r, s]` is `base` with axis `dims[r]` set to `values[s]`.

  `values = linspace(-span, span, num_steps)`: for a N(0, I) prior, `span` is
  in prior standard deviations.

  Returns:
    `(z, values)` with z float64 `[len(dims), num_steps, latent_dim]`.
  """
  latent_dim = _check_positive_int(latent_dim, "latent_dim")
  num_steps = _check_positive_int(num_steps, "num_steps")
  if not float(span) > 0:
    raise ValueError(f"Expected span > 0. Received: span={span!r}")
  dims = list(range(latent_dim)) if dims is None else [int(d) for d in dims]
  if not dims or any(not 0 <= d < latent_dim for d in dims):
    raise ValueError(
        f"Expected dims to be axes in [0, {latent_dim}). Received: dims={dims}")
  base = _check_base(base, latent_dim)
  values = np.linspace(-float(span), float(span), num_steps)  # [S]
  z = np.tile(base, (len(dims), num_steps, 1))  # [R, S, D]
  for r, d in enumerate(dims):
    z[r, :, d] = values
  return z, values


def traversal_images(decode_fn, latent_dim, *, base=None, num_steps=9, span=3.0, dims=None):
  """Decodes latent traversals: one row per axis, that axis swept over [-span, span].

  Row `r` sweeps latent axis `dims[r]` linearly from `-span` to `+span`
  (prior standard deviations for a N(0, I) prior) in `num_steps` steps, left
  to right, with every other axis held at `base`. All rows are decoded in one
  `decode_fn` call.

  Args:
    decode_fn: `z [N, D] -> images [N, H, W, C]` in [0, 1].
    latent_dim: D.
    base: the latent `[D]` the sweep starts from; default zeros (the prior mean).
      Using an encoded example's mean shows what each axis does to that example.
    num_steps: images per row.
    span: half-width of the sweep.
    dims: the axes to sweep; default all `range(latent_dim)`.

  Returns:
    float array `[len(dims), num_steps, H, W, C]`.
  """
  z, _ = traversal_latents(latent_dim, base=base, num_steps=num_steps, span=span, dims=dims)
  rows, steps, d = z.shape
  images = _decode(decode_fn, z.reshape(rows * steps, d).astype(np.float32))
  return images.reshape((rows, steps) + images.shape[1:])


def traversal_figure(decode_fn, latent_dim, path, *, base=None, num_steps=9, span=3.0,
                     dims=None, annotations=None, title=None, scale=None, faded=()):
  """Saves latent traversals, each row labelled `z<axis>` plus an optional annotation.

  Columns are headed by the swept value. See `traversal_images` for the
  arguments shared with it.

  Args:
    annotations: optional strings, one per swept axis (aligned with `dims`),
      shown under the axis name, e.g. `"KL 2.31"` to spot collapsed axes.
    title: title; default says what is swept.
    scale: tile upscale factor; None picks one.
    faded: axes drawn faded towards grey (e.g. the latents the decoder does not use).

  Returns:
    The uint8 image written.
  """
  images = traversal_images(decode_fn, latent_dim, base=base, num_steps=num_steps,
                            span=span, dims=dims)  # [R, S, H, W, C]
  dims = list(range(latent_dim)) if dims is None else [int(d) for d in dims]
  if annotations is not None:
    annotations = [str(a) for a in annotations]
    if len(annotations) != len(dims):
      raise ValueError(
          f"Expected one annotation per swept axis ({len(dims)}). "
          f"Received: len(annotations)={len(annotations)}")
  labels = [f"z{d}" + (f"\n{annotations[r]}" if annotations else "")
            for r, d in enumerate(dims)]
  # Rows share a shape, so the automatic scale is the same for each.
  grids = [_figure_grid(row, num_steps, 2, scale)[0] for row in images]
  faded = {int(d) for d in faded}
  grids = [_fade(g) if d in faded else g for g, d in zip(grids, dims)]
  values = np.linspace(-float(span), float(span), num_steps)
  if title is None:
    where = "0" if base is None else "base"
    title = f"Latent traversals: each row sweeps one axis, others at {where}"
  image = labelled_rows(grids, labels, title=title,
                        column_labels=[f"{v:+.1f}" for v in values])
  save_png(image, path)
  return image


def _fade(image):
  """An image washed towards light grey (a row the figure marks as not in use), same dtype."""
  if image.dtype == np.uint8:
    return np.round(0.35 * image.astype(np.float32) + 0.65 * 191).astype(np.uint8)
  return (0.35 * image + 0.65 * 0.75).astype(image.dtype)


def manifold_latents(n=20, span=3.0, use_quantiles=True):
  """The 2-D latent grid of a manifold figure.

  `z[r, c] = (values[c], values[n - 1 - r])`: column c has z0 increasing to the
  right, row r has z1 decreasing downward, as in a plot. `values` are the
  N(0, 1) quantiles at `linspace(0.05, 0.95, n)` (Kingma & Welling, 2014,
  Fig. 4; `span` unused) or `linspace(-span, span, n)`.

  Returns:
    `(z, values)` with z float64 `[n, n, 2]`.
  """
  n = _check_positive_int(n, "n", minimum=2)
  if use_quantiles:
    normal = statistics.NormalDist()
    values = np.array([normal.inv_cdf(p) for p in np.linspace(0.05, 0.95, n)])
  else:
    if not float(span) > 0:
      raise ValueError(f"Expected span > 0. Received: span={span!r}")
    values = np.linspace(-float(span), float(span), n)
  z = np.empty((n, n, 2))
  z[:, :, 0] = values[None, :]
  z[:, :, 1] = values[::-1, None]
  return z, values


def manifold_images(decode_fn, n=20, span=3.0, use_quantiles=True, *, padding=0,
                    latent_dim=2, dims=(0, 1), base=None):
  """Decodes an n x n grid of latents into one image, as in Kingma & Welling (2014), Fig. 4.

  Orientation, as in a plot: tile column c has z0 = values[c] increasing to
  the right; tile row r has z1 = values[n - 1 - r], decreasing downward (so
  the top-left tile is (min z0, max z1)). See `manifold_latents` for `values`.

  For `latent_dim > 2`, axes `dims` are swept and the rest held at `base`
  (default zeros).

  Args:
    decode_fn: `z [N, latent_dim] -> images [N, H, W, C]` in [0, 1].
    n: tiles per side.
    span: sweep half-width when `use_quantiles` is False.
    use_quantiles: N(0, 1) quantiles of linspace(0.05, 0.95, n) instead of an
      even linspace.
    padding: pixels between tiles (0 gives the classic seamless look).

  Returns:
    uint8 `[n * (H + padding) + padding, n * (W + padding) + padding, C]`.
  """
  z2, _ = manifold_latents(n, span, use_quantiles)  # [n, n, 2]
  latent_dim = _check_positive_int(latent_dim, "latent_dim", minimum=2)
  dims = [int(d) for d in dims]
  if len(dims) != 2 or dims[0] == dims[1] or any(not 0 <= d < latent_dim for d in dims):
    raise ValueError(
        f"Expected two different axes in [0, {latent_dim}). Received: dims={dims}")
  z = np.tile(_check_base(base, latent_dim), (n * n, 1))  # [n*n, D]
  z[:, dims] = z2.reshape(n * n, 2)
  images = _decode(decode_fn, z.astype(np.float32))
  return image_grid(images, ncols=n, padding=padding)


def manifold_figure(decode_fn, path, n=20, span=3.0, use_quantiles=True, *, padding=0,
                    latent_dim=2, dims=(0, 1), base=None, title=None, scale=None):
  """Saves `manifold_with_axes` (z0 ticks along the bottom, z1 ticks on the left).

  Returns:
    The uint8 image written.
  """
  image = manifold_with_axes(decode_fn, n, span, use_quantiles, padding=padding,
                             latent_dim=latent_dim, dims=dims, base=base, title=title,
                             scale=scale)
  save_png(image, path)
  return image


def manifold_with_axes(decode_fn, n=20, span=3.0, use_quantiles=True, *, padding=0,
                       latent_dim=2, dims=(0, 1), base=None, title=None, scale=None):
  """`manifold_images` with z0 ticks along the bottom and z1 ticks on the left, as an image
  (uint8 [H, W, C]) for `side_by_side` panels or `manifold_figure`."""
  grid = manifold_images(decode_fn, n, span, use_quantiles, padding=padding,
                         latent_dim=latent_dim, dims=dims, base=base)
  _, values = manifold_latents(n, span, use_quantiles)
  if scale is None:
    scale = auto_scale(grid.shape[1])
  scale = _check_positive_int(scale, "scale")
  grid = upscale(grid, scale)
  tile = (grid.shape[1] - padding * scale) / n  # tile + padding, in output pixels
  centre = [padding * scale + tile * i + (tile - padding * scale) / 2 for i in range(n)]
  x_ticks = [(centre[i], f"{values[i]:.2f}") for i in range(n)]
  y_ticks = [(centre[i], f"{values[n - 1 - i]:.2f}") for i in range(n)]
  how = "N(0,1) quantiles" if use_quantiles else f"linspace(-{span:g}, {span:g})"
  return _axes_figure(grid, x_ticks=x_ticks, y_ticks=y_ticks,
                      x_label=f"z{dims[0]}  ({how})", y_label=f"z{dims[1]}", title=title)


def interpolation_latents(z_start, z_end, num_steps=10, method="linear"):
  """Latents on the path from `z_start` to `z_end`, endpoints included.

  `method="linear"`: `(1 - t) z_start + t z_end`. `method="slerp"`: spherical
  interpolation (White, 2016, "Sampling Generative Networks"),
  `sin((1 - t) w) / sin(w) z_start + sin(t w) / sin(w) z_end` with w the
  angle between them, which keeps intermediate points at a norm typical of a
  Gaussian prior instead of cutting through the low-density centre. Falls
  back to linear for (anti)parallel vectors.

  Args:
    z_start, z_end: `[D]` or `[P, D]` (P pairs).
    num_steps: points per path, >= 2.

  Returns:
    float64 `[num_steps, D]` or `[P, num_steps, D]`.
  """
  z_start = np.asarray(z_start, dtype=np.float64)
  z_end = np.asarray(z_end, dtype=np.float64)
  if z_start.ndim not in (1, 2) or z_start.shape != z_end.shape:
    raise ValueError(
        "Expected z_start and z_end of the same shape [D] or [P, D]. Received: "
        f"z_start.shape={_shape_str(z_start)}, z_end.shape={_shape_str(z_end)}")
  num_steps = _check_positive_int(num_steps, "num_steps", minimum=2)
  if method not in ("linear", "slerp"):
    raise ValueError(f"Expected method 'linear' or 'slerp'. Received: method={method!r}")
  single = z_start.ndim == 1
  a, b = np.atleast_2d(z_start), np.atleast_2d(z_end)  # [P, D]
  t = np.linspace(0.0, 1.0, num_steps)[None, :, None]  # [1, S, 1]
  z = (1 - t) * a[:, None] + t * b[:, None]  # [P, S, D]
  if method == "slerp":
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)  # [P]
    cos = np.divide(np.sum(a * b, axis=-1), norms, out=np.ones_like(norms), where=norms > 0)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))[:, None, None]  # [P, 1, 1]
    sin = np.sin(omega)
    ok = (sin > 1e-6)[:, 0, 0]
    if ok.any():
      s = sin[ok]
      z[ok] = (np.sin((1 - t) * omega[ok]) / s * a[ok, None]
               + np.sin(t * omega[ok]) / s * b[ok, None])
  z[:, 0], z[:, -1] = a, b  # Exact endpoints, whatever the rounding.
  return z[0] if single else z


def interpolation_images(decode_fn, z_start, z_end, num_steps=10, method="linear"):
  """Decodes the interpolation between latents (see `interpolation_latents`).

  Returns:
    float `[num_steps, H, W, C]` for `[D]` endpoints, `[P, num_steps, H, W, C]`
    for `[P, D]` endpoints. The first and last images are the decoded endpoints.
  """
  z = interpolation_latents(z_start, z_end, num_steps, method)
  flat = z.reshape(-1, z.shape[-1]).astype(np.float32)
  images = _decode(decode_fn, flat)
  return images.reshape(z.shape[:-1] + images.shape[1:])


def interpolation_figure(decode_fn, z_starts, z_ends, path, num_steps=10, method="linear",
                         row_labels=None, title=None, scale=None):
  """Saves one interpolation per row, for pairs `z_starts[p] -> z_ends[p]`.

  Args:
    z_starts, z_ends: `[P, D]` (or `[D]` for one pair).
    row_labels: one string per pair; default "pair 0", "pair 1", ...
    title: default names the method.

  Returns:
    The uint8 image written.
  """
  images = interpolation_images(decode_fn, np.atleast_2d(z_starts), np.atleast_2d(z_ends),
                                num_steps, method)  # [P, S, H, W, C]
  labels = [f"pair {p}" for p in range(len(images))] if row_labels is None else list(row_labels)
  if len(labels) != len(images):
    raise ValueError(
        f"Expected one row label per pair ({len(images)}). Received: len(row_labels)={len(labels)}")
  grids = [_figure_grid(row, num_steps, 2, scale)[0] for row in images]
  faded = {int(d) for d in faded}
  grids = [_fade(g) if d in faded else g for g, d in zip(grids, dims)]
  if title is None:
    title = f"{'Spherical' if method == 'slerp' else 'Linear'} interpolation in latent space"
  image = labelled_rows(grids, labels, title=title)
  save_png(image, path)
  return image


def _pca_2d(z):
  """Projects z [N, D] on its top two principal axes; returns (z2 [N, 2], explained ratio [2])."""
  centred = z - z.mean(axis=0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  var = s ** 2
  ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
  return centred @ vt[:2].T, ratio


def label_name(label, label_names=None):
  """A label as people read it: its class name where the data has names, else the number."""
  if label_names is not None and float(label).is_integer() and 0 <= int(label) < len(label_names):
    return str(label_names[int(label)])
  return str(label)


def latent_scatter_figure(z, labels, path, title=None, max_classes=20, label_names=None):
  """Saves a scatter of latents coloured by label.

  D = 2: z0 against z1. D > 2: the first two principal components (PCA), said
  in the axis labels with their share of variance. Labels with at most
  `max_classes` distinct integer values get discrete colours and a legend;
  other labels a colour bar; None one colour.

  Args:
    z: `[N, D]` with D >= 2, e.g. encoder means.
    labels: `[N]` or None.
    path: the PNG to write.
    title: optional title.
    max_classes: at most this many distinct labels get a legend.
    label_names: the class names of integer labels (`label_names[k]` for label k, as the
      Examples artifact records them), shown in the legend instead of the numbers.

  Returns:
    The uint8 RGB image written.
  """
  z = np.asarray(z, dtype=np.float64)
  if z.ndim != 2 or z.shape[1] < 2 or z.shape[0] < 1:
    raise ValueError(f"Expected z of shape [N, D] with D >= 2. Received: z.shape={_shape_str(z)}")
  if not np.all(np.isfinite(z)):
    raise ValueError("Expected finite latents. Received: z with NaN or infinite values")
  if labels is not None:
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != z.shape[0]:
      raise ValueError(
          f"Expected one label per latent ({z.shape[0]}). Received: labels.shape="
          f"{_shape_str(labels)}")
  if z.shape[1] == 2:
    xy, x_label, y_label = z, "z0", "z1"
  else:
    xy, ratio = _pca_2d(z)
    x_label = f"PC1 of {z.shape[1]}-D z ({ratio[0]:.0%} of variance)"
    y_label = f"PC2 ({ratio[1]:.0%} of variance)"

  # The object API on an Agg canvas leaves matplotlib's global backend alone.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(7.5, 6.5), dpi=100)
  canvas = FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  size = float(np.clip(20000 / len(xy), 2, 25))
  if labels is None:
    ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.6, linewidths=0)
  else:
    classes = np.unique(labels)
    discrete = (len(classes) <= max_classes
                and (np.issubdtype(labels.dtype, np.integer)
                     or not np.issubdtype(labels.dtype, np.number)
                     or np.all(np.mod(labels, 1) == 0)))
    if discrete:
      import matplotlib  # pylint: disable=import-outside-toplevel
      cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
      for k, c in enumerate(classes):
        mask = labels == c
        ax.scatter(xy[mask, 0], xy[mask, 1], s=size, alpha=0.7, linewidths=0,
                   color=cmap(k), label=label_name(c, label_names))
      ax.legend(title="label", loc="center left", bbox_to_anchor=(1.01, 0.5),
                markerscale=max(1.0, 30 / size) ** 0.5, frameon=False)
    else:
      points = ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7, linewidths=0,
                          c=labels.astype(np.float64), cmap="viridis")
      fig.colorbar(points, ax=ax, label="label")
  ax.set_xlabel(x_label)
  ax.set_ylabel(y_label)
  if title:
    ax.set_title(title)
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  canvas.draw()
  image = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()  # [H, W, 3]
  save_png(image, path)
  return image


def line_plot_figure(panels, path, title=None):
  """Saves curves side by side, e.g. a score against a hyperparameter for several models.

  Args:
    panels: list of dicts, one subplot each, with `x_label`, `y_label`, `lines`
      (a list of dicts with `x`, `y`, `label` and optional `marker`, `color`),
      optional `references` (dicts with `y`, `label`, optional `color`, drawn as
      dashed horizontal lines), optional `log_x` and `title`.
    path: the PNG to write.
    title: optional title above all panels.

  Returns:
    The uint8 RGB image written.
  """
  panels = list(panels)
  if not panels:
    raise ValueError("Expected at least one panel. Received: panels=[]")
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(5.5 * len(panels), 4.6), dpi=100)
  canvas = FigureCanvasAgg(fig)
  for i, panel in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    for line in panel.get("lines", ()):
      x, y = np.asarray(line["x"], np.float64), np.asarray(line["y"], np.float64)
      if x.shape != y.shape:
        raise ValueError(f"Expected x and y of one shape. Received: panels[{i}] line "
                         f"{line.get('label')!r} with x.shape={x.shape}, y.shape={y.shape}")
      ax.plot(x, y, marker=line.get("marker", "o"), color=line.get("color"),
              linestyle=line.get("linestyle", "-"), label=line.get("label"))
    for ref in panel.get("references", ()):
      ax.axhline(ref["y"], linestyle="--", linewidth=1, color=ref.get("color", "grey"),
                 label=ref.get("label"))
    if panel.get("log_x"):
      # Ticks at the plotted x values, written as numbers: log-axis minor labels collide.
      from matplotlib import ticker  # pylint: disable=import-outside-toplevel
      ax.set_xscale("log")
      ticks = sorted({float(v) for line in panel.get("lines", ()) for v in line["x"]})
      ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
      ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(panel.get("x_label", ""))
    ax.set_ylabel(panel.get("y_label", ""))
    if panel.get("title"):
      ax.set_title(panel["title"])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  canvas.draw()
  image = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()  # [H, W, 3]
  save_png(image, path)
  return image
