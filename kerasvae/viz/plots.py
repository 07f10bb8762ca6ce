"""Matplotlib plots: the latent scatter and line plots, drawn on an Agg canvas object so the
process-wide matplotlib backend is never changed.
"""

import numpy as np

from kerasvae.viz.grids import _shape_str, save_png


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
