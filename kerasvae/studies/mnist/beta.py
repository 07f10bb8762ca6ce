"""The β study: traversals, 2-D manifolds, the KL per dimension and sample quality per KL
weight, and what a larger β buys with a larger code."""

import numpy as np

from kerasvae import viz
from kerasvae.studies import core
from kerasvae.studies import report
from kerasvae.studies.mnist.common import (ELBO_COLUMNS, SAMPLE_COLUMNS, _argbest, _cells,
                                           _classifier_note, _decode_fn, _grid, _series, _trend,
                                           _with_reference, sample_quality_text)


TRAVERSED_LATENTS = 4  # traversal rows per model in the β study: its most active latents


def most_active(kl_per_dim, limit):
  """The `limit` latent indices with the largest KL, largest first (ties: lower index)."""
  kl = np.nan_to_num(np.asarray(kl_per_dim, np.float64), nan=-1.0)
  return [int(i) for i in np.argsort(-kl, kind="stable")[:limit]]


def _beta_figures(context, trials):
  """Scores each β's prior samples into its trial's metrics and draws the traversals, the
  samples and (2-D codes) the manifolds; returns their report blocks."""
  s = context.settings
  trav_rows, trav_labels, manifolds, sample_panels = [], [], [], []
  num_steps = 11
  latent_dim = trials[0].config.model.latent_dim
  shown = min(latent_dim, TRAVERSED_LATENTS)  # traversal rows per β: its most active latents
  for trial in trials:
    model = core.load_trial_model(trial)
    beta = trial.config.model.vae.kl_weight
    samples = (core.score_prior_samples(context, trial, model) if s.sample_quality
               else model.sample(36, seed=s.seed).numpy())
    sample_panels.append((f"β = {beta:g}", _grid(samples[:36], 6)))
    core.write_study_scalars(trial, trial.metrics)
    decode = _decode_fn(model)
    kl = trial.metrics.get("kl_per_dim", [float("nan")] * model.latent_dim)
    dims = most_active(kl, shown) if shown < latent_dim else list(range(latent_dim))
    images = viz.traversal_images(decode, model.latent_dim, num_steps=num_steps, span=3.0,
                                  dims=dims)
    for axis, row in zip(dims, images):
      trav_rows.append(_grid(row, num_steps))
      trav_labels.append(f"β={beta:g}  z{axis}\nKL {kl[axis]:.2f}")
    if model.latent_dim == 2:
      manifolds.append((f"β = {beta:g}", viz.manifold_with_axes(decode, n=15)))
  trav_path = context.figure_path("traversals_by_beta")
  values = np.linspace(-3, 3, num_steps)
  others = "the other axis" if latent_dim == 2 else "the others"
  viz.save_png(viz.labelled_rows(trav_rows, trav_labels, column_labels=[f"{v:+.1f}" for v in values],
                                 title="Latent traversals: one axis swept over ±3 prior standard "
                                 f"deviations, {others} at 0"), trav_path)
  which = ("each row sweeps one latent axis" if shown == latent_dim else
           f"each row sweeps one of the {shown} latent axes with the largest KL (of "
           f"{latent_dim}), most active first,")
  figures = [report.figure(
      context, f"Latent traversals per KL weight β: {which} from -3 to +3 standard deviations "
      f"of the prior with {others} at 0; the label gives the axis's KL (nats).", trav_path)]
  samples_path = context.figure_path("samples_by_beta")
  viz.save_png(viz.side_by_side(sample_panels), samples_path)
  figures.append(report.figure(
      context, "Prior samples z ~ N(0, I) decoded (decoder means), one panel per β, the same "
      "random seed for every panel.", samples_path))
  if manifolds:
    manifold_path = context.figure_path("manifolds_by_beta")
    viz.save_png(viz.side_by_side(manifolds), manifold_path)
    figures.append(report.figure(
        context, "The 2-D latent manifold per β: the decoder's mean on a 15×15 grid of N(0, 1) "
        "quantiles (5% to 95%) of z0 (left to right) and z1 (bottom to top), the values on "
        "the axes.", manifold_path))
  return figures


