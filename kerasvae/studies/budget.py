"""The budget study: one convolutional β-VAE per seed on dSprites, scored as it trains.

Each setting of the study is a training budget (images seen); a longer budget continues the
shorter one's training of the same seed from its kept checkpoint (`core.continue_training`),
so every seed is one training scored at 0.1 M, 0.3 M, 1 M and 3 M images, not four.

References:
  [1]: Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
       Disentangled Representations. ICML 2019. (disentanglement_lib: 300,000 steps of
       batch 64 per model.)
  [2]: Higgins et al. β-VAE: Learning Basic Visual Concepts with a Constrained Variational
       Framework. ICLR 2017.
"""

import numpy as np

from kerasvae import viz
from kerasvae.config import ConfigError
from kerasvae.data import reader
from kerasvae.studies import core
from kerasvae.studies import figures as study_figures
from kerasvae.studies import report
from kerasvae.studies.report import fmt

REFERENCE_EXAMPLES = 300_000 * 64  # disentanglement_lib's budget per model [1]
# A factor counts as encoded at a budget when, for every seed, some latent's posterior mean
# carries at least this share of the factor's entropy (binned mutual information I(z_j; v_k)
# over H(v_k), the normalisation MIG uses).
ENCODED_SHARE = 0.2
CURVE_METRICS = (("reconstruction", "reconstruction, nats", False),
                 ("kl", "KL, nats", None), ("active_units", "active units", None))


def check_budget(trials):
  """ConfigError unless the settings form one growing training per seed.

  Every setting must differ from the previous one only in train.epochs (more of them), with a
  constant learning rate and no early stopping (a continued training then equals one long
  training), and keep its final checkpoint for the next budget to continue from.
  """
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  by_seed = {}
  for trial in trials:
    by_seed.setdefault(trial.seed, []).append(trial)
  for seed_trials in by_seed.values():
    for previous, trial in zip(seed_trials, seed_trials[1:]):
      if trial.config.train.epochs <= previous.config.train.epochs:
        raise ConfigError(
            f"Expected each budget of the study to train more epochs than the one before it. "
            f"Received: train.epochs={trial.config.train.epochs} in {trial.name!r} after "
            f"{previous.config.train.epochs} in {previous.name!r}")
      a, b = config_lib.to_dict(previous.config), config_lib.to_dict(trial.config)
      for c in (a, b):
        c["train"].pop("epochs")
        c["run"].pop("name")
      if a != b:
        keys = sorted(block for block in a if a[block] != b.get(block))
        raise ConfigError(
            f"Expected the budgets of the study to differ in train.epochs only (a longer budget "
            f"continues the shorter one's training). Received: other {', '.join(keys)} settings "
            f"between {previous.name!r} and {trial.name!r}")
  for trial in trials:
    t = trial.config.train
    if t.lr_schedule != "constant" or t.early_stopping_patience or not t.keep_final_checkpoint:
      raise ConfigError(
          f"Expected train.lr_schedule=constant, train.early_stopping_patience=0 and "
          f"train.keep_final_checkpoint=true in the budget study (each budget continues the "
          f"previous one's training). Received: lr_schedule={t.lr_schedule}, "
          f"early_stopping_patience={t.early_stopping_patience}, keep_final_checkpoint="
          f"{str(t.keep_final_checkpoint).lower()} in {trial.name!r}")


def images_seen(trial):
  """Training images the trial's model has seen: epochs × steps × batch."""
  return trial.epochs_run * trial.steps_per_epoch * trial.config.train.batch_size


def best_shares(trial):
  """[K] for each factor the largest I(z_j; v_k) / H(v_k) over the latents, or None."""
  information = trial.metrics.get("mutual_information")
  entropy = trial.metrics.get("factor_entropy")
  if not isinstance(information, list) or not isinstance(entropy, list):
    return None
  information = np.asarray(information, np.float64)  # [D, K]
  return information.max(axis=0) / np.maximum(np.asarray(entropy, np.float64), 1e-12)


