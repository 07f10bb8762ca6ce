"""Images decoded from chosen latents: traversals, manifolds and interpolations.

No model code: each function takes a `decode_fn(z)` mapping latents `[N, D]` to images
`[N, H, W, C]` (or `[N, H, W]`) in [0, 1].
"""

import statistics

import numpy as np

from kerasvae.viz.grids import (_check_positive_int, _figure_grid, _shape_str, auto_scale,
                                image_grid, save_png, upscale)
from kerasvae.viz.layout import _axes_figure, labelled_rows


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
  if title is None:
    title = f"{'Spherical' if method == 'slerp' else 'Linear'} interpolation in latent space"
  image = labelled_rows(grids, labels, title=title)
  save_png(image, path)
  return image
