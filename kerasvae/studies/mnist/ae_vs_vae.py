"""The ae-vs-vae study: do random latent points of an autoencoder, of noisy autoencoders (both
readings of the noise, and a sweep of its level) and of a VAE decode to data?"""

import dataclasses

import numpy as np
import tensorflow as tf

from kerasvae import models as models_lib
from kerasvae import viz
from kerasvae.data import reader
from kerasvae.studies import core
from kerasvae.studies import report
from kerasvae.studies.mnist.common import (SAMPLE_COLUMNS, _argbest, _cells, _classifier_note,
                                           _decode_fn, _eval_images, _grid, sample_quality_text)
from kerasvae.studies.report import fmt

MODEL_NAMES = {"autoencoder": "autoencoder", "noisy_autoencoder": "noisy autoencoder",
               "vae": "VAE"}
AE_SAMPLERS = (("uniform_box", "uniform over the code box"),
               ("gaussian", "Gaussian fitted to codes"))
# Relative differences of FD or reconstruction below this are called "about the same": each
# model is one training seed and each FD one set of samples.
NOTABLE_CHANGE = 0.1


def _noise_reading(trial):
  """'0.05·R per dimension' or '0.05·R in total' for a noisy autoencoder's trial."""
  m = trial.config.model.noisy_autoencoder
  return f"{m.noise_factor:g}·R " + ("per dimension" if m.noise_scale == "per_dimension"
                                     else "in total")


def _is_per_dimension(trial):
  m = trial.config.model
  return m.kind == "noisy_autoencoder" and m.noisy_autoencoder.noise_scale == "per_dimension"


def _trial_label(trial):
  """'autoencoder', 'VAE' or 'noisy AE (0.05·R per dimension)' / '(... in total)'."""
  if trial.config.model.kind != "noisy_autoencoder":
    return MODEL_NAMES[trial.config.model.kind]
  return f"noisy AE ({_noise_reading(trial)})"


def code_noise(model):
  """The code noise of an autoencoder in numbers; None for a VAE.

  With per-coordinate noise variance σ² = f·R and R the codes' mean squared
  norm over D latents: the noise's total variance is D·f·R, the mean
  signal-to-noise ratio per latent (R/D)/σ² = 1/(D·f), and a Gaussian channel
  with that noise and code energy R carries at most D/2·log2(1 + 1/(D·f)) bits.

  Returns:
    {"total_fraction", "per_dimension_fraction", "snr_per_dimension", "max_bits"};
    for the plain autoencoder the fractions are 0 and the others infinite.
  """
  if not isinstance(model, models_lib.Autoencoder):
    return None
  d = model.latent_dim
  per_dim = (model.noise_variance_fraction if isinstance(model, models_lib.NoisyAutoencoder)
             else 0.0)
  total = d * per_dim
  snr = 1.0 / total if total > 0 else float("inf")
  return {"total_fraction": total, "per_dimension_fraction": per_dim, "snr_per_dimension": snr,
          "max_bits": float(0.5 * d * np.log2(1.0 + snr))}


def _nearest_code_ratio(points, codes, rng):
  """Median distance from `points` to their nearest training code, over the median
  nearest-neighbour distance among training codes (1 = as close as codes are to each other)."""
  codes = np.asarray(codes, np.float64)
  probe = codes[rng.choice(len(codes), size=min(1000, len(codes)), replace=False)]

  def nearest(x, exclude_self):
    d2 = (np.sum(x ** 2, 1)[:, None] - 2 * x @ codes.T + np.sum(codes ** 2, 1)[None])  # [n, N]
    if exclude_self:
      d2[d2 < 1e-12] = np.inf
    return np.sqrt(np.maximum(d2.min(1), 0))

  typical = np.median(nearest(probe, True))
  return float(np.median(nearest(np.asarray(points, np.float64), False)) / max(typical, 1e-12))


def _change(new, old):
  """'closer' (lower by more than NOTABLE_CHANGE), 'farther' or 'same' for two FDs or errors."""
  if new < (1 - NOTABLE_CHANGE) * old:
    return "closer"
  if new > (1 + NOTABLE_CHANGE) * old:
    return "farther"
  return "same"


_RELATION = {"closer": "closer to the data than", "farther": "farther from the data than",
             "same": "about as close to the data as"}