def encoded_from(budgets, shares):
  """The first budget from which every seed's best share stays at or above `ENCODED_SHARE`
  for this and every larger budget, or None. `shares`: [budgets][seeds]."""
  first = None
  for budget, values in zip(budgets, shares):
    if len(values) and min(values) >= ENCODED_SHARE:
      first = budget if first is None else first
    else:
      first = None
  return first


def spread_settles(budgets, spreads):
  """The budget after which a score's seed spread (sd) stops shrinking: the first budget whose
  next one's spread is not smaller; None when it shrinks to the last (or too few budgets)."""
  for i in range(len(budgets) - 1):
    if not (spreads[i + 1] < spreads[i]):
      return budgets[i]
  return None


def millions(n):
  return f"{n / 1e6:.2g} M" if n >= 1e5 else f"{n:,}"


def analyse_budget(context, trials):
  """Scores, per-factor information, reconstruction and KL against images seen, over seeds."""
  groups = report.by_setting(trials)
  settings = list(groups)
  budgets = [int(np.median([images_seen(t) for t in groups[s]])) for s in settings]
  seeds = sorted({t.seed for t in trials})
  scores = report.score_keys(trials)
  factor_names = next((t.metrics["factor_names"] for t in trials
                       if isinstance(t.metrics.get("factor_names"), list)), [])
  blocks = ["## Results",
            f"One training per seed ({', '.join(map(str, seeds))}); each budget's model is the "
            "same training's weights after that many images (the longer budget continued the "
            "shorter one from its checkpoint, with a constant learning rate, so the scores below "
            "follow each training as it goes). Mean ± standard deviation over the seeds; "
            "scores on the full factor grid, reconstruction and KL in nats per held-out image."]
  columns = ([(k, report.score_label(k), 3) for k in scores]
             + [(k, label, 1 if k != "active_units" else 1) for k, label, _ in CURVE_METRICS])
  rows = []
  for setting, budget in zip(settings, budgets):
    group = groups[setting]
    rows.append([setting, f"{budget:,}", str(len(group))]
                + [report.mean_sd(report.seed_values(group, k), d) for k, _, d in columns])
  blocks.append(report.table(["budget", "images seen", "seeds"] + [c[1] for c in columns], rows))

  # Per-factor information: does any latent carry the factor, and from which budget?
  shares = {}  # budget index -> [seeds][K]
  for i, setting in enumerate(settings):
    shares[i] = [s for s in (best_shares(t) for t in groups[setting]) if s is not None]
  findings = []
  if factor_names and all(shares[i] for i in shares):
    rows = []
    encoded = {}
    for k, name in enumerate(factor_names):
      per_budget = [[float(s[k]) for s in shares[i]] for i in range(len(settings))]
      encoded[name] = encoded_from(budgets, per_budget)
      rows.append([name] + [report.mean_sd(np.asarray(v), 2) for v in per_budget]
                  + [millions(encoded[name]) + " images" if encoded[name] else "not by "
                     + millions(budgets[-1]) + " images"])
    blocks += [
        "**Which factors the code carries.** For each factor, the largest share of its entropy "
        "that one latent's posterior mean carries, max_j I(z_j; v_k) / H(v_k) (binned mutual "
        "information, as MIG computes it), mean ± sd over seeds. A factor counts as *encoded* "
        f"from the first budget at which every seed reaches {ENCODED_SHARE:g} and stays there.",
        report.table(["factor"] + settings + ["encoded from"], rows)]
    done = [n for n in factor_names if encoded[n]]
    missing = [n for n in factor_names if not encoded[n]]
    findings.append(
        "**Factors encoded.** "
        + (", ".join(f"{n} from {millions(encoded[n])} images" for n in done) if done
           else f"none by {millions(budgets[-1])} images")
        + (f"; not encoded in every seed by {millions(budgets[-1])} images: "
           + ", ".join(missing) if missing else "; every factor is encoded by the largest budget")
        + f" (seeds {', '.join(map(str, seeds))})" + _fewer_seeds(groups, settings, seeds) + ".")
    path = _share_figure(context, budgets, shares, factor_names, seeds)
    blocks.append(report.figure(
        context, "Each factor's largest share of entropy in one latent against images seen "
        f"(dots: seeds; line: their mean; dashed: the {ENCODED_SHARE:g} threshold).", path))

  # Seed spread per score: where does it stop shrinking?
  spread_rows, spread_words = [], []
  labels = {k: label.split(",")[0] for k, label, _ in CURVE_METRICS}
  for key in (scores + [m[0] for m in CURVE_METRICS]) if len(settings) > 1 else []:
    sds = [float(np.std(report.seed_values(groups[s], key), ddof=1))
           if len(report.seed_values(groups[s], key)) > 1 else float("nan") for s in settings]
    if not np.all(np.isfinite(sds)):
      continue
    settles = spread_settles(budgets, sds)
    spread_rows.append([labels.get(key) or report.score_label(key)] + [fmt(v, 3) for v in sds]
                       + [millions(settles) + " images" if settles
                          else "shrinks to the last budget"])
    if key in scores:
      spread_words.append(f"{report.score_label(key)} "
                          + (f"after {millions(settles)}" if settles else "not by the last budget"))
  if spread_rows:
    blocks += ["**Seed spread.** Standard deviation over seeds at each budget, and the budget "
               "after which it stops shrinking (the next budget's spread is not smaller).",
               report.table(["number"] + settings + ["stops shrinking after"], spread_rows)]
    findings.append("**Where the seeds' spread settles.** " + "; ".join(spread_words) + ".")

  path = _curve_figure(context, groups, settings, budgets, scores)
  if path:
    blocks.append(report.figure(
        context, "Scores, reconstruction, KL and active units against images seen (log scale; "
        "dots: seeds, line: their mean).", path))
  path = _reconstruction_figure(context, groups, settings, budgets, seeds[0])
  if path:
    blocks.append(report.figure(
        context, f"Seed {seeds[0]}'s reconstructions of the same held-out images at each "
        "budget (top row: the images).", path))
  for trial in groups[settings[-1]]:
    info = trial.metrics.get("mutual_information")
    if isinstance(info, list) and factor_names:
      kl = trial.metrics.get("kl_per_dim") or [float("nan")] * len(info)
      path = study_figures.information_heatmap(
          info, factor_names, context.figure_path(f"information_seed_{trial.seed}"),
          f"I(z; factor) after {millions(budgets[-1])} images, seed {trial.seed}",
          latent_labels=[f"z{j} (KL {v:.1f})" for j, v in enumerate(kl)],
          mig_per_factor=trial.metrics.get("mig_per_factor"))
      blocks.append(report.figure(
          context, f"Latent × factor mutual information after the largest budget, seed "
          f"{trial.seed}: the rows are latents with their KL (nats); a latent with KL near 0 "
          "is unused by the decoder, however its mean correlates with a factor.", path))
  blocks += ["## What the numbers say", "\n\n".join(findings), literature(budgets, scores)]
  return blocks


