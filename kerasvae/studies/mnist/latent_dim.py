"""The latent-dim study: prior samples, reconstructions, likelihood, used dimensions and
sample quality per latent size."""

import tensorflow as tf

from kerasvae import viz
from kerasvae.studies import core
from kerasvae.studies import report
from kerasvae.studies.mnist.common import (ELBO_COLUMNS, SAMPLE_COLUMNS, _argbest, _cells,
                                           _classifier_note, _eval_images, _grid, _series,
                                           _trend, _with_reference, sample_quality_text)


def _latent_dim_figures(context, trials):
  """Scores each size's prior samples into its trial's metrics and draws the samples and the
  reconstructions; returns their two paths."""
  w = context.data_words
  originals, _ = _eval_images(context, 10)
  panels, recon_rows, recon_labels = [], [_grid(originals, 10)], ["original"]
  for trial in trials:
    model = core.load_trial_model(trial)
    samples = core.score_prior_samples(context, trial, model)
    core.write_study_scalars(trial, trial.metrics)
    panels.append((f"latent_dim {model.latent_dim}", _grid(samples[:36], 6)))
    recon_rows.append(_grid(model.reconstruct(tf.constant(originals)).numpy(), 10))
    recon_labels.append(f"latent_dim {model.latent_dim}")
  samples_path = context.figure_path("samples_by_latent_dim")
  viz.save_png(viz.side_by_side(panels), samples_path)
  recon_path = context.figure_path("reconstructions_by_latent_dim")
  viz.save_png(viz.labelled_rows(recon_rows, recon_labels, title=f"Held-out {w.nouns} and their "
                                 "reconstructions (decoder mean of the posterior mean)"),
               recon_path)
  return samples_path, recon_path


def analyse_latent_dim(context, trials):
  """Prior samples and reconstructions per latent size; ELBO, IWAE, usage and sample quality."""
  s, w = context.settings, context.data_words
  samples_path, recon_path = _latent_dim_figures(context, trials)
  reference, reference_row = _with_reference(context, trials, SAMPLE_COLUMNS)
  columns = ELBO_COLUMNS + SAMPLE_COLUMNS
  rows = [[t.name] + _cells(t.metrics, columns) for t in trials]
  rows.append(reference_row[:1] + ["–"] * len(ELBO_COLUMNS) + reference_row[1:])
  sizes = [t.config.model.latent_dim for t in trials]
  names = [f"d={d}" for d in sizes]
  m = lambda key: [t.metrics.get(key, float("nan")) for t in trials]  # noqa: E731
  findings = []
  iwae, rec, kl = m("iwae_log_likelihood"), m("reconstruction"), m("kl")
  first, last = names[0], names[-1]
  findings.append(
      f"**Likelihood.** The held-out IWAE log-likelihood {_trend(iwae, 0.5)} with the latent "
      f"size: {_series(names, iwae)} nats; the best is d={sizes[_argbest(iwae)]}. The "
      f"reconstruction term is {_series(names, rec)} (best at "
      f"d={sizes[_argbest(rec, higher=False)]}) and the KL {_series(names, kl)} (largest at "
      f"d={sizes[_argbest(kl)]})"
      + (f": from {first} to {last} the code carries more information about each {w.noun} "
         f"(KL {kl[0]:.1f} → {kl[-1]:.1f} nats) and reconstructs it better "
         f"({rec[0]:.1f} → {rec[-1]:.1f})." if kl[-1] > kl[0] and rec[-1] < rec[0] else "."))
  # Claims about the sizes read every seed (context.trials), not the first alone.
  groups = report.by_setting(context.trials or trials)
  used = {t.setting: t for t in trials}
  most = max(((t.metrics.get("active_units", 0), t.seed, t.config.model.latent_dim)
              for t in context.trials or trials), default=(0, 0, 0))
  findings.append(
      "**Used dimensions.** Active units (dimensions whose posterior mean varies across "
      f"{w.nouns}, Cov > 0.01), seed by seed: "
      + "; ".join(f"{report.per_seed(groups, setting, 'active_units')} of "
                  f"{t.config.model.latent_dim}" for setting, t in used.items()) + ". "
      + (f"No model uses all of a large code: the most any seed uses is {int(most[0])} "
         f"(seed {most[1]}, d={most[2]}); the KL term switches the other latents off (their "
         "posterior mean no longer moves with the input). How many stay on varies with the "
         "seed, so the across-seed tests above, not one seed, say whether it still grows "
         "with the size." if sizes[-1] > most[0] + 1 else
         "Every size uses (nearly) all of its dimensions in every seed."))
  if s.sample_quality:
    fd, conf = m("frechet_distance"), m("classifier_confidence")
    grey, ent = m("grey_fraction"), m("class_entropy_bits")
    findings.append(
        f"**Sharpness.** The fraction of grey (blurred) pixels in prior samples is "
        f"{_series(names, grey, 3)} against {reference['grey_fraction']:.3f} for real {w.nouns}: "
        + (f"samples get sharper from {first} to {last}" if grey[-1] < grey[0] - 0.005 else
           f"samples get blurrier from {first} to {last}" if grey[-1] > grey[0] + 0.005 else
           f"sharpness hardly changes from {first} to {last}")
        + f" (sharpest at d={sizes[_argbest(grey, higher=False)]}). The reconstructions "
        + ("sharpen the same way (figure below)." if rec[-1] < rec[0] else
           "do not improve with the size.")
        + f" The classifier's confidence on the samples is {_series(names, conf, 3)} (real "
        f"{w.nouns}: {reference['classifier_confidence']:.3f})"
        + (f": the blurred samples of {first} are recognised more readily than the sharper "
           f"ones of larger codes, some of which are crisp strokes that form no clear {w.kind} "
           "(compare the sample grids)." if conf[0] > max(conf[1:]) and grey[0] > min(grey)
           else "."))
    spread = max(ent) - min(ent)
    findings.append(
        f"**Diversity.** The entropy of the predicted classes is {_series(names, ent)} bits "
        f"(real {w.nouns}: {reference['class_entropy_bits']:.2f}, ten equal classes: 3.32): "
        + (f"every size generates all ten {w.classes} in nearly equal proportions, so the class "
           "diversity hardly depends on the latent size" if spread < 0.1 and min(ent) > 3.0 else
           f"the class diversity is highest at d={sizes[_argbest(ent)]} and lowest at "
           f"d={sizes[_argbest(ent, higher=False)]}")
        + f". The FD, which counts blur, malformed {w.kinds} and missing variety (within and "
        f"across classes) together, is {_series(names, fd, 1)} (real {w.nouns}: "
        f"{reference['frechet_distance']:.1f}); the best samples by this measure come from "
        f"d={sizes[_argbest(fd, higher=False)]}.")
    findings.append(in_short(groups, trials[0].setting, trials[-1].setting, first, last, w))
  text = [
      "## Results",
      report.table(["latent size"] + [c[1] for c in columns], rows),
      "ELBO, reconstruction (negative log-likelihood of the Bernoulli decoder) and KL are "
      f"nats per {w.noun} (one posterior sample); IWAE log p(x) is the importance-weighted bound "
      f"with K = {trials[0].metrics.get('iwae_samples', '?')} on "
      f"{trials[0].metrics.get('iwae_examples', '?')} held-out {w.nouns} (higher is better).",
      sample_quality_text(w, s.num_samples) + _classifier_note(context),
      "## What the numbers say",
      "\n\n".join(findings),
      "## Figures",
      report.figure(context, "Prior samples z ~ N(0, I) decoded, one panel per latent size "
                    "(the same random seed).", samples_path),
      report.figure(context, f"Reconstructions of held-out {w.nouns}: the first row is the input, "
                    "each further row one latent size.", recon_path),
  ]
  return text