def _noise_sentence(noise, d):
  return (f"the noise's total variance is {noise['total_fraction']:.3g}·R, "
          f"{noise['per_dimension_fraction']:.3g}·R in each of the {d} latents: a mean "
          f"signal-to-noise ratio of {noise['snr_per_dimension']:.3g} per latent, so the decoder "
          f"can receive at most {d}/2·log2(1 + {noise['snr_per_dimension']:.3g}) = "
          f"{noise['max_bits']:.1f} bits per code")


def _reading_finding(trial, noise, scores, ae, ae_rec, vae, vae_rec, d, words):
  """The answer for one reading of 'variance 0.05·R', from its measured numbers."""
  box, gauss = scores["uniform_box"], scores["gaussian"]
  box_change = _change(box["frechet_distance"], ae["uniform_box"]["frechet_distance"])
  gauss_change = _change(gauss["frechet_distance"], ae["gaussian"]["frechet_distance"])
  if box_change == gauss_change == "closer":
    answer = ("**Yes**: random latent points decode to images closer to the data than the "
              "plain autoencoder's with both samplers")
  elif box_change == gauss_change == "farther":
    answer = ("**No**: random latent points decode to images farther from the data than the "
              "plain autoencoder's with both samplers")
  elif box_change == gauss_change == "same":
    answer = ("**Hardly**: random latent points decode to images about as close to the data "
              f"as the plain autoencoder's (FD within {100 * NOTABLE_CHANGE:.0f}%) with both "
              "samplers")
  else:
    answer = (f"**It depends on the sampler**: box samples come out {_RELATION[box_change]} "
              f"the plain autoencoder's, samples of the fitted Gaussian "
              f"{_RELATION[gauss_change]} the plain autoencoder's")
  rec = trial.metrics.get("reconstruction")
  rec_change = _change(rec, ae_rec)
  rec_text = (f"reconstructs held-out {words.nouns} at {rec:.1f} nats against {ae_rec:.1f} for the "
              "plain autoencoder"
              + (f" and {vae_rec:.1f} for the VAE" if vae_rec is not None else "")
              + {"closer": " (better)", "same": " (about as well)",
                 "farther": f" ({rec / ae_rec:.1f}× the plain autoencoder's error"
                            + (", worse than the VAE" if vae_rec is not None and rec > vae_rec
                               else "") + ")"}[rec_change])
  vae_text = f"; VAE {vae['frechet_distance']:.1f}" if vae else ""
  return (f"**Code noise {_noise_reading(trial)}.** Read this way, {_noise_sentence(noise, d)}. "
          f"Does the noise make random points decode to data? {answer}: FD "
          f"{box['frechet_distance']:.1f} from the box and {gauss['frechet_distance']:.1f} from "
          f"the fitted Gaussian, against {ae['uniform_box']['frechet_distance']:.1f} and "
          f"{ae['gaussian']['frechet_distance']:.1f} for the plain autoencoder{vae_text}; grey "
          f"pixels {box['grey_fraction']:.3f} and class entropy {box['class_entropy_bits']:.2f} "
          f"bits for box samples (plain autoencoder {ae['uniform_box']['grey_fraction']:.3f}, "
          f"{ae['uniform_box']['class_entropy_bits']:.2f}). A box sample lies "
          f"{box['nearest_code_ratio']:.1f}× the code spacing from its nearest training code "
          f"(plain autoencoder {ae['uniform_box']['nearest_code_ratio']:.1f}×). The model "
          f"{rec_text}.")