def _fewer_seeds(groups, settings, seeds):
  """'; the 1 M budget: seed 0 only' for each budget whose other seeds are pending: a factor
  counts as encoded there on the seeds that have it."""
  short = [(s, sorted(t.seed for t in groups[s])) for s in settings
           if len(groups[s]) < len(seeds)]
  return "".join(f"; the {s} budget: {report.seed_phrase(have)} only, the others pending"
                 for s, have in short)


def literature(budgets, scores):
  """Our budgets beside disentanglement_lib's, and what can be compared."""
  largest = budgets[-1]
  return (f"**Against the literature.** Locatello et al. (2019) train each model for "
          f"300,000 steps of 64 images ({REFERENCE_EXAMPLES:,} images) and report the "
          f"disentanglement scores of β-VAE and five other methods over 50 hyperparameter and "
          f"seed combinations each; this study's largest budget is {largest:,} images "
          f"({100 * largest / REFERENCE_EXAMPLES:.1f} % of theirs). Their published "
          "ranges are shown as violin plots in the paper, not as tables; the numbers to put "
          "beside ours are in docs/studies/README.md's disentanglement-full-mlp row (11.2 M "
          "images, an MLP), the closest budget this project has trained.")


def _share_figure(context, budgets, shares, factor_names, seeds):
  plt = study_figures._pyplot()  # pylint: disable=protected-access
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  x = np.asarray(budgets, np.float64)
  for k, name in enumerate(factor_names):
    values = [[s[k] for s in shares[i]] for i in range(len(budgets))]
    line, = ax.plot(x, [np.mean(v) for v in values], marker="o", label=name)
    for xi, v in zip(x, values):
      ax.scatter([xi] * len(v), v, s=10, color=line.get_color(), alpha=0.5)
  ax.axhline(ENCODED_SHARE, color="grey", linestyle="--", linewidth=1)
  ax.set_xscale("log")
  ax.set_xlabel("training images seen")
  ax.set_ylabel("max_j I(z_j; v_k) / H(v_k)")
  ax.set_ylim(0, 1)
  ax.legend(title="factor", fontsize=8)
  ax.set_title(f"Factors carried by one latent, seeds {', '.join(map(str, seeds))}", fontsize=10)
  fig.tight_layout()
  return study_figures._save(fig, context.figure_path("factor_information"))  # pylint: disable=protected-access


