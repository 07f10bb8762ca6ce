"""The priors study: held-out IWAE log-likelihood, ELBO, KL and active units per prior, and
each prior's samples."""

from kerasvae import viz
from kerasvae.studies import core
from kerasvae.studies import report
from kerasvae.studies.mnist.common import (ELBO_COLUMNS, SAMPLE_COLUMNS, _cells,
                                           _classifier_note, _grid, sample_quality_text)

PRIOR_NAMES = {"gaussian": "standard Gaussian N(0, I)", "gmm": "Gaussian mixture",
               "vamp": "VampPrior"}


def analyse_priors(context, trials):
  """Held-out IWAE log-likelihood, ELBO, KL and active units per prior; sample grids."""
  s, w = context.settings, context.data_words
  panels = []
  for trial in trials:
    model = core.load_trial_model(trial)
    samples = (core.score_prior_samples(context, trial, model) if s.sample_quality else
               model.sample(s.num_samples, seed=s.seed).numpy())
    core.write_study_scalars(trial, trial.metrics)
    panels.append((PRIOR_NAMES[trial.config.model.vae.prior], _grid(samples[:36], 6)))
  samples_path = context.figure_path("samples_by_prior")
  viz.save_png(viz.side_by_side(panels), samples_path)
  columns = (("iwae_log_likelihood", "IWAE log p(x)", 2),
             ("iwae_log_likelihood_stderr", "± s.e.", 2),
             ("iwae_examples_elbo", f"ELBO, same {w.nouns}", 2),
             *ELBO_COLUMNS[:3], *ELBO_COLUMNS[4:])
  if s.sample_quality:
    columns += SAMPLE_COLUMNS[:2]
  rows = []
  for t in trials:
    m = t.config.model.vae
    label = PRIOR_NAMES[m.prior] + (f" (K={m.num_components})" if m.prior != "gaussian" else "")
    rows.append([label] + _cells(t.metrics, columns))
  if s.sample_quality:
    reference = core.real_data_reference(context)
    rows.append([f"real {w.nouns}"] + ["–"] * (len(columns) - 2)
                + _cells(reference, SAMPLE_COLUMNS[:2]))
  iwae = {t.config.model.vae.prior: t.metrics.get("iwae_log_likelihood") for t in trials}
  stderr = max(t.metrics.get("iwae_log_likelihood_stderr", 0.0) for t in trials)
  order = sorted(iwae, key=lambda k: -iwae[k])
  observed = " > ".join(PRIOR_NAMES[k] for k in order)
  paper = ["vamp", "gmm", "gaussian"]
  agrees = [k for k in order if k in paper] == [k for k in paper if k in order]
  gaps = [iwae[a] - iwae[b] for a, b in zip(order, order[1:])]
  k = trials[0].metrics.get("iwae_samples", "?")
  findings = [
      f"**Log-likelihood.** On the held-out {w.nouns} the IWAE bound (K = {k}) orders the priors "
      f"{observed} ({', '.join(f'{PRIOR_NAMES[p]} {iwae[p]:.2f}' for p in order)} nats). "
      + ("This is the ordering the VampPrior paper reports (VampPrior > mixture > standard)."
         if agrees else "This is NOT the ordering the VampPrior paper reports (VampPrior > "
         "mixture > standard); we report what our runs give.")
      + f" The gaps between neighbours are {', '.join(f'{g:.2f}' for g in gaps)} nats, against "
      f"a standard error of the mean of up to {stderr:.2f} nats over {w.nouns}; the models are "
      f"scored on the same {w.nouns}, so their errors are correlated and a gap smaller than about "
      "one standard error should not be read as a ranking.",
  ]
  elbo = {t.config.model.vae.prior: t.metrics.get("elbo") for t in trials}
  kl = {t.config.model.vae.prior: t.metrics.get("kl") for t in trials}
  active = {t.config.model.vae.prior: t.metrics.get("active_units") for t in trials}
  findings.append(
      "**ELBO and KL.** " + "; ".join(
          f"{PRIOR_NAMES[p]}: ELBO {elbo[p]:.2f}, KL {kl[p]:.2f}, {active[p]} active units"
          for p in iwae) + ". A learned prior can move towards the aggregate posterior, so for "
      "the same encoder the KL term costs less; whether that buys a better bound depends on "
      "how well the richer prior is fitted in the budget.")
  if s.sample_quality:
    fd = {t.config.model.vae.prior: t.metrics.get("frechet_distance") for t in trials}
    best = min(fd, key=fd.get)
    findings.append(
        f"**Samples.** The FD of prior samples is "
        f"{', '.join(f'{PRIOR_NAMES[p]} {fd[p]:.1f}' for p in fd)}; {PRIOR_NAMES[best]} gives "
        f"the samples closest to held-out {w.nouns}.")
  c = trials[0].config
  text = [
      "## Results",
      f"All priors share the network ({report.model_sentence(c)}, {c.model.latent_dim} latent "
      f"dimensions) and budget; the mixture and the VampPrior have {c.model.vae.num_components} "
      "components (the VampPrior's are encoded pseudo-inputs), and the KL weight warms up "
      f"linearly over {c.model.vae.kl_warmup_epochs:g} epochs.",
      report.table(["prior"] + [col[1] for col in columns], rows),
      f"IWAE log p(x): importance-weighted bound with K = {k} samples per {w.noun} on "
      f"{trials[0].metrics.get('iwae_examples', '?')} test {w.nouns} (± its standard error "
      f"over {w.nouns}), beside the ELBO of those same {w.nouns} (the bound it must exceed); the "
      f"other ELBO, reconstruction and KL are one-sample nats per {w.noun} over all "
      f"{trials[0].metrics.get('num_examples', 0):,} test {w.nouns}.",
  ]
  if s.sample_quality:
    text.append(sample_quality_text(w, s.num_samples, SAMPLE_COLUMNS[:2])
                + _classifier_note(context))
  text += [
      "## What the numbers say", "\n\n".join(findings),
      "The VampPrior paper trains on MNIST's 50,000 (or 60,000) training images for hundreds "
      "of epochs; "
      f"our trials train on {report.split_counts(context.examples_dir)['train']:,} "
      f"{w.named} for the budget above, so absolute log-likelihoods are "
      "not comparable with its tables, only the ordering is.",
      "## Figures",
      report.figure(context, "Samples from each prior, decoded (decoder means).", samples_path),
  ]
  return text