def _sweep_finding(points, vae_fd, vae_rec):
  """Where code noise starts to help random samples and where it spoils reconstructions.

  `points` are (total_fraction, label, metrics, code_noise, trial) sorted by noise, the first
  the plain AE.
  """
  levels = [p[0] for p in points]
  names = ["none" if x == 0 else f"{x:g}·R" for x in levels]
  rec = [p[2]["reconstruction"] for p in points]
  parts = [f"**How much noise?** Against the noise's total variance ({', '.join(names)}; "
           "none is the plain autoencoder), the reconstruction error is "
           + ", ".join(f"{r:.1f}" for r in rec) + " nats"]
  for sampler, what in (("uniform_box", "box"), ("gaussian", "fitted-Gaussian")):
    fd = [p[2][f"{sampler}/frechet_distance"] for p in points]
    parts.append(f"the FD of {what} samples " + ", ".join(f"{v:.1f}" for v in fd))
  text = "; ".join(parts) + "."
  sentences = []
  for sampler, what in (("uniform_box", "box"), ("gaussian", "fitted-Gaussian")):
    fd = [p[2][f"{sampler}/frechet_distance"] for p in points]
    helped = [i for i in range(1, len(points)) if _change(fd[i], fd[0]) == "closer"]
    best = 1 + _argbest(fd[1:], higher=False)
    if helped:
      s = (f"{what[0].upper() + what[1:]} samples first come more than "
           f"{100 * NOTABLE_CHANGE:.0f}% closer to the data than without noise at "
           f"{names[helped[0]]} (FD {fd[helped[0]]:.1f} against {fd[0]:.1f})")
    else:
      s = (f"No noise level brings {what} samples more than {100 * NOTABLE_CHANGE:.0f}% closer "
           f"to the data than without noise (FD {fd[0]:.1f})")
    hurt = [i for i in range(1, len(points)) if _change(fd[i], fd[0]) == "farther"]
    if hurt:
      s += (f"; they first fall more than {100 * NOTABLE_CHANGE:.0f}% behind at "
            f"{names[hurt[0]]} (FD {fd[hurt[0]]:.1f})")
    s += f"; their best FD, {fd[best]:.1f}, is at {names[best]}"
    if vae_fd is not None:
      s += (f", {'better than' if fd[best] < vae_fd else 'behind'} the VAE's {vae_fd:.1f}")
    sentences.append(s + ".")
  worse = [i for i in range(1, len(points)) if _change(rec[i], rec[0]) == "farther"]
  over_vae = [i for i in range(1, len(points)) if vae_rec is not None and rec[i] > vae_rec]
  s = (f"Reconstructions first fall more than {100 * NOTABLE_CHANGE:.0f}% behind the noiseless "
       f"{rec[0]:.1f} nats at {names[worse[0]]} ({rec[worse[0]]:.1f} nats)" if worse else
       f"Reconstructions stay within {100 * NOTABLE_CHANGE:.0f}% of the noiseless {rec[0]:.1f} "
       "nats at every level tried")
  if vae_rec is not None:
    where = ("every noise level tried" if len(over_vae) == len(points) - 1 else
             ", ".join(names[i] for i in over_vae))
    s += (f"; the noisy autoencoder reconstructs worse than the VAE ({vae_rec:.1f} nats), whose "
          f"code is noisy too, at {where}" if over_vae else
          f"; none reconstructs worse than the VAE ({vae_rec:.1f} nats)")
  sentences.append(s + ".")
  return text + " " + " ".join(sentences)


