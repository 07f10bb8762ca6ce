"""The disentanglement study: a convolutional β-VAE on dSprites for several β.

References:
  [1]: Higgins et al. β-VAE: Learning Basic Visual Concepts with a Constrained
       Variational Framework. ICLR 2017. (β-VAE score: 99.23% for β = 4,
       61.58% for the plain VAE on dSprites.)
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised
       Learning of Disentangled Representations. ICML 2019. (disentanglement_lib:
       300,000 steps of batch 64 per model.)
"""

import numpy as np

from kerasvae import viz
from kerasvae.data import reader
from kerasvae.metrics import registry as metric_registry
from kerasvae.studies import core
from kerasvae.studies import figures as study_figures
from kerasvae.studies import report
from kerasvae.studies.report import fmt

PAPER_SCORES = {1.0: 61.58, 4.0: 99.23}  # β-VAE score (%) in [1], Table 1
REFERENCE_EXAMPLES = 300_000 * 64  # disentanglement_lib's budget per model [2]
METRIC_COLUMNS = tuple((key, metric_registry.title(key), digits) for key, digits in (
    ("beta_vae_score", 3), ("beta_vae_score_active", 3), ("factor_vae_score", 3),
    ("factor_vae_score_active", 3), ("mig", 3), ("mig_active", 3), ("reconstruction", 1),
    ("kl", 2), ("active_units", 0)))


