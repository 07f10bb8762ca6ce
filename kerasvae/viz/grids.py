"""Image grids and the PNG files: tiling, nearest-neighbour upscaling, TensorBoard arrays.

Numpy in, uint8 arrays or PNG files out; `image_grid` and `save_png` never resample (see the
package docstring for the conventions every `viz` module shares).
"""

import math
from pathlib import Path

import numpy as np
from PIL import Image

from kerasvae import artifacts

# The smallest width, in pixels, of the tiled area of a saved figure when `scale=None`.
MIN_FIGURE_WIDTH = 600
# Upscaling beyond this only makes files big; tiny images are still readable at 8x.
MAX_AUTO_SCALE = 8


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