def _sweep_figure(context, points, vae_fd, vae_rec, reference):
  """FD of random samples and reconstruction against the total code noise (log scale)."""
  w = context.data_words
  noisy = [p for p in points if p[0] > 0]
  x = [p[0] for p in noisy]
  ae = points[0][2]
  colors = {"uniform_box": "tab:blue", "gaussian": "tab:orange"}
  what = {"uniform_box": "box samples", "gaussian": "fitted-Gaussian samples"}
  per_dim = [p for p in noisy if _is_per_dimension(p[4])]
  panels = []
  if context.settings.sample_quality:
    lines, references = [], []
    for sampler in ("uniform_box", "gaussian"):
      lines.append({"x": x, "y": [p[2][f"{sampler}/frechet_distance"] for p in noisy],
                    "label": f"noisy AE, {what[sampler]}", "color": colors[sampler]})
      references.append({"y": ae[f"{sampler}/frechet_distance"], "color": colors[sampler],
                         "label": f"no noise, {what[sampler]}"})
    if vae_fd is not None:
      references.append({"y": vae_fd, "color": "tab:green", "label": "VAE prior samples"})
    references.append({"y": reference["frechet_distance"], "color": "black",
                       "label": f"real {w.nouns}"})
    for p in per_dim:
      lines.append({"x": [p[0]] * 2, "y": [p[2][f"{s}/frechet_distance"] for s in colors],
                    "label": f"{_noise_reading(p[4])} (= {p[0]:g}·R in total)", "marker": "s",
                    "linestyle": "none", "color": "tab:red"})
    panels.append({"title": "Random samples", "x_label": "total code noise variance / R",
                   "y_label": "Fréchet distance (lower is closer to data)", "log_x": True,
                   "lines": lines, "references": references})
  lines = [{"x": x, "y": [p[2]["reconstruction"] for p in noisy], "label": "noisy AE",
            "color": "tab:blue"}]
  for p in per_dim:
    lines.append({"x": [p[0]], "y": [p[2]["reconstruction"]], "marker": "s",
                  "linestyle": "none", "color": "tab:red",
                  "label": f"{_noise_reading(p[4])} (= {p[0]:g}·R in total)"})
  references = [{"y": ae["reconstruction"], "color": "tab:blue", "label": "no noise"}]
  if vae_rec is not None:
    references.append({"y": vae_rec, "color": "tab:green", "label": "VAE"})
  panels.append({"title": f"Reconstruction of held-out {w.nouns}", "log_x": True,
                 "x_label": "total code noise variance / R",
                 "y_label": f"-log p(x|z), nats per {w.noun} (lower is better)",
                 "lines": lines, "references": references})
  path = context.figure_path("noise_sweep_ae_vs_vae")
  viz.line_plot_figure(panels, path, title="Noisy autoencoder: code noise during training")
  return path


def _interpolate(context, trial, model, label, eval_images, eval_labels, pairs, rows, labels,
                 confidence):
  """Adds a model's interpolation rows between held-out image pairs and their confidence."""
  decode = _decode_fn(model)
  inner = []
  for a, b in pairs:
    za = model.encode_mean(tf.constant(eval_images[a:a + 1])).numpy()[0]
    zb = model.encode_mean(tf.constant(eval_images[b:b + 1])).numpy()[0]
    row = viz.interpolation_images(decode, za, zb, num_steps=10)
    inner.append(row[1:-1])
    row = np.concatenate([eval_images[a:a + 1], row, eval_images[b:b + 1]])
    rows.append(_grid(row, len(row)))
    words = context.data_words  # Fashion-MNIST's classes by name: "Trouser → Sneaker"
    labels.append(f"{label}\n{words.class_name(eval_labels[a])} → "
                  f"{words.class_name(eval_labels[b])}")
  if context.settings.sample_quality:
    from kerasvae.metrics import sample_quality  # pylint: disable=import-outside-toplevel
    _, probabilities = sample_quality.classifier_features(context.classifier,
                                                          np.concatenate(inner))
    confidence[label] = sample_quality.mean_confidence(probabilities)
    trial.metrics["interpolation/classifier_confidence"] = confidence[label]


def _sampler_codes(model, train_images):
  """The training codes the samplers are fitted to: those of the images the train step's
  `finalize` fitted `model.sample`'s Gaussian to (up to `finalize_examples`), so the
  `gaussian/…` numbers are the bare ones `model.sample` gives (schema rule
  `default_sampler_samples`)."""
  limit = model.finalize_examples or len(train_images)
  return model.encode_mean(tf.constant(train_images[:limit])).numpy()  # [N, D]


def _score_samplers(context, trial, train_images, eval_images, eval_labels, pairs):
  """A trial's sampler scores, code noise and interpolation confidence under the names the
  first seed's analysis gives them, without its figures: every seed holds the same keys."""
  s = context.settings
  model = core.load_trial_model(trial)
  kind = trial.config.model.kind
  noise = code_noise(model)
  if noise and kind == "noisy_autoencoder":
    trial.metrics.update({f"code_noise/{k}": v for k, v in noise.items()})
  codes = _sampler_codes(model, train_images)  # [N, D]
  rng = np.random.RandomState(s.seed)
  for sampler, _ in AE_SAMPLERS if kind != "vae" else (("prior", "prior N(0, I)"),):
    if sampler != "prior":
      model.fit_latent_sampler(codes, method=sampler)
    z = model.sample_latents(s.num_samples, seed=tf.constant([s.seed, 0])).numpy()
    scores = (core.score_images(context, model.decode_mean(tf.constant(z)).numpy())
              if s.sample_quality else {})
    scores["nearest_code_ratio"] = _nearest_code_ratio(z, codes, rng)
    trial.metrics.update({f"{sampler}/{key}": value for key, value in scores.items()})
  if not trial.full_only:
    _interpolate(context, trial, model, _trial_label(trial), eval_images, eval_labels, pairs,
                 [], [], {})
  core.write_study_scalars(trial, trial.metrics)