def analyse_disentanglement(context, trials):
  """Traversals of every latent per trial; disentanglement scores and KL per dimension.

  Trials with the same β are its seeds (a study varies `train.seed` between them): the
  findings compare the means over seeds, with the spread between seeds as the uncertainty.
  """
  groups = {}  # β -> its trials (seeds), in the config's order
  for trial in trials:
    groups.setdefault(trial.config.model.vae.kl_weight, []).append(trial)
  seeded = any(len(g) > 1 for g in groups.values())
  # Traversals start from the code of the middle image (after a short training the prior's
  # mean, z = 0, often decodes to an empty canvas, and rows swept from there only blink).
  seed_image = middle_image(context.examples_dir)
  scale = information_scale(trials)
  figures = []
  for trial in trials:
    core.write_study_scalars(trial, {k: v for k, v in trial.metrics.items()
                                     if k in dict((c[0], c) for c in METRIC_COLUMNS)})
    beta = trial.config.model.vae.kl_weight
    label = f"β = {beta:g}" + (f", seed {trial.config.train.seed}" if seeded else "")
    stem = f"beta_{beta:g}" + (f"_seed_{trial.config.train.seed}" if seeded else "")
    figures += trial_figures(context, trial, label, stem, seed_image, vmax=scale)
  latent_dim = trials[0].config.model.latent_dim
  columns = METRIC_COLUMNS
  rows = []
  for t in trials:
    kl = sorted(t.metrics.get("kl_per_dim", []), reverse=True)
    rows.append([f"{t.config.model.vae.kl_weight:g}"] + ([str(t.config.train.seed)] if seeded else [])
                + [fmt(t.metrics.get(k), d) if d else fmt(t.metrics.get(k)) for k, _, d in columns]
                + [" ".join(f"{v:.1f}" for v in kl)])
  betas = list(groups)
  # Per β: the mean over its seeds (the value itself with one seed).
  m = lambda key: [float(np.mean([t.metrics.get(key, np.nan) for t in groups[b]]))  # noqa: E731
                   for b in betas]
  names = [f"β={b:g}" for b in betas]
  series = lambda key, d=3: ", ".join(f"{v:.{d}f} ({n})" for n, v in zip(names, m(key)))  # noqa
  c = trials[0].config
  findings = []
  if 1.0 in groups and 4.0 in groups:
    findings.append(_beta_4_against_1(
        groups[1.0], groups[4.0],
        f"the FactorVAE score is {series('factor_vae_score')} and MIG {series('mig')}"))
  over_seeds = " (means over seeds)" if seeded else ""
  best_mig = np.nanmax([t.metrics.get("mig", np.nan) for t in trials])  # of any one trial
  if len(betas) > 1:
    changes = (f"The KL per image{over_seeds} {_word(m('kl'))} with β ({series('kl', 1)} nats) "
               f"and the reconstruction error {_word(m('reconstruction'))} "
               f"({series('reconstruction', 1)})")
  else:  # a study run for one β (e.g. one trial at a time): no trend to name
    changes = (f"The KL per image{over_seeds} is {series('kl', 1)} nats and the reconstruction "
               f"error {series('reconstruction', 1)}")
  findings.append(
      f"**What β did.** {changes}; active units: "
      + ", ".join(f"{a:.3g} of {latent_dim} ({n})" for n, a in zip(names, m("active_units")))
      + ". A larger β forces the posterior towards the factorised prior, so fewer latents "
      "stay in use, each carrying a larger share of the information. In the traversals below, "
      "a disentangled latent moves one thing at a time (only x, only y, only the scale); "
      + ("every MIG here is below 0.1, so no latent carries a factor alone: expect rows that "
         "move the sprite diagonally or make it jump, x and y mixed." if best_mig < 0.1 else
         f"the best MIG, {best_mig:.2f}, says some latents come close to that."))
  if len(betas) > 1:
    findings.append(f"**The scores agree?** The best MIG{over_seeds} is at "
                    f"{best_beta(groups, 'mig')}; the best β-VAE score at "
                    f"{best_beta(groups, 'beta_vae_score')} and the best FactorVAE score at "
                    f"{best_beta(groups, 'factor_vae_score')}.")
  learning = report.still_learning({f"β = {b:g}": groups[b] for b in betas}, "β")
  if learning:
    findings.append("\n\n".join(learning))
  ev = c.evaluate
  seeds = sorted({t.config.train.seed for t in trials})
  text = [
      "## Results",
      "One VAE per β (kl_weight)" + (f" and training seed ({', '.join(map(str, seeds))}: "
                                      "initialisation and batch order)" if seeded else "")
      + f": {report.model_sentence(c)}, {latent_dim} latent dimensions.",
      report.table(["β"] + (["seed"] if seeded else []) + [col[1] for col in columns]
                   + ["KL per dim, sorted"], rows),
      "β-VAE score [Higgins et al. 2017]: accuracy of a linear classifier predicting which "
      "factor two batches of images share from their mean absolute code difference. FactorVAE "
      "score [Kim & Mnih 2018]: accuracy of a majority-vote classifier from the latent with the "
      "least normalised variance. MIG [Chen et al. 2018]: the gap in mutual information between "
      "the two latents most informative about each factor, over the factor's entropy. Scores "
      f"use {ev.disentanglement_train_points:,} training and {ev.disentanglement_eval_points:,} "
      "evaluation points (disentanglement_lib uses 10,000 and 5,000). Reconstruction and KL are "
      "nats per held-out image.",
  ]
  if seeded:
    summary = [[f"{b:g}", str(len(groups[b]))] + [
        _mean_sd([t.metrics.get(k, np.nan) for t in groups[b]], d or 1)
        for k, _, d in columns] for b in betas]
    text += ["Mean ± standard deviation over the seeds:",
             report.table(["β", "seeds"] + [col[1] for col in columns], summary)]
  text += [
      "## What the numbers say", "\n\n".join(findings), literature_budget(trials),
      "## Figures",
  ] + figures
  return text


