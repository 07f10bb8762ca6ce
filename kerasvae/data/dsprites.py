"""A procedural dSprites generator: the ground truth of the disentanglement metrics.

dSprites [1] is every combination of 6 factors rendered as a 64x64 binary
image: colour (white, 1 value), shape (square, ellipse, heart), scale (6
values in [0.5, 1]), orientation (40 values in [0, 2π)), posX and posY (32
values each in [0, 1]). The full grid holds 737,280 images in the original
order, the last factor varying fastest.

Geometry (image coordinates: x to the right, y downwards, pixel (r, c) covers
[c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5)):

- A pixel is on when its centre lies inside the shape (a point-in-shape test
  on pixel centres, vectorised over a small window around each shape).
- Each shape is centred at its position by its area centroid; scale and
  rotation apply about that centre. Orientation turns the shape
  anticlockwise as displayed.
- At scale 1 the square's side is 0.16 * 64 = 10.24 pixels; the ellipse has
  semi-axes 0.7 and 0.35 times that side; the heart (two lobes on top, a point
  at the bottom at orientation 0) reaches 0.95 of the square's half-diagonal.
- posX, posY in [0, 1] map linearly to centres in [m, 64 - m] with
  m = (half-diagonal of the square at scale 1) + 1 pixel, so every shape
  stays inside the frame at every position, scale and rotation.

[1]: Matthey, Higgins, Hassabis & Lerchner, dSprites: Disentanglement
     testing Sprites dataset, 2017. https://github.com/deepmind/dsprites-dataset
"""

import math

import numpy as np

IMAGE_SIZE = 64
FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
# Bump when the rendering changes: ingest fingerprints include it.
RENDERER_VERSION = 1

_SQUARE_SIDE = 0.16 * IMAGE_SIZE  # pixels at scale 1
_HALF_SIDE = _SQUARE_SIDE / 2
_MAX_RADIUS = _HALF_SIDE * math.sqrt(2)  # the square's corners, the farthest point of any shape
_ELLIPSE_AXES = (0.7 * _SQUARE_SIDE, 0.35 * _SQUARE_SIDE)
_HEART_RADIUS = 0.95 * _MAX_RADIUS
_MARGIN = _MAX_RADIUS + 1.0
_WINDOW = int(math.ceil(2 * _MAX_RADIUS)) + 3  # pixels of the window rendered around each shape


def _heart_inside(x, y):
  """The classic heart curve (x² + y² - 1)³ - x² y³ <= 0, y upwards."""
  r = x * x + y * y - 1.0
  return r * r * r - x * x * y * y * y <= 0.0


def _heart_frame():
  """Centroid offset and scale that centre the heart and set its radius.

  Returns:
    (cy, k): the heart's area centroid height in curve units, and pixels per
    curve unit so its farthest point from the centroid is `_HEART_RADIUS`.
  """
  t = np.linspace(-1.5, 1.5, 1501)
  x, y = np.meshgrid(t, t)  # [1501, 1501]
  inside = _heart_inside(x, y)
  cy = float(y[inside].mean())  # symmetric in x, so the centroid has x = 0
  radius = float(np.sqrt(x[inside] ** 2 + (y[inside] - cy) ** 2).max())
  return cy, _HEART_RADIUS / radius


_HEART_CY, _HEART_K = _heart_frame()


def allowed_classes(shapes=None, scales=None, orientations=None, pos_x=None, pos_y=None):
  """The class indices each factor may take in a restricted grid: a list of 6 int64 arrays.

  Args:
    shapes: shape names (`SHAPE_NAMES`) or None for all; the others: class
      indices or None for all.
  """
  chosen = [None, None if shapes is None else [SHAPE_NAMES.index(s) for s in shapes],
            scales, orientations, pos_x, pos_y]
  return [np.arange(size, dtype=np.int64) if values is None
          else np.array(sorted(set(values)), dtype=np.int64)
          for size, values in zip(FACTOR_SIZES, chosen)]