@dataclasses.dataclass
class _Measured:
  """What `_measure` leaves for the first seed's report besides the trials' metrics."""
  sample_rows: list  # (model label, sampler description, sampler, trial, scores)
  panels: list  # (title, grid) per model and sampler: the samples figure
  interp_rows: list  # the interpolations figure's rows and their labels
  interp_labels: list
  interp_confidence: dict  # model label -> the classifier's confidence on its interpolations
  noise: dict  # trial name -> code_noise(model)
  sweep_panels: list  # (total noise fraction, title, grid of box samples) per autoencoder


def _measure(context, trials):
  """Scores each model's samplers into its trial's metrics: those of `trials` with the
  figures' material, every other seed of `context.trials` with the same numbers only."""
  s = context.settings
  train_images = reader.load_split(context.examples_dir, "train")["image"]
  rng = np.random.RandomState(s.seed)
  eval_images, eval_labels = _eval_images(context, 200)
  pairs = _interpolation_pairs(eval_labels)
  sample_rows, panels, interp_rows, interp_labels = [], [], [], []
  interp_confidence, noise, sweep_panels = {}, {}, []
  for trial in trials:
    kind, label = trial.config.model.kind, _trial_label(trial)
    model = core.load_trial_model(trial)
    noise[trial.name] = code_noise(model)
    if noise[trial.name] and kind == "noisy_autoencoder":
      trial.metrics.update({f"code_noise/{k}": v for k, v in noise[trial.name].items()})
    codes = _sampler_codes(model, train_images)  # [N, D]
    samplers = AE_SAMPLERS if kind != "vae" else (("prior", "prior N(0, I)"),)
    for sampler, description in samplers:
      if sampler != "prior":
        model.fit_latent_sampler(codes, method=sampler)
      z = model.sample_latents(s.num_samples, seed=tf.constant([s.seed, 0])).numpy()
      samples = model.decode_mean(tf.constant(z)).numpy()
      scores = core.score_images(context, samples) if s.sample_quality else {}
      scores["nearest_code_ratio"] = _nearest_code_ratio(z, codes, rng)
      for key, value in scores.items():
        trial.metrics[f"{sampler}/{key}"] = value
      if sampler == "uniform_box" and kind != "vae":
        sweep_panels.append((noise[trial.name]["total_fraction"],
                             _noise_reading(trial) if kind == "noisy_autoencoder" else "no noise",
                             _grid(samples[:16], 4)))
      if not trial.full_only:
        sample_rows.append((label, description, sampler, trial, scores))
        panels.append((f"{label}: {description}", _grid(samples[:36], 6)))
    if not trial.full_only:  # the sweep's extra trials are only scored
      _interpolate(context, trial, model, label, eval_images, eval_labels, pairs, interp_rows,
                   interp_labels, interp_confidence)
    core.write_study_scalars(trial, trial.metrics)
  analysed = {id(t) for t in trials}
  for trial in context.trials:  # the other seeds: the same numbers, no figures (one schema)
    if id(trial) not in analysed:
      _score_samplers(context, trial, train_images, eval_images, eval_labels, pairs)
  return _Measured(sample_rows, panels, interp_rows, interp_labels, interp_confidence, noise,
                   sweep_panels)


