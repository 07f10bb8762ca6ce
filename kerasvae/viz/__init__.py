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

Modules, each importable alone; every public name is re-exported here (`viz.image_grid`):
  grids     tiling, upscaling, `save_png`, TensorBoard image arrays
  layout    labelled rows, titled panels, a plot's axes; reconstruction and sample figures
  latents   decoded traversals, manifolds and interpolations
  plots     matplotlib plots: the latent scatter, line plots

Example:
  >>> grid = image_grid(images, ncols=10)            # uint8 [H', W', C]
  >>> sample_figure(images, "samples.png", title="VAE samples")
  >>> traversal_figure(decode_fn, latent_dim=10, path="traversal.png")
"""

from kerasvae.viz.grids import (MAX_AUTO_SCALE, MIN_FIGURE_WIDTH, auto_scale, image_grid,
                                save_png, to_tensorboard_image, upscale)
from kerasvae.viz.latents import (interpolation_figure, interpolation_images,
                                  interpolation_latents, manifold_figure, manifold_images,
                                  manifold_latents, manifold_with_axes, traversal_figure,
                                  traversal_images, traversal_latents)
from kerasvae.viz.layout import (labelled_rows, reconstruction_figure, sample_figure,
                                 side_by_side)
from kerasvae.viz.plots import label_name, latent_scatter_figure, line_plot_figure

__all__ = [
    "MAX_AUTO_SCALE", "MIN_FIGURE_WIDTH", "auto_scale", "image_grid", "interpolation_figure",
    "interpolation_images", "interpolation_latents", "label_name", "labelled_rows",
    "latent_scatter_figure", "line_plot_figure", "manifold_figure", "manifold_images",
    "manifold_latents", "manifold_with_axes", "reconstruction_figure", "sample_figure",
    "save_png", "side_by_side", "to_tensorboard_image", "traversal_figure", "traversal_images",
    "traversal_latents", "upscale",
]