def analyse_beta(context, trials):
  """Traversals and 2-D manifolds per KL weight; KL per dimension; sample quality."""
  s, w = context.settings, context.data_words
  latent_dim = trials[0].config.model.latent_dim
  figures = _beta_figures(context, trials)
  columns = ELBO_COLUMNS + (("kl_per_dim", f"KL per dim (z0..z{latent_dim - 1})", 2),)
  if s.sample_quality:
    columns += SAMPLE_COLUMNS
  rows = [[f"{t.config.model.vae.kl_weight:g}"] + _cells(t.metrics, columns) for t in trials]
  if s.sample_quality:
    _, reference_row = _with_reference(context, trials, SAMPLE_COLUMNS)
    rows.append(reference_row[:1] + ["–"] * (len(columns) - len(SAMPLE_COLUMNS))
                + reference_row[1:])
  betas = [t.config.model.vae.kl_weight for t in trials]
  names = [f"β={b:g}" for b in betas]
  m = lambda key: [t.metrics.get(key, float("nan")) for t in trials]  # noqa: E731
  kl, rec, active = m("kl"), m("reconstruction"), m("active_units")
  findings = [
      f"**The KL.** Raising the weight of the KL term {'squeezes' if _trend(kl, 0.1) == 'falls' else 'changes'} "
      f"the information the code carries: KL(q(z|x) || p(z)) is {_series(names, kl)} nats "
      f"per {w.noun} ({_trend(kl, 0.1)} with β). Per dimension: "
      + "; ".join(f"{n}: " + " / ".join(f"{v:.2f}" for v in t.metrics.get("kl_per_dim", []))
                  for n, t in zip(names, trials)) + ".",
      f"**The price.** The reconstruction term {_trend(rec, 0.5)}: {_series(names, rec)} nats, "
      f"and the held-out ELBO (the β = 1 bound, whatever β trained it) is "
      f"{_series(names, m('elbo'))}: the best bound comes from β={betas[_argbest(m('elbo'))]:g}"
      + (", the plain VAE, as it should: only β = 1 maximises the ELBO itself." if
         betas[_argbest(m('elbo'))] == 1 else "."),
      "**Used dimensions.** Active units: " + ", ".join(
          f"{int(a)} of {latent_dim} ({n})" for n, a in zip(names, active)) + "."
      + (f" At β={betas[active.index(min(active))]:g} "
         + (("the posterior has collapsed onto the prior" if kl[active.index(min(active))] < 0.05
             else "the posterior has almost collapsed onto the prior")
            + ": no dimension passes the activity threshold (total KL "
            f"{kl[active.index(min(active))]:.2f} nats), so the decoder ignores z and draws "
            "the same average image everywhere in its traversal rows and manifold."
            if min(active) == 0 else
            f"only {int(min(active))} of {latent_dim} dimension(s) stay in use: "
            + ("the other axis's traversal row does not change the image." if latent_dim == 2
               else "the traversal rows of the others do not change the image."))
         if min(active) < latent_dim else ""),
  ]
  if s.sample_quality:
    fd, grey, ent = m("frechet_distance"), m("grey_fraction"), m("class_entropy_bits")
    best = betas[_argbest(fd, higher=False)]
    blur = _trend(grey, 0.005)
    findings.append(
        f"**Samples.** The FD of prior samples is {_series(names, fd, 1)} and their grey-pixel "
        f"fraction {_series(names, grey, 3)} ({blur} with β"
        + (f"; a larger β gives blurrier images, since the code says less about which {w.kind}, "
           "in which style, to draw" if blur == "rises" else "") + "). "
        + (f"The best samples come from β={best:g}: a larger β pulls every q(z|x) towards the "
           "prior, so random prior points land nearer to codes the decoder was trained on, "
           "which here outweighs the blur." if best != betas[0] else
           f"The best samples come from the plain VAE (β={best:g}).")
        + f" The entropy of the predicted classes is {_series(names, ent)} bits (ten equal "
        "classes: 3.32)"
        + (": as β grows, fewer classes appear among the samples"
           + (f", and at β={betas[_argbest(ent, higher=False)]:g} every sample is read as the "
              f"same {w.kind}" if min(ent) < 0.05 else "") + "."
           if _trend(ent, 0.02) == "falls" else "."))
  text = [
      "## Results",
      report.table(["β (kl_weight)"] + [c[1] for c in columns], rows),
      f"ELBO, reconstruction and KL are nats per held-out {w.noun}; the ELBO is always the β = 1 "
      "bound −(reconstruction + KL), so it compares models trained with different β. KL per "
      "dim is the mean KL of each posterior coordinate to N(0, 1). IWAE log p(x) uses K = "
      f"{trials[0].metrics.get('iwae_samples', '?')}.",
  ]
  if s.sample_quality:
    text.append(sample_quality_text(w, s.num_samples) + _classifier_note(context))
  if latent_dim > 2:
    findings.append(_larger_code_answer(context, trials, latent_dim))
  text += ["## What the numbers say", "\n\n".join(findings), "## Figures"] + figures
  return text