def analyse_ae_vs_vae(context, trials):
  """Samples from random latent points of an AE, noisy AEs (both readings, a sweep) and a VAE."""
  s, w = context.settings, context.data_words
  measured = _measure(context, trials)
  sample_rows, noise = measured.sample_rows, measured.noise
  latent_dim = trials[0].config.model.latent_dim
  samples_path = context.figure_path("samples_ae_vs_vae")
  viz.save_png(viz.side_by_side(measured.panels), samples_path)
  interp_path = context.figure_path("interpolations_ae_vs_vae")
  viz.save_png(viz.labelled_rows(measured.interp_rows, measured.interp_labels,
                                 title="Linear interpolation between the codes of two held-out "
                                 f"{w.nouns} (the inputs at both ends)"), interp_path)
  columns = (SAMPLE_COLUMNS if s.sample_quality else ()) + (
      ("nearest_code_ratio", "distance to nearest code", 2),)
  rows, reference = [], None
  for name, description, _, trial, scores in sample_rows:
    rows.append([name, description, fmt(trial.metrics.get("reconstruction"), 2)]
                + _cells(scores, columns))
  if s.sample_quality:
    reference = core.real_data_reference(context)
    rows.append([f"real {w.nouns}", "–", "–"] + _cells(reference, SAMPLE_COLUMNS) + ["–"])
  by = {(r[0], r[2]): r[4] for r in sample_rows}
  main = [t for t in trials if not t.full_only]
  ae_trial = next((t for t in main if t.config.model.kind == "autoencoder"), None)
  vae_trial = next((t for t in main if t.config.model.kind == "vae"), None)
  vae = by.get(("VAE", "prior")) if s.sample_quality else None
  vae_fd = vae["frechet_distance"] if vae else None
  ae_rec = ae_trial.metrics.get("reconstruction") if ae_trial else None
  vae_rec = vae_trial.metrics.get("reconstruction") if vae_trial else None
  findings = (_sample_findings(context, main, by, reference, noise, ae_rec, vae_rec, latent_dim)
              if s.sample_quality else [])
  points = sorted(((noise[t.name]["total_fraction"], _trial_label(t), t.metrics, noise[t.name], t)
                   for t in trials if noise[t.name] is not None), key=lambda p: p[0])
  sweep = len(points) >= 3 and points[0][0] == 0
  if sweep and s.sample_quality:
    findings.append(_sweep_finding(points, vae_fd, vae_rec))
  findings.append(_reconstruction_finding(main, w))
  interp_confidence = measured.interp_confidence
  if s.sample_quality and interp_confidence:
    best = max(interp_confidence, key=interp_confidence.get)
    findings.append(
        f"**Interpolations.** Along the straight lines between the codes of two held-out {w.nouns} "
        "(figure below), the classifier's mean confidence on the 8 intermediate images is "
        + ", ".join(f"{k} {v:.3f}" for k, v in interp_confidence.items())
        + f": the path stays most like a recognisable {w.kind} for the {best}.")
  text = [
      "## Results",
      f"All models have the same {latent_dim}-D encoder and decoder network and training "
      "budget; the autoencoders minimise the Bernoulli reconstruction loss alone, the VAE the "
      "negative ELBO. A noisy AE's decoder sees the code plus Gaussian noise during training: "
      "*0.05·R in total* means the noise's variance summed over the latents is 0.05·R, *0.05·R "
      f"per dimension* that each of the {latent_dim} latents gets variance 0.05·R.",
      report.table(["model", "latent points drawn from", "reconstruction"]
                   + [c[1] for c in columns], rows),
      "*distance to nearest code*: median distance from a random latent point to the nearest "
      "training code (posterior mean for the VAE), in units of the median distance between "
      "neighbouring training codes: 1 means random points land among the codes, much more "
      "than 1 means they land in empty space.",
  ]
  if s.sample_quality:
    text.append(sample_quality_text(w, s.num_samples) + _classifier_note(context))
  figures = [
      report.figure(context, "Images decoded from random latent points (the same seed for "
                    "each), one panel per model and sampler.", samples_path),
      report.figure(context, f"Interpolations between two held-out {w.nouns} (shown at both ends): "
                    "their codes joined by a straight line, 10 points decoded.", interp_path),
  ]
  if sweep:
    section, sweep_figures = _noise_level_section(context, points, measured.sweep_panels,
                                                  vae_fd, vae_rec, reference, latent_dim)
    text += section
    figures += sweep_figures
  text += ["## What the numbers say", "\n\n".join(findings), "## Figures"] + figures
  return text


