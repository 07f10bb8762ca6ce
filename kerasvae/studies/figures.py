"""A study's summary charts, drawn with matplotlib: numbers across seeds (error bars or box
plots), rate–distortion, and the latent × factor information of a disentanglement model.

Each function takes the numbers (never a model), writes one PNG and returns its path, so a
report's charts can be redrawn from `results.json` alone.
"""

import numpy as np

from kerasvae import artifacts
from kerasvae.studies import report

SEED_MARKER = {"marker": "o", "s": 14, "alpha": 0.55, "zorder": 3}


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")  # files only, no display
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def _save(fig, path):
  """Writes the figure atomically (temporary name, then rename) and closes it."""
  plt = _pyplot()
  with artifacts.atomic_file(path) as f:
    fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path



def _measured(groups, metrics):
  """The (key, label) pairs of `metrics` that some trial of `groups` has a value of."""
  return [(k, label) for k, label in metrics if any(len(report.seed_values(g, k)) for g in groups.values())]


def _tick_labels(names, width=14):
  """Setting names wrapped to `width` characters a line, so neighbouring ticks do not overlap."""
  import textwrap  # pylint: disable=import-outside-toplevel
  return ["\n".join(textwrap.wrap(str(n), width)) or str(n) for n in names]


def seed_metrics_figure(groups, metrics, path, title, x_label="setting", draw=True):
  """One panel per metric: each setting's seeds as dots and their mean ± sd as an error bar.

  Args:
    groups: {setting name: [trials, one per seed]} in the order to draw.
    metrics: [(metric key, axis label)]; keys no trial has are left out.
    path: the PNG to write.
    title: the figure's title.
    x_label: what the settings are (e.g. "β", "latent dimensions").
    draw: False returns the path it would write without drawing.

  Returns:
    `path`, or None when no metric has a value.
  """
  metrics = _measured(groups, metrics)
  if not metrics or not draw:
    return path if metrics else None
  plt = _pyplot()
  names = list(groups)
  long_names = len(names) > 4 or max(len(str(n)) for n in names) > 8
  # Two panels a row; a panel wide enough for its settings' (wrapped) names.
  columns = min(len(metrics), 2 if long_names else 4)
  rows = -(-len(metrics) // columns)
  width = max(3.6, 0.75 * len(names) + 1.2) if long_names else 3.6
  fig, axes = plt.subplots(rows, columns, figsize=(width * columns, 3.9 * rows if long_names
                                                   else 3.4 * rows), squeeze=False)
  for ax, (key, label) in zip(axes.flat, metrics):
    for x, name in enumerate(names):
      values = report.seed_values(groups[name], key)
      if not len(values):
        continue
      ax.scatter(np.full(len(values), x) + np.linspace(-0.08, 0.08, len(values)), values,
                 color="tab:blue", label="one seed" if x == 0 else None, **SEED_MARKER)
      sd = values.std(ddof=1) if len(values) > 1 else 0.0
      ax.errorbar([x + 0.22], [values.mean()], yerr=[sd], fmt="s", color="black", capsize=4,
                  markersize=5, label="mean ± sd" if x == 0 else None)
    if long_names:
      ax.set_xticks(range(len(names)), _tick_labels(names), rotation=45, ha="right",
                    rotation_mode="anchor", fontsize=7)
    else:
      ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.5, len(names) - 0.5 + 0.3)
    ax.set_xlabel(x_label)
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(metrics):]:
    ax.set_visible(False)
  axes[0][0].legend(loc="best", fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def seed_box_figure(groups, metrics, path, title, columns=4):
  """One panel per metric, one box per setting over its seeds, the seeds as dots on it.

  As Locatello et al. (2019) draw their methods' scores: the box spans the quartiles with
  the median as its line, the whiskers reach the extreme seeds (no outliers: with three
  seeds every seed is data), and the dots are the seeds themselves.

  Args:
    groups: {setting name: [trials, one per seed]} in the order to draw.
    metrics: [(metric key, panel title)]; keys no trial has are left out.
    path: the PNG to write.
    title: the figure's title.
    columns: panels per row.

  Returns:
    `path`, or None when no metric has a value.
  """
  metrics = _measured(groups, metrics)
  if not metrics:
    return None
  plt = _pyplot()
  names = list(groups)
  columns = min(columns, len(metrics))
  rows = -(-len(metrics) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(0.55 * len(names) * columns + 1.2 * columns,
                                                   3.3 * rows), squeeze=False)
  for ax, (key, label) in zip(axes.flat, metrics):
    values = [report.seed_values(groups[name], key) for name in names]
    drawn = [x for x, v in enumerate(values) if len(v)]
    ax.boxplot([values[x] for x in drawn], positions=drawn, widths=0.6, whis=(0, 100),
               showfliers=False, medianprops={"color": "black"},
               boxprops={"color": "tab:gray"}, whiskerprops={"color": "tab:gray"},
               capprops={"color": "tab:gray"})
    for x in drawn:
      ax.scatter(np.full(len(values[x]), x) + np.linspace(-0.12, 0.12, len(values[x])),
                 values[x], color="tab:blue", **SEED_MARKER)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_title(label, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
  for ax in list(axes.flat)[len(metrics):]:
    ax.set_visible(False)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def rate_distortion_figure(groups, path, title, legend_title="setting", draw=True):
  """KL (rate) against reconstruction (distortion), nats per example, per setting and seed,
  with dotted −45° lines of equal ELBO (rate + distortion = −ELBO).

  Returns:
    `path`, or None when fewer than two settings have both numbers (autoencoders have no KL;
    one setting alone has no trade-off to show).
  """
  points = {name: (report.seed_values(g, "kl"), report.seed_values(g, "reconstruction"))
            for name, g in groups.items()}
  points = {k: v for k, v in points.items() if len(v[0]) and len(v[0]) == len(v[1])}
  if len(points) < 2 or not draw:
    return path if len(points) >= 2 else None
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7.8, 4.6))
  colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(points)))
  for colour, (name, (rate, distortion)) in zip(colours, points.items()):
    ax.scatter(rate, distortion, color=colour, **SEED_MARKER)
    ax.errorbar(rate.mean(), distortion.mean(),
                xerr=rate.std(ddof=1) if len(rate) > 1 else 0.0,
                yerr=distortion.std(ddof=1) if len(rate) > 1 else 0.0,
                fmt="s", color=colour, capsize=3, markersize=6, label=name)
  x0, x1 = ax.get_xlim()
  y0, y1 = ax.get_ylim()
  # Lines rate + distortion = c (−ELBO = c) through the plotted range, at round values of c.
  lows, highs = x0 + y0, x1 + y1
  step = float(10 ** np.floor(np.log10(max(highs - lows, 1e-9) / 4)))
  step *= 2 if (highs - lows) / step > 8 else 1
  for c in np.arange(np.ceil(lows / step) * step, highs, step):
    ax.plot([x0, x1], [c - x0, c - x1], linestyle=":", color="tab:gray", linewidth=0.8,
            zorder=1)
    x_text = min(x1, c - y0) - 0.02 * (x1 - x0)  # where the line leaves the bottom or right
    if x0 < x_text < x1 and y0 < c - x_text < y1:
      ax.text(x_text, c - x_text, f"ELBO {-c:g}", fontsize=7, color="tab:gray", ha="right",
              va="bottom")
  ax.set_xlim(x0, x1)
  ax.set_ylim(y0, y1)
  ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)), nats")
  ax.set_ylabel("distortion: reconstruction −log p(x|z), nats")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(title=f"{legend_title}:\nmean ± sd over seeds\n(dots: seeds)", fontsize=8,
            title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  fig.tight_layout()
  return _save(fig, path)


def information_heatmap(information, factor_names, path, title, latent_labels=None,
                        mig_per_factor=None, inactive=(), vmax=None):
  """The latent × factor mutual information (nats) as a heat map, MIG of each factor below.

  Args:
    information: [D, K] I(z_j; v_k) in nats.
    factor_names: the K factor names.
    path: the PNG to write.
    title: the figure's title.
    latent_labels: D row labels (e.g. "z3 (KL 2.1)"); default z0..z{D-1}.
    mig_per_factor: K gaps, shown in the column labels.
    inactive: the rows of latents the decoder does not use (KL at most the active threshold):
      drawn grey and labelled, since the binned information of their posterior means is
      scale-free and can be large although they carry nothing to the decoder.
    vmax: the top of the colour scale, the same for every heat map of a report (default:
      this map's largest value).
  """
  plt = _pyplot()
  information = np.asarray(information, np.float64)
  d, k = information.shape
  inactive = sorted(set(int(j) for j in inactive))
  fig, ax = plt.subplots(figsize=(1.3 * k + 2.8, 0.36 * d + 1.9))
  top = float(vmax) if vmax is not None else (information.max() if information.size else 1.0)
  shown = np.ma.masked_array(information, mask=np.zeros_like(information, bool))
  shown.mask[inactive, :] = True
  image = ax.imshow(shown, cmap="magma", aspect="auto", vmin=0.0, vmax=max(top, 1e-9))
  if inactive:
    grey = np.ma.masked_array(np.ones_like(information), mask=True)
    grey.mask[inactive, :] = False
    ax.imshow(grey, cmap="Greys", aspect="auto", vmin=0.0, vmax=4.0)
  columns = [f"{name}\nMIG {gap:.2f}" for name, gap in zip(factor_names, mig_per_factor)] \
      if mig_per_factor is not None else list(factor_names)
  ax.set_xticks(range(k), columns, fontsize=8)
  labels = list(latent_labels or [f"z{j}" for j in range(d)])
  labels = [f"{label} inactive" if j in inactive else label for j, label in enumerate(labels)]
  ax.set_yticks(range(d), labels, fontsize=8)
  for j in inactive:
    ax.get_yticklabels()[j].set_color("tab:gray")
  ax.set_xlabel("ground-truth factor")
  ax.set_ylabel("latent (posterior mean)")
  for j in range(d):
    for i in range(k):
      ax.text(i, j, f"{information[j, i]:.2f}", ha="center", va="center", fontsize=6,
              color="dimgray" if j in inactive else
              "white" if information[j, i] < 0.6 * top else "black")
  fig.colorbar(image, ax=ax, label="mutual information I(z_j; v_k), nats")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return _save(fig, path)