class DSprites:
  """The dSprites grid rendered on demand, deterministically.

  Example:
    >>> data = DSprites()
    >>> classes = data.sample_factors(10, np.random.RandomState(0))  # [10, 6]
    >>> images = data.sample_observations_from_factors(classes, None)  # [10, 64, 64, 1]
  """

  factor_names = FACTOR_NAMES
  factor_sizes = FACTOR_SIZES
  shape_names = SHAPE_NAMES
  latent_factor_indices = [1, 2, 3, 4, 5]
  observation_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)

  def __init__(self):
    self._values = (
        np.array([1.0]),
        np.array([1.0, 2.0, 3.0]),  # the original archive's shape values
        np.linspace(0.5, 1.0, 6),
        np.arange(40) * (2 * np.pi / 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    )

  @property
  def num_factors(self):
    return len(self.factor_sizes)

  def __len__(self):
    return int(np.prod(self.factor_sizes))

  def factor_values_of(self, factor):
    """The float values of one factor (by index or name), indexed by class."""
    if isinstance(factor, str):
      factor = self.factor_names.index(factor)
    return self._values[factor].copy()

  def _check_classes(self, classes):
    classes = np.asarray(classes)
    if classes.ndim == 1 and classes.shape[0] == self.num_factors:
      classes = classes[None]
    if classes.ndim != 2 or classes.shape[1] != self.num_factors:
      raise ValueError(f"Expected factor classes of shape [N, {self.num_factors}]. "
                       f"Received: classes.shape={classes.shape}")
    if not np.issubdtype(classes.dtype, np.integer):
      raise ValueError(f"Expected integer factor classes. Received: classes.dtype={classes.dtype}")
    if classes.size and ((classes < 0).any() or (classes >= np.array(self.factor_sizes)).any()):
      bad = np.argwhere((classes < 0) | (classes >= np.array(self.factor_sizes)))[0]
      raise ValueError(
          f"Expected 0 <= classes[:, {bad[1]}] < {self.factor_sizes[bad[1]]} "
          f"({self.factor_names[bad[1]]}). Received: classes[{bad[0]}]={classes[bad[0]].tolist()}")
    return classes.astype(np.int64)

  def factor_values(self, classes):
    """Float factor values of class indices.

    Args:
      classes: int [N, 6] class indices.

    Returns:
      float64 [N, 6]: colour 1, shape 1..3, scale, orientation (radians), posX, posY.
    """
    classes = self._check_classes(classes)
    return np.stack([v[classes[:, i]] for i, v in enumerate(self._values)], axis=1)  # [N, 6]

  def index_of(self, classes):
    """Index in the original order of the full grid (last factor fastest)."""
    classes = self._check_classes(classes)
    return np.ravel_multi_index(tuple(classes.T), self.factor_sizes).astype(np.int64)  # [N]

  def classes_of(self, index):
    """Factor classes [N, 6] of indices into the full grid."""
    index = np.atleast_1d(np.asarray(index, dtype=np.int64))
    if index.size and (index.min() < 0 or index.max() >= len(self)):
      raise ValueError(f"Expected indices in [0, {len(self)}). "
                       f"Received: index range [{index.min()}, {index.max()}]")
    return np.stack(np.unravel_index(index, self.factor_sizes), axis=1).astype(np.int64)

  def sample_factors(self, num, random_state):
    """Uniformly random factor classes.

    Args:
      num: how many.
      random_state: a `np.random.RandomState`.

    Returns:
      int64 [num, 6] class indices (colour is always 0).
    """
    return np.stack([random_state.randint(size, size=num) for size in self.factor_sizes],
                    axis=1).astype(np.int64)  # [num, 6]

  def sample_observations_from_factors(self, factors, random_state):
    """Images of factor classes; rendering is deterministic.

    Args:
      factors: int [N, 6] classes, or [N, 5] classes of `latent_factor_indices`.
      random_state: unused (kept for the disentanglement_lib interface).

    Returns:
      float32 [N, 64, 64, 1] in {0, 1}.
    """
    del random_state
    factors = np.asarray(factors)
    if factors.ndim == 2 and factors.shape[1] == len(self.latent_factor_indices):
      full = np.zeros((factors.shape[0], self.num_factors), np.int64)
      full[:, self.latent_factor_indices] = factors
      factors = full
    return self.render(factors).astype(np.float32)

  def images(self, indices):
    """uint8 [N, 64, 64, 1] images of indices into the full grid."""
    return self.render(self.classes_of(indices))

  def render(self, classes, chunk_size=4096):
    """Renders factor classes.

    Args:
      classes: int [N, 6] class indices.
      chunk_size: images rendered per vectorised step (bounds memory).

    Returns:
      uint8 [N, 64, 64, 1] in {0, 1}, like the original archive's `imgs`.
    """
    classes = self._check_classes(classes)
    out = np.zeros((classes.shape[0], IMAGE_SIZE, IMAGE_SIZE), np.uint8)  # [N, 64, 64]
    for start in range(0, classes.shape[0], chunk_size):
      chunk = classes[start:start + chunk_size]
      out[start:start + chunk_size] = self._render_chunk(chunk)
    return out[..., None]

  def _render_chunk(self, classes):
    n = classes.shape[0]
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)  # [n, 64, 64]
    span = IMAGE_SIZE - 2 * _MARGIN
    cx = _MARGIN + self._values[4][classes[:, 4]] * span  # [n] centre, pixels
    cy = _MARGIN + self._values[5][classes[:, 5]] * span  # [n]
    ox = np.clip(np.floor(cx - _MAX_RADIUS).astype(np.int64) - 1, 0, IMAGE_SIZE - _WINDOW)  # [n]
    oy = np.clip(np.floor(cy - _MAX_RADIUS).astype(np.int64) - 1, 0, IMAGE_SIZE - _WINDOW)  # [n]
    grid = np.arange(_WINDOW) + 0.5  # [W]
    for shape in range(3):
      sel = np.flatnonzero(classes[:, 1] == shape)
      if not sel.size:
        continue
      scale = self._values[2][classes[sel, 2]][:, None, None]  # [s, 1, 1]
      theta = self._values[3][classes[sel, 3]][:, None, None]  # [s, 1, 1]
      dx = (ox[sel, None] + grid - cx[sel, None])[:, None, :]  # [s, 1, W]
      dy = -(oy[sel, None] + grid - cy[sel, None])[:, :, None]  # [s, W, 1], upwards
      cos, sin = np.cos(theta), np.sin(theta)
      # Inverse rotation and scaling into the shape's own frame.
      u = (cos * dx + sin * dy) / scale  # [s, W, W]
      v = (cos * dy - sin * dx) / scale  # [s, W, W]
      if shape == 0:
        mask = np.maximum(np.abs(u), np.abs(v)) <= _HALF_SIDE
      elif shape == 1:
        mask = (u / _ELLIPSE_AXES[0]) ** 2 + (v / _ELLIPSE_AXES[1]) ** 2 <= 1.0
      else:
        mask = _heart_inside(u / _HEART_K, v / _HEART_K + _HEART_CY)
      rows = oy[sel, None, None] + np.arange(_WINDOW)[None, :, None]  # [s, W, 1]
      cols = ox[sel, None, None] + np.arange(_WINDOW)[None, None, :]  # [s, 1, W]
      out[sel[:, None, None], rows, cols] = mask
    return out