def _larger_code_answer(context, trials, latent_dim):
  """The homework's question, what a larger β buys with a larger code, answered from every
  seed: Welch's test of the largest β against β = 1 on each number, Holm-corrected over them."""
  groups = report.by_setting(context.trials or trials)
  first, last = next(iter(groups)), list(groups)[-1]
  keys = ["active_units", "kl", "mutual_information_xz", "reconstruction", "elbo",
          "iwae_log_likelihood", "frechet_distance"]
  keys = [k for k in keys if len(report.seed_values(groups[first], k)) >= 2]
  digits = {"active_units": 1, "kl": 2, "mutual_information_xz": 2, "frechet_distance": 1,
            "reconstruction": 1, "elbo": 1, "iwae_log_likelihood": 1}
  found = report.direction_tests(groups, first, last, keys, digits)
  words = {"active_units": "active units", "kl": "KL", "mutual_information_xz": "I(x; z)",
           "reconstruction": "reconstruction cost", "elbo": "test ELBO",
           "iwae_log_likelihood": "IWAE log p(x)", "frechet_distance": "sample FD"}
  seeds = sorted({t.seed for t in groups[first]} & {t.seed for t in groups[last]})
  parts = [f"{words[k]} {report.mean_sd(report.seed_values(groups[first], k), digits[k])} → "
           f"{report.mean_sd(report.seed_values(groups[last], k), digits[k])} "
           f"({found[k]}: {found[k + '/text']})" for k in keys if k in found]
  used = {s: report.per_seed(groups, s, "active_units", 0) for s in groups}
  return (f"**What a larger β buys with a {latent_dim}-dimensional code.** From {first} to "
          f"{last}, over seeds {', '.join(map(str, seeds))} (Welch's test of {last} against "
          f"{first} on each number, Holm-corrected over the {len(parts)}): "
          + "; ".join(parts) + ". Active units per β: "
          + "; ".join(f"{s}: {v}" for s, v in used.items()) + ". " + _buys(found, last))


def _buys(found, last):
  """One sentence of what the tests above found, in words; nothing where they found nothing."""
  said = []
  if found.get("active_units") == "lower":
    said.append("switches latents off (fewer active units)")
  if found.get("mutual_information_xz") == "lower":
    said.append("makes the code carry less information about each image (I(x; z) falls)")
  if found.get("reconstruction") == "higher":
    said.append("costs reconstruction")
  if found.get("iwae_log_likelihood") == "lower" or found.get("elbo") == "lower":
    said.append("lowers the likelihood")
  if found.get("frechet_distance") in ("lower", "higher"):
    said.append("gives samples nearer the data (lower FD)" if found["frechet_distance"] == "lower"
                else "gives samples farther from the data (higher FD)")
  if not said:
    return ("The tests detect no difference between the two on these numbers; the "
            "traversals show what the latents encode.")
  return (f"So, at this code size, {last} " + ", ".join(said[:-1])
          + (" and " if len(said) > 1 else "") + said[-1]
          + "; the traversals show what the latents that stay in use encode.")