def _curve_figure(context, groups, settings, budgets, scores):
  keys = [(k, report.score_label(k)) for k in scores] + [(k, l) for k, l, _ in CURVE_METRICS]
  keys = [(k, l) for k, l in keys if any(len(report.seed_values(groups[s], k)) for s in settings)]
  if not keys:
    return None
  plt = study_figures._pyplot()  # pylint: disable=protected-access
  columns = min(4, len(keys))
  rows = -(-len(keys) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
  x = np.asarray(budgets, np.float64)
  for ax, (key, label) in zip(axes.flat, keys):
    values = [report.seed_values(groups[s], key) for s in settings]
    ax.plot(x, [v.mean() if len(v) else np.nan for v in values], marker="s", color="C0")
    for xi, v in zip(x, values):
      ax.scatter([xi] * len(v), v, s=10, color="C1", alpha=0.7)
    ax.set_xscale("log")
    ax.set_title(label, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("images seen", fontsize=8)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  fig.tight_layout()
  return study_figures._save(fig, context.figure_path("budget_curves"))  # pylint: disable=protected-access


def _reconstruction_figure(context, groups, settings, budgets, seed, n=12):
  """Rows: the held-out images, then one seed's reconstructions at each budget."""
  images = reader.load_split(context.examples_dir, "eval", limit=200)["image"]
  if len(images) == 0:
    return None
  # Spread over the held-out split (its first images are neighbours on the factor grid).
  picks = images[np.linspace(0, len(images) - 1, n).astype(int)]
  rows, labels = [viz.image_grid(picks, ncols=n)], ["images"]
  for setting, budget in zip(settings, budgets):
    trial = next((t for t in groups[setting] if t.seed == seed), None)
    if trial is None:
      continue
    model = core.load_trial_model(trial)
    rows.append(viz.image_grid(np.asarray(model.reconstruct(picks)), ncols=n))
    labels.append(f"{millions(budget)} images")
  path = context.figure_path("reconstructions_by_budget")
  viz.save_png(viz.labelled_rows(rows, labels, title=f"Reconstructions, seed {seed}"), path)
  return path