def literature_budget(trials):
  """The paragraph setting the trials' training budget against disentanglement_lib's [2]."""
  c = trials[0].config
  examples_seen = [t.epochs_run * t.steps_per_epoch * c.train.batch_size for t in trials]
  # Training images per second over all trials (train_seconds includes the per-epoch evals).
  rate = sum(examples_seen) / max(1e-9, sum(t.train_seconds for t in trials))
  return (f"**Budget against the literature.** Each trial saw about {max(examples_seen):,} "
          f"images ({100 * max(examples_seen) / REFERENCE_EXAMPLES:.1f}% of "
          f"disentanglement_lib's 300,000 steps × 64 = {REFERENCE_EXAMPLES:,} per model) on "
          f"{_data_extent(c)}. At the {rate:,.0f} images per second this network trained at "
          f"here (2 CPU cores), the literature's budget is about "
          f"{REFERENCE_EXAMPLES / rate / 3600:.1f} hours per model "
          f"({len(trials) * REFERENCE_EXAMPLES / rate / 3600:.1f} hours for the {len(trials)} "
          f"trial{'s' if len(trials) > 1 else ''}), so this study is "
          "a budgeted version: its scores are those of under-trained models.")


def information_scale(trials):
  """The top of the heat maps' colour scale: the largest I(latent; factor) of any trial, so
  every heat map of a report shares one scale."""
  values = [np.max(t.metrics["mutual_information"]) for t in trials
            if t.metrics.get("mutual_information")]
  return float(max(values)) if values else None


def inactive_latents(trial):
  """The latents with KL at most `evaluate.active_latent_kl` (the evaluate step's threshold)."""
  kl = trial.metrics.get("kl_per_dim") or []
  threshold = trial.config.evaluate.active_latent_kl
  return [j for j, value in enumerate(kl) if value <= threshold]


def trial_figures(context, trial, label, stem, seed_image, vmax=None):
  """One trial's latent traversals and, when its MIG wrote them, the latent × factor mutual
  information, as report blocks.

  Args:
    context: the `StudyContext` (figures are written into its figure folder).
    trial: a finished trial of a model with a posterior, scored on data with factors.
    label: how the captions name the trial ("β = 4, seed 1").
    stem: the figures' file stem ("beta_4_seed_1": `traversals_<stem>.png`).
    seed_image: [1, H, W, C], the image whose code the traversals start from.
    vmax: the heat map's colour scale top, shared by the report's maps (`information_scale`).
  """
  model = core.load_trial_model(trial)
  figures = []
  kl = trial.metrics.get("kl_per_dim", [float("nan")] * model.latent_dim)
  inactive = inactive_latents(trial)
  threshold = trial.config.evaluate.active_latent_kl
  carried = factor_carried(trial.metrics, threshold)
  # Rows sorted by KL (the informative latents first), each named by the factor it carries.
  order = sorted(range(model.latent_dim), key=lambda j: -np.nan_to_num(kl[j], nan=-1.0))
  path = context.figure_path(f"traversals_{stem}")
  decode = lambda z, m=model: m.decode_mean(z.astype(np.float32)).numpy()  # noqa: E731
  base = model.encode_mean(seed_image).numpy()[0]
  viz.traversal_figure(decode, model.latent_dim, path, base=base, num_steps=9, span=3.0,
                       dims=order, annotations=[
                           f"KL {kl[j]:.2f}\n" + ("inactive" if j in inactive else
                                                  carried[j] if carried else "")
                           for j in order],
                       scale=1, title=f"{label}: each row sweeps one latent from -3 to +3",
                       faded=inactive)
  figures.append(report.figure(
      context, f"{label}: latent traversals from the code of the middle image (every factor "
      "at its middle value, the sprite at the centre). Each row sets one latent to -3 ... +3 "
      "and keeps the others at that image's posterior mean; rows are sorted by the latent's "
      f"KL in nats; an inactive latent (KL at most {threshold:g}, `evaluate.active_latent_kl`) "
      "is faded and labelled *inactive*: the decoder ignores it and its row does not change. "
      "Each active row names the factor it carries most information about (MIG's estimate; "
      f"'–' for one with less than {CARRIES_NATS} nats about every factor).", path))
  if "mutual_information" in trial.metrics and "factor_names" in trial.metrics:
    path = study_figures.information_heatmap(
        np.asarray(trial.metrics["mutual_information"])[order],
        trial.metrics["factor_names"], context.figure_path(f"information_{stem}"),
        f"{label}: I(latent; factor) on the MIG's codes",
        latent_labels=[f"z{j} (KL {kl[j]:.1f})" for j in order],
        mig_per_factor=trial.metrics.get("mig_per_factor"),
        inactive=[order.index(j) for j in inactive], vmax=vmax)
    figures.append(report.figure(
        context, f"{label}: mutual information between each latent (rows, by KL) and each "
        "ground-truth factor (columns, with that factor's MIG): the MIG's plug-in estimate "
        f"from {trial.config.evaluate.disentanglement_train_points:,} codes cut into 20 bins. "
        "A disentangled code has one bright cell per row and per column. Inactive latents "
        f"(KL at most {threshold:g}) are greyed: their binned information is scale-free, so "
        "they can score although the decoder ignores them; the `_active` scores leave them "
        "out. One colour scale for every heat map of the report.",
        path))
  return figures


