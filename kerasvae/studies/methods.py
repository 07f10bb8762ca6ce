"""The methods study: unsupervised disentanglement methods side by side on dSprites.

Each trial is one method (a model kind with one hyperparameter setting) and one training
seed; the report compares the methods metric by metric, the spread between seeds as the
uncertainty, as [1] compares them (there over 50 models per method and data set).

References:
  [1]: Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
       Disentangled Representations. ICML 2019. (No method is consistently better than the
       others; the random seed and the hyperparameters matter more than the method.)
"""

from kerasvae.studies import core
from kerasvae.studies import disentanglement
from kerasvae.studies import figures as study_figures
from kerasvae.studies import report

# The numbers every method has besides its scores: (key, header, digits, higher is better).
MODEL_COLUMNS = (("elbo", "ELBO", 2, True), ("reconstruction", "reconstruction", 2, False),
                 ("kl", "KL", 2, None), ("active_units", "active units", 1, None))


def analyse_methods(context, trials):
  """A section per metric (mean ± sd per method, the pairs the seeds separate, the values per
  factor), a box plot per metric and method, findings, and every trial's traversals.

  Args:
    context: the `StudyContext`.
    trials: every trial (methods × seeds); a method is a trial's `setting`.

  Returns:
    The report's markdown blocks.
  """
  groups = report.by_setting(trials)
  scores = report.score_keys(trials)
  columns = [(k, report.score_label(k), 3, True) for k in scores] + list(MODEL_COLUMNS)
  columns = [c for c in columns if any(len(report.seed_values(g, c[0])) for g in groups.values())]
  per_factor = {key: report.per_factor_keys(trials, key) for key in scores}
  seeds = sorted({t.seed for t in trials})
  comparisons = _comparisons(groups, columns)
  for trial in trials:
    core.write_study_scalars(trial, {c[0]: trial.metrics[c[0]] for c in columns
                                     if c[0] in trial.metrics})
  blocks = ["## Each metric",
            f"One section per metric: each method's mean ± standard deviation (n − 1) over its "
            f"training {report.seed_phrase(seeds)}, its seeds' range, and the pairs of methods "
            f"the tests call different. {report.TEST_RULE} Here every pair of methods is "
            f"compared on every metric of these sections: {len(comparisons)} comparisons. "
            "Disentanglement scores are computed on the posterior means; ELBO, reconstruction "
            "and KL are nats per held-out image."]
  path = study_figures.seed_box_figure(
      groups, [(c[0], c[1] + (" ↑" if c[3] else " ↓" if c[3] is False else ""))
               for c in columns], context.figure_path("methods_box"),
      "Each method's training seeds, metric by metric")
  if path:
    blocks.append(report.figure(
        context, "One panel per metric, one box per method: the box spans the seeds' quartiles "
        "with the median as its line, the whiskers reach the lowest and highest seed, and the "
        "dots are the seeds (as Locatello et al. 2019 draw their methods' scores). ↑: higher "
        "is better, ↓: lower.", path))
  factor_panels = [(k, report.score_label(k)) for key in scores for k in per_factor[key]]
  num_factors = max((len(per_factor[key]) for key in scores), default=0)
  path = study_figures.seed_box_figure(groups, factor_panels,
                                       context.figure_path("methods_box_per_factor"),
                                       "Each method's training seeds, score by factor",
                                       columns=max(1, num_factors))
  if path:
    blocks.append(report.figure(
        context, "The scores the evaluate step gives per ground-truth factor (a row per score, "
        "a panel per factor), boxes and dots as above.", path))
  for key, label, digits, higher in columns:
    blocks += _metric_section(groups, key, label, digits, higher, per_factor.get(key, []),
                              comparisons)
  blocks += ["## What the numbers say",
             "\n\n".join(_findings(groups, scores, seeds, comparisons)),
             disentanglement.literature_budget(trials),
             "## Figures"]
  seed_image = disentanglement.middle_image(context.examples_dir)
  scale = disentanglement.information_scale(trials)
  seeded = len(seeds) > 1
  for trial in trials:
    label = trial.setting + (f", seed {trial.seed}" if seeded else "")
    stem = core.slug(trial.setting) + (
        f"_seed_{trial.seed}" if seeded else "")
    blocks += disentanglement.trial_figures(context, trial, label, stem, seed_image,
                                            vmax=scale)
  return blocks


def _comparisons(groups, columns):
  """Welch's test of every pair of methods on every column, Holm-corrected together; a score
  in the form the report ranks by only (`report.ranked_key`)."""
  trials = [t for g in groups.values() for t in g]
  ranked = {report.ranked_key(c[0], trials) for c in columns}
  return report.compare(groups, report.comparison_pairs(groups),
                        [c for c in columns if c[0] in ranked], "methods")


def _metric_section(groups, key, label, digits, higher, factor_keys, comparisons=None):
  """'### label': the per-method table, the separated pairs, the values per factor."""
  arrow = {True: " (higher is better)", False: " (lower is better)", None: ""}[higher]
  rows = []
  for name, group in groups.items():
    values = report.seed_values(group, key)
    rows.append([name, str(len(values)), report.mean_sd(values, digits),
                 (f"{values.min():.{digits}f} … {values.max():.{digits}f}" if len(values) > 1
                  else report.mean_sd(values, digits))])
  blocks = [f"### {label}{arrow}",
            report.table(["method", "seeds", "mean ± sd", "seeds' range"], rows),
            _separation_line(groups, key, digits, higher, comparisons)]
  if factor_keys:
    factors = [k.partition("/")[2] for k in factor_keys]
    blocks += [f"{label} per ground-truth factor (mean ± sd over the seeds):",
               report.table(["method"] + factors, [
                   [name] + [report.mean_sd(report.seed_values(group, k), digits)
                             for k in factor_keys] for name, group in groups.items()])]
  return blocks


