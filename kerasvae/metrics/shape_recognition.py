"""Shape recognition: does a dSprites reconstruction show the right shape, or a blob?

A template test, independent of the model. A reconstruction's sprite (its pixels above 0.5, what
the picture shows) is compared with renderings of the three dSprites shapes (square, ellipse,
heart) at the original image's position and scale, in each of the 40 orientations, and with
round blobs: discs of every radius from 1 to 16 pixels in quarter pixels, centred on the
sprite's own centre of mass. It is *recognised* when the nearest of these (the fewest differing
pixels) is the original's shape. Orientation is left free so the test asks about the shape
alone (a heart drawn at a wrong angle is still a heart); the discs are there so that a round
blob of the right size and place, which a shape template alone would call whatever shape is
roundest, is not recognised as anything. The originals themselves score 100 % on procedural
dSprites (their own rendering is among the templates).
"""

import numpy as np

NUM_ORIENTATIONS = 40
BLOB_RADII = np.arange(1.0, 16.01, 0.25)  # pixels


def _blob_distances(sprites, height, width):
  """The fewest differing pixels between each binary sprite and a disc at its centre of mass."""
  yy, xx = np.mgrid[:height, :width] + 0.5  # [H, W] pixel centres
  pixels = sprites.reshape(-1, height, width)  # [n, H, W]
  mass = np.maximum(pixels.sum(axis=(1, 2)), 1.0)  # [n]
  cy = (pixels * yy).sum(axis=(1, 2)) / mass  # [n]
  cx = (pixels * xx).sum(axis=(1, 2)) / mass  # [n]
  squared = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2  # [n, H, W]
  discs = squared[:, None] <= BLOB_RADII[None, :, None, None] ** 2  # [n, R, H, W]
  return (discs != pixels[:, None].astype(bool)).sum(axis=(2, 3)).min(axis=1)  # [n]


def compute_shape_recognition(reconstructions, factor_classes, render, shape_names,
                              chunk_size=128):
  """The share of reconstructions whose nearest template is the original's shape.

  Args:
    reconstructions: float [N, H, W, 1] (or [N, H, W]) pixel means in [0, 1].
    factor_classes: int [N, 6] dSprites factor classes of the originals (colour, shape, scale,
      orientation, posX, posY).
    render: a function of int [M, 6] classes to [M, H, W, 1] images in {0, 1}
      (`kerasvae.data.dsprites.DSprites().render`).
    shape_names: the names of the shape classes, in class order.
    chunk_size: images compared per step (each renders 3 x 40 templates).

  Returns:
    A dict: `shape_recognised` (the share in [0, 1]), `shape_recognised_per_shape` (one share per
    shape class; None for a class absent from the originals), `shape_confusion` (counts, one row
    per original shape, one column per nearest template: the shapes, then `blob`) and
    `shape_names`.
  """
  x = np.asarray(reconstructions, np.float32)
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 3:
    raise ValueError("Expected reconstructions of shape [N, H, W, 1] or [N, H, W]. "
                     f"Received: reconstructions.shape={np.shape(reconstructions)}")
  num, height, width = x.shape
  classes = np.asarray(factor_classes, np.int64)
  if classes.shape != (num, 6):
    raise ValueError(f"Expected factor_classes of shape [{num}, 6]. "
                     f"Received: factor_classes.shape={classes.shape}")
  sprites = (x > 0.5).reshape(num, -1).astype(np.float32)  # [N, P] the sprite the picture shows
  num_shapes = len(shape_names)
  predicted = np.zeros(num, np.int64)  # [N]: a shape class, or num_shapes for a blob
  for start in range(0, num, chunk_size):
    chunk = classes[start:start + chunk_size]  # [n, 6]
    n = chunk.shape[0]
    templates = np.broadcast_to(chunk[:, None, None, :], (n, num_shapes, NUM_ORIENTATIONS, 6))
    templates = templates.copy()
    templates[..., 1] = np.arange(num_shapes)[:, None]
    templates[..., 3] = np.arange(NUM_ORIENTATIONS)  # [n, S, O, 6]
    images = render(templates.reshape(-1, 6)).reshape(n, num_shapes, NUM_ORIENTATIONS, -1)
    shapes = (images != sprites[start:start + n, None, None, :]).sum(-1).min(-1)  # [n, S]
    blob = _blob_distances(sprites[start:start + n], height, width)  # [n]
    predicted[start:start + n] = np.concatenate([shapes, blob[:, None]], axis=1).argmin(axis=1)
  truth = classes[:, 1]  # [N]
  confusion = np.zeros((num_shapes, num_shapes + 1), np.int64)
  np.add.at(confusion, (truth, predicted), 1)
  per_shape = [float(confusion[s, s] / confusion[s].sum()) if confusion[s].sum() else None
               for s in range(num_shapes)]
  return {"shape_recognised": float(np.mean(predicted == truth)) if num else 0.0,
          "shape_recognised_per_shape": per_shape, "shape_confusion": confusion.tolist(),
          "shape_names": list(shape_names)}