CARRIES_NATS = 0.05  # a latent with less information about every factor carries none
ACTIVE_KL = 0.01  # nats: a latent with less KL is unused (its MI is the estimator's bias)


def factor_carried(metrics, active_kl=ACTIVE_KL):
  """The factor each latent carries most information about, from the MIG's
  `mutual_information` [D][K] and `factor_names`; '–' for an unused latent (KL below
  `active_kl`) or one below CARRIES_NATS about every factor; [] without them."""
  information, names = metrics.get("mutual_information"), metrics.get("factor_names")
  if not information or not names:
    return []
  information = np.asarray(information, np.float64)  # [D, K]
  kl = metrics.get("kl_per_dim") or [np.inf] * len(information)
  return [names[int(np.argmax(row))] if row.max() >= CARRIES_NATS and kl[j] >= active_kl
          else "–" for j, row in enumerate(information)]


def best_beta(groups, key):
  """Which β has the best mean of `key` over its seeds, and whether that is a ranking.

  Args:
    groups: {β: [trials of that β, one per seed]}.
    key: a metric of the trials, higher is better.

  Returns:
    "β=8", or with several seeds "β=8 (every seed above every other β's)" or "β=8 (its seeds
    overlap with those of β = 1, 4: no ranking)"; "β=4 and 8 (tied)" when the means agree to
    3 decimals.
  """
  scores = {b: np.array([t.metrics.get(key, np.nan) for t in trials], dtype=float)
            for b, trials in groups.items()}
  means = {b: round(float(np.mean(s)), 3) for b, s in scores.items()}
  finite = [v for v in means.values() if np.isfinite(v)]
  if not finite:
    return "no β (not measured)"
  tied = [b for b, v in means.items() if v == max(finite)]
  if len(tied) > 1:
    return f"β={' and '.join(f'{b:g}' for b in tied)} (tied)"
  top = tied[0]
  if len(scores[top]) < 2:
    return f"β={top:g}"
  others = [b for b in scores if b != top and len(scores[b]) > 1]
  tests = [report.welch(scores[top], scores[b]) for b in others]
  adjusted = report.holm([t["p_value"] for t in tests])
  undetected = [f"{b:g}" for b, t, p in zip(others, tests, adjusted)
                if not (p < report.ALPHA and t["difference"] > 0)]
  if not undetected:
    return f"β={top:g} (above every other β: Welch, Holm-corrected)"
  return (f"β={top:g} (no difference from β = {', '.join(undetected)} detected by the "
          "Holm-corrected Welch tests: no ranking)")


