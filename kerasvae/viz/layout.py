"""Labelled layouts of images: rows with labels, titled panels side by side, a plot's axes,
and the reconstruction and sample figures built of them.

Text is drawn with Pillow and the DejaVu Sans font that ships with matplotlib.
"""

import functools
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kerasvae.viz.grids import (_check_image_2d, _check_images, _check_positive_int,
                                _figure_grid, _shape_str, _to_uint8, save_png)

_WHITE = 255
_BLACK = 0
_MARGIN = 10
_LABEL_FONT_SIZE = 16
_TICK_FONT_SIZE = 13
_TITLE_FONT_SIZE = 20


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