def _sample_findings(context, main, by, reference, noise, ae_rec, vae_rec, latent_dim):
  """What the first seed's sample scores say: do an autoencoder's random points decode to
  data, does a fitted Gaussian do better than the box, and each reading of the code noise.

  `by` maps (model label, sampler) to its scores; `main` are the trials the report shows.
  """
  w = context.data_words
  vae = by.get(("VAE", "prior"))
  findings = []
  ae_box = by.get(("autoencoder", "uniform_box"))
  ae_gauss = by.get(("autoencoder", "gaussian"))
  if vae and ae_box:
    ratio = ae_box["frechet_distance"] / max(vae["frechet_distance"], 1e-9)
    if ratio > 1.5 and ae_box["classifier_confidence"] < vae["classifier_confidence"]:
      verdict = "to clearly worse images than the VAE's prior samples"
    elif ratio > 1.2:
      verdict = "to somewhat worse images than the VAE's prior samples"
    elif ratio < 0.8:
      verdict = f"to images closer to real {w.nouns} than the VAE's prior samples"
    else:
      verdict = f"to images about as close to real {w.nouns} as the VAE's prior samples"
    real_conf = reference["classifier_confidence"]
    # Confidence is given as measured (seed 0 against real images): "about as confident"
    # from one seed would be a claim no test backs.
    verdict += (f" (the classifier's confidence on them: "
                f"{ae_box['classifier_confidence']:.3f}, on real {w.nouns} {real_conf:.3f})")
    findings.append(
        f"**Do random points of an autoencoder decode to data?** In our runs ({latent_dim}-D "
        f"codes), points drawn uniformly from the bounding box of the autoencoder's training "
        f"codes decode {verdict}: FD {ae_box['frechet_distance']:.1f} against "
        f"{vae['frechet_distance']:.1f} for the VAE's prior samples ({ratio:.1f}×; real "
        f"{w.nouns} {reference['frechet_distance']:.1f}), classifier confidence "
        f"{ae_box['classifier_confidence']:.3f} against {vae['classifier_confidence']:.3f} "
        f"(real {reference['classifier_confidence']:.3f}). A box sample lies "
        f"{ae_box['nearest_code_ratio']:.1f}× the typical spacing of training codes from its "
        f"nearest code, a VAE prior sample {vae['nearest_code_ratio']:.1f}× from the nearest "
        "posterior mean"
        + ("; the box is mostly empty space the decoder never saw, and nothing in an "
           "autoencoder's loss makes that space meaningful." if
           ae_box["nearest_code_ratio"] > 1.5 * vae["nearest_code_ratio"] and ratio > 1.2 else
           "; although box points land farther from the training codes, in this run the "
           f"decoder still maps them to images that look like {w.kinds}, so the textbook "
           "answer (noise) "
           "does not hold for this autoencoder." if ratio <= 1.2 else
           ": in this run the box is not much emptier than the VAE's prior is far from its "
           "codes, so the difference lies in what the decoders learned around the codes, not "
           "in distance alone."))
  if ae_gauss and ae_box:
    findings.append(
        f"**A fitted Gaussian instead of the box.** A Gaussian fitted to the autoencoder's codes gives FD "
        f"{ae_gauss['frechet_distance']:.1f} (box: {ae_box['frechet_distance']:.1f}), its "
        f"samples {ae_gauss['nearest_code_ratio']:.1f}× the typical code spacing away from a "
        "code: "
        + ("closer to the data than the box, because it puts most points where the codes are."
           if ae_gauss["frechet_distance"] < ae_box["frechet_distance"] else
           "no better than the box here.")
        + (f" Even so, it stays {'behind' if ae_gauss['frechet_distance'] > vae['frechet_distance'] else 'ahead of'} "
           f"the VAE (FD {vae['frechet_distance']:.1f})." if vae else ""))
  if ae_box and ae_gauss and ae_rec is not None:
    ae_scores = {"uniform_box": ae_box, "gaussian": ae_gauss}
    readings = [t for t in main if t.config.model.kind == "noisy_autoencoder"]
    if readings:
      findings.append(
          "**Noise in the code, two readings.** The question adds noise of \"variance "
          "0.05·R\" to the code, R the mean squared distance of the codes from the origin "
          f"(a sum over all {latent_dim} latents). Both readings were trained; the question "
          "is answered for each as measured.")
    for t in readings:
      findings.append(_reading_finding(
          t, noise[t.name], {k: by[(_trial_label(t), k)] for k, _ in AE_SAMPLERS}, ae_scores,
          ae_rec, vae, vae_rec, latent_dim, w))
  return findings