def _beta_4_against_1(plain, beta4, other_scores):
  """The finding comparing β = 4 with β = 1 (the plain VAE), over seeds when there are any.

  Args:
    plain, beta4: the trials (seeds) of β = 1 and β = 4.
    other_scores: the sentence giving the other scores, used with one seed per β.
  """
  score = lambda ts, key="beta_vae_score": np.array([t.metrics.get(key, np.nan)  # noqa: E731
                                                     for t in ts], float)
  s1, s4 = score(plain), score(beta4)
  text = (f"**β = 4 against the plain VAE.** Our β-VAE score is {100 * s4.mean():.1f}% for "
          f"β = 4 and {100 * s1.mean():.1f}% for β = 1 (the paper: {PAPER_SCORES[4.0]:.0f}% "
          f"and {PAPER_SCORES[1.0]:.0f}%)")
  if len(s1) == 1 or len(s4) == 1:
    # The error over evaluation points of one model says nothing of the spread between
    # training seeds, which is as large as the β effect (Locatello et al. 2019): no verdict.
    return (f"{text}, one training seed each: whether this budget separates the two cannot be "
            f"told from one seed (train three: study.seeds); {other_scores}.")
  # With seeds: Welch's test of β = 4 against β = 1 on each score, Holm-corrected over the 3.
  keys = tuple((key, metric_registry.title(key))
               for key in ("beta_vae_score", "factor_vae_score", "mig"))
  tests = [report.welch(score(beta4, key), score(plain, key)) for key, _ in keys]
  adjusted = report.holm([t["p_value"] for t in tests])
  verdicts, ahead, behind = [], 0, 0
  for (key, name), t, p in zip(keys, tests, adjusted):
    if p < report.ALPHA and t["difference"] > 0:
      verdict, ahead = "β = 4 higher", ahead + 1
    elif p < report.ALPHA:
      verdict, behind = "β = 1 higher", behind + 1
    else:
      verdict = "no difference detected"
    verdicts.append(f"{name} {_mean_sd(score(beta4, key), 3)} against "
                    f"{_mean_sd(score(plain, key), 3)} ({verdict}: Δ = {t['difference']:+.3f} "
                    f"[{t['low']:+.3f}, {t['high']:+.3f}], {report.p_equals('Holm p', p)})")
  if ahead:
    conclusion = (f"The tests call β = 4 higher than the plain VAE on {ahead} of the 3 scores, "
                  "in the paper's direction" + (f", and lower on {behind}." if behind else "."))
  elif behind:
    conclusion = (f"The tests call the plain VAE higher on {behind} of the 3 scores, the other "
                  "way round from the paper.")
  else:
    conclusion = ("The tests detect no difference between β = 4 and the plain VAE on any "
                  "score at this budget (Welch, Holm-corrected over the 3 scores).")
  return (text + f", over {len(s4)} and {len(s1)} seeds. β = 4 against β = 1: "
          + "; ".join(verdicts) + ". " + conclusion)


def _mean_sd(values, digits):
  values = np.asarray(values, float)
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values, ddof=1):.{digits}f}"


def middle_image(examples_dir):
  """[1, H, W, C]: the image with every factor at its middle class (the first held-out image
  when the data has no factors)."""
  from kerasvae.steps import evaluate  # pylint: disable=import-outside-toplevel
  data = evaluate.ground_truth_data(reader.read_metadata(examples_dir))
  if data is None:
    return reader.load_split(examples_dir, "eval", limit=1, binarize_seed=None)["image"][:1]
  middle = np.array([[size // 2 for size in data.factor_sizes]], np.int64)
  return data.sample_observations_from_factors(middle, None)


def _grid_size(dsprites_config):
  """Images in the (possibly restricted) dSprites grid of an ingest config."""
  from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
  d = dsprites_config
  return int(np.prod([len(a) for a in dsprites.allowed_classes(
      d.shapes, d.scales, d.orientations, d.pos_x, d.pos_y)]))


def _data_extent(config):
  """'the full grid of 737,280 dSprites images' or '1,024 of the 737,280 dSprites images'."""
  from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
  d = config.ingest.data.dsprites
  full = int(np.prod(dsprites.FACTOR_SIZES))
  used = min(d.num_examples or full, _grid_size(d))
  if used == full:
    return f"the full grid of {full:,} dSprites images"
  return f"{used:,} of the {full:,} dSprites images"


def _word(values):
  return report.trend(values, 1e-3).replace("is not monotone", "changes non-monotonically")