def in_short(groups, first_setting, last_setting, first, last, words):
  """The latent-dim study's summary from the smallest to the largest code over every seed:
  a direction only where Welch's test of the two sizes, Holm-corrected over the four
  numbers, finds one; each number seed by seed."""
  keys = ("grey_fraction", "frechet_distance", "class_entropy_bits", "classifier_confidence")
  digits = {"grey_fraction": 3, "frechet_distance": 1, "class_entropy_bits": 2,
            "classifier_confidence": 3}
  if first_setting not in groups or last_setting not in groups:
    return ""
  found = report.direction_tests(groups, first_setting, last_setting, keys, digits)
  words_for = {"grey_fraction": ("blurrier", "sharper", "grey pixels"),
               "frechet_distance": (f"farther from held-out {words.nouns}",
                                    f"closer to held-out {words.nouns}", "FD"),
               "class_entropy_bits": ("more diverse in classes", "less diverse in classes",
                                      "class entropy"),
               "classifier_confidence": ("more confidently recognisable",
                                         "less confidently recognisable", "confidence")}
  parts = []
  for key in keys:
    up, down, name = words_for[key]
    values = (f"{name} {report.per_seed(groups, first_setting, key, digits[key])} at {first}, "
              f"{report.per_seed(groups, last_setting, key, digits[key])} at {last}")
    verdict = found.get(key)
    if verdict is None:
      parts.append(f"{values} (one seed: no test)")
    elif verdict == "no difference detected":
      parts.append(f"no difference detected in {name} ({values}; {found[key + '/text']})")
    else:
      parts.append(f"{up if verdict == 'higher' else down} ({values}; {found[key + '/text']})")
  return (f"**In short.** From {first} to {last} (Welch's test of the two sizes over their "
          "seeds, Holm-corrected over these four numbers): samples are " + "; ".join(parts)
          + ".")