def _reconstruction_finding(main, w):
  """The reconstruction errors of the models, and whether every autoencoder beats the VAE."""
  recs = {_trial_label(t): t.metrics.get("reconstruction") for t in main}
  return (
      "**Reconstruction.** " + ", ".join(f"{k}: {v:.2f}" for k, v in recs.items() if v is not None)
      + f" nats per {w.noun}: the autoencoders reconstruct better than the VAE, whose code "
      "must also be a sample of a distribution close to the prior, so the comparison of "
      "samples above is not a comparison of capacity."
      if recs.get("VAE") is not None and all(v is not None and v < recs["VAE"]
                                             for k, v in recs.items() if k != "VAE")
      else "**Reconstruction.** " + ", ".join(f"{k}: {v:.2f}" for k, v in recs.items()
                                              if v is not None) + f" nats per {w.noun}.")


def _noise_level_section(context, points, sweep_panels, vae_fd, vae_rec, reference,
                         latent_dim):
  """The report's "Noise level" table and the noise sweep's two figures, when the study
  trains a sweep of the code noise: (markdown blocks, figure blocks)."""
  s, w = context.settings, context.data_words
  sweep_columns = (("reconstruction", "reconstruction", 2),) + tuple(
      (f"{sampler}/{key}", f"{what}: {title}", digits)
      for sampler, what in (("uniform_box", "box"), ("gaussian", "Gaussian"))
      for key, title, digits in ((("frechet_distance", "FD ↓", 1),) if s.sample_quality
                                 else ()) + (("nearest_code_ratio", "nearest code", 2),))
  finite = lambda v, digits: fmt(v, digits) if np.isfinite(v) else "∞"  # noqa: E731
  sweep_rows = [[f"{x:g}", f"{n['per_dimension_fraction']:.3g}",
                 finite(n["snr_per_dimension"], 2), finite(n["max_bits"], 1), name]
                + _cells(m, sweep_columns) for x, name, m, n, _ in points]
  text = [
      "## Noise level",
      "Every autoencoder of the study by the total variance of its code noise (a fraction of "
      "R; 0 is the plain autoencoder), with what that leaves the code: the noise variance "
      "per latent, the mean signal-to-noise ratio per latent and the most bits a Gaussian "
      "channel with that noise carries per code. Each level is one training seed, and the "
      f"text below calls differences under {100 * NOTABLE_CHANGE:.0f}% 'about the same'. "
      + " ".join(f"The trial with {_noise_reading(t)} sits at {latent_dim}×"
                 f"{t.config.model.noisy_autoencoder.noise_factor:g} = {x:g}·R in total."
                 for x, _, _, _, t in points if _is_per_dimension(t)),
      report.table(["noise total / R", "per latent / R", "SNR per latent", "max bits",
                    "trial"] + [c[1] for c in sweep_columns], sweep_rows),
  ]
  sweep_path = _sweep_figure(context, points, vae_fd, vae_rec, reference)
  sweep_panels.sort(key=lambda p: p[0])
  sweep_samples_path = context.figure_path("noise_sweep_samples_ae_vs_vae")
  viz.save_png(viz.side_by_side([(title, grid) for _, title, grid in sweep_panels]),
               sweep_samples_path)
  figures = [
      report.figure(context, "Against the total variance of the code noise (log scale): the "
                    "FD of random samples (left; dashed: the plain autoencoder, the VAE and "
                    f"real {w.nouns}) and the reconstruction error of held-out {w.nouns} "
                    "(right). "
                    "The red squares are the per-dimension trial.", sweep_path),
      report.figure(context, "Box samples (uniform over the code box) of each autoencoder, "
                    "by the total variance of its code noise.", sweep_samples_path),
  ]
  return text, figures


def _interpolation_pairs(labels):
  """Two pairs of held-out images of different classes: (first 1, first 7), (first 4, first 9)."""
  labels = np.asarray(labels)
  pairs = []
  for a, b in ((1, 7), (4, 9), (3, 8)):
    ia, ib = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
    if len(ia) and len(ib):
      pairs.append((int(ia[0]), int(ib[0])))
  return pairs[:2] or [(0, 1)]