def _separation_line(groups, key, digits, higher, comparisons=None):
  if len(groups) < 2:
    return f"Only {next(iter(groups))} is in this report: no other method to compare with."
  if max(len(g) for g in groups.values()) < 2:
    return ("One training seed per method: no difference here can be told from the spread "
            "between seeds, so no ranking is drawn.")
  if comparisons is None:
    comparisons = _comparisons(groups, [(key, key, digits, higher)])
  mine = [c for c in comparisons if c.key == key]
  pairs = [report.comparison_phrase(c, digits, higher) for c in mine if c.different]
  rest = [c for c in mine if not c.different]
  power = (f" (power: 80 % only for |Δ| ≥ {min(c.detectable for c in rest):.{digits}f})"
           if rest else "")
  if not pairs:
    return f"*No difference detected* between any pair of methods{power}: no ranking."
  return ("Different after the Holm correction: " + "; ".join(pairs) + "."
          + (f" No difference detected for the other {len(rest)} pairs{power}." if rest else ""))


def _findings(groups, scores, seeds, comparisons=None):
  """The findings: per score the best method by mean and whether its seeds beat every other
  method's; whether the scores agree; what the best-scoring methods pay in reconstruction."""
  if len(groups) < 2:
    return [f"**One method.** Only {next(iter(groups))} is in this report (the others are "
            "pending or were not run), so nothing is compared: the tables above give its "
            "numbers."]
  findings = []
  if len(seeds) < 2:
    findings.append("**One seed.** Each method was trained once, so the differences below "
                    "cannot be told from the spread between training seeds, which Locatello et "
                    "al. (2019) found as large as the differences between methods: no method "
                    "is called better than another. Train three seeds (study.seeds).")
  if comparisons is None:
    comparisons = _comparisons(groups, [(k, k, 3, True) for k in scores])
  best = {}
  for key in scores:
    leaders = _leaders(groups, key, 3)
    if not leaders:
      continue
    best[key] = leaders[0] if len(leaders) == 1 else f"{' and '.join(leaders)} (tied)"
    if len(seeds) < 2:
      continue
    if len(leaders) > 1:
      findings.append(f"**{report.score_label(key)}.** Highest mean: {best[key]}, to 3 "
                      "decimals: no method ahead.")
      continue
    top = leaders[0]
    beaten = [c.b if c.a == top else c.a for c in comparisons
              if c.key == key and c.different and top in (c.a, c.b)
              and (c.difference > 0) == (c.a == top)]
    others = len(groups) - 1
    if len(beaten) == others:
      verdict = "the corrected tests put it above every other method"
    elif beaten:
      verdict = (f"the corrected tests put it above {', '.join(beaten)} only; no difference "
                 f"detected from the other {others - len(beaten)}")
    else:
      verdict = "no difference from any other method detected: no ranking"
    findings.append(f"**{report.score_label(key)}.** Highest mean: {top} "
                    f"({report.mean_sd(report.seed_values(groups[top], key), 3)}); {verdict}.")
  if len(best) > 1:
    agree = ("Every score puts the same first by mean" if len(set(best.values())) == 1 else
             "The scores do not put the same method first by mean")
    findings.append(f"**Do the scores agree?** {agree}: "
                    + "; ".join(f"{report.score_label(k)}: {m}" for k, m in best.items())
                    + ". Locatello et al. (2019) found the β-VAE score, FactorVAE score, MIG "
                    "and DCI disentanglement strongly correlated on dSprites, and no method "
                    "consistently ahead of the others once the seeds' spread is counted.")
  reconstruction = _means(groups, "reconstruction")
  if reconstruction and best:
    cheapest = _leaders(groups, "reconstruction", 1, lowest=True)
    findings.append(
        "**At what cost.** Mean reconstruction error, nats per image: "
        + ", ".join(f"{name} {v:.1f}" for name, v in reconstruction.items())
        + (f"; the lowest is {cheapest[0]}'s" if len(cheapest) == 1 else
           f"; {' and '.join(cheapest)} tie for the lowest")
        + ". A method that scores higher by holding the code closer to the factorised prior "
        "pays for it here (the rate–distortion chart above).")
  findings += report.still_learning(groups, "method")
  return findings


def _means(groups, key):
  """{method: mean of `key` over its seeds}, for the methods that have it."""
  values = {name: report.seed_values(g, key) for name, g in groups.items()}
  return {name: float(v.mean()) for name, v in values.items() if len(v)}


def _leaders(groups, key, digits, lowest=False):
  """The methods with the highest (`lowest`: the lowest) mean of `key`, equal to `digits`
  decimals: one name, or the tied ones."""
  means = {name: round(v, digits) for name, v in _means(groups, key).items()}
  if not means:
    return []
  top = (min if lowest else max)(means.values())
  return [name for name, v in means.items() if v == top]
