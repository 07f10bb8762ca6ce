"""The evaluate step: a trained model and its Examples in, metrics, figures and a blessing out.

Writes (atomically, as one directory):
  metrics.json   on the test split (`split`, `num_examples`): ELBO, reconstruction, KL,
                 IWAE log-likelihood (and the ELBO of the same examples), active units, KL per
                 dimension, I(x; z) and KL(q(z) ‖ p(z)) (ELBO surgery), disentanglement
                 scores (data with factors: β-VAE, FactorVAE, MIG, DCI, SAP, and per factor
                 `mig/<factor>`, ...), sample quality
  blessing.json  whether every configured threshold holds, and each check
  *.png          prior samples, reconstructions, traversals, the 2-D manifold, latents by label
  metadata.json  written last
The same metrics and figures go to TensorBoard under `evaluate/`, in the trained model's
`validation` run (`train/logs/validation`, beside its HParams session: kerasvae.summaries).
"""

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasvae import artifacts
from kerasvae import progress
from kerasvae import summaries
from kerasvae import viz
from kerasvae.data import reader
from kerasvae.data import sources
from kerasvae.metrics import elbo_surgery
from kerasvae.metrics import likelihood
from kerasvae.metrics import registry as metric_registry
from kerasvae.steps import baseline
from kerasvae.steps import common
from kerasvae.steps import configs
from kerasvae.steps import executor
from kerasvae.steps import table
from kerasvae.steps import train as train_step

logger = logging.getLogger(__name__)

SURGERY_EXAMPLES = 1000  # log q(z) over N examples costs N² posterior densities


def ground_truth_data(examples_meta):
  """The ground-truth factor model of an Examples artifact, or None when it has none.

  Its source says whether it has one and builds it (`Source.ground_truth`): for dSprites
  restricted to some factor classes (`ingest.data.dsprites.scales: [5]`, ...) the metrics
  sample factors from the same restricted grid the model was trained on; a factor with a
  single class is not scored.
  """
  return sources.ground_truth(examples_meta)


# Encode the whole factor grid first when the scores draw at least this many codes per
# combination: they would then draw 90 % of it anyway (1 - exp(-2.3)), and encoding it in
# full batches beats encoding each call's unseen images (a few hundred at a time, fewer as
# the grid fills).
ENCODE_WHOLE_GRID_DRAWS = 2.3


def active_latents(kl_per_dim, threshold):
  """The indices of the latents whose mean KL to the prior exceeds `threshold` nats."""
  return [i for i, kl in enumerate(kl_per_dim) if kl > threshold]


def active_key(key):
  """A score's name on the active latents: `mig` -> `mig_active`, `mig_per_factor` ->
  `mig_active_per_factor`, `mig/shape` -> `mig_active/shape`."""
  suffix = configs.ACTIVE_SUFFIX
  if key.endswith("_per_factor"):
    return key[:-len("_per_factor")] + suffix + "_per_factor"
  score, slash, factor = key.partition("/")
  return f"{score}{suffix}{slash}{factor}"


def disentanglement_metrics(model, data, config, show_progress=True, active=None):
  """β-VAE score, FactorVAE score, MIG, DCI and SAP of the model's posterior mean.

  Each score looks up many codes (with the defaults, 1.92 million for the β-VAE score,
  970,000 for the FactorVAE score, 10,000 for MIG, 15,000 each for DCI and SAP), so each
  shows its progress in codes. The five share one `ground_truth.EncodedGrid`: an image is
  rendered and encoded, by one compiled function, once. When the scores draw more than
  `ENCODE_WHOLE_GRID_DRAWS` codes per factor combination (2.93 million of dSprites' 737,280
  at the defaults), the whole grid is encoded first, in full batches; otherwise each image
  when a score first draws it. DCI then fits a gradient-boosted classifier per factor, the
  longest part at the defaults (minutes: one tree per class and stage); `config.dci` false
  leaves it out.

  Args:
    active: the indices of the active latents (`active_latents`) when some latent is
      inactive; None when all are. Every score is then computed again on the active
      latents' codes alone (the encodings are cached: only the fits are repeated) and
      written under its `active_key` name (`mig_active`, ...); with every latent active the
      `_active` scores are the scores themselves; without one, an empty code's
      (`empty_code_scores`).

  Returns:
    The scores' dicts merged (`beta_vae_score`, `factor_vae_score`, `mig`,
    `dci_disentanglement`, `dci_completeness`, `dci_informativeness`, `sap`, ...;
    see `kerasvae.metrics`), and the per-factor lists of `configs.PER_FACTOR_METRICS`
    also as scalars `<metric>/<factor>` (`mig/shape`, `dci_completeness/scale`, ...); the
    same on the active latents (`mig_active`, `mig_active/shape`, ...).
  """
  from kerasvae.metrics import ground_truth  # pylint: disable=import-outside-toplevel
  # One graph for every batch: after the first two shapes `reduce_retracing` traces a
  # batch-size-free one. Not XLA: its convolutions are slower on CPUs and its codes differ
  # from the eager model's (by up to 4e-7 here); these equal them, whatever the batch.
  encode = tf.function(model.encode_mean, reduce_retracing=True)
  grid = ground_truth.EncodedGrid(
      data, lambda images: encode(tf.constant(images, tf.float32)).numpy(), batch_size=1024)
  # (progress label, codes it draws, its scores from a representation), in the registry's order
  scores = tuple((score.label, score.codes(config),
                  lambda represent, score=score: score.run(grid, represent, config))
                 for score in metric_registry.ground_truth_scores(config))
  draws = sum(num_codes for _, num_codes, _ in scores)
  if draws >= ENCODE_WHOLE_GRID_DRAWS * grid.num_combinations:
    whole = grid.num_combinations
    with progress.Progress(f"evaluate: encoding the {whole:,} images of the factor grid once "
                           f"(the scores draw {draws:,})", total=whole, unit_name="image",
                           enabled=show_progress) as bar:
      for start in range(0, whole, 16384):
        grid.represent(np.arange(start, min(start + 16384, whole)))
        bar.update(min(start + 16384, whole))
  out = _scores(scores, grid, None, "", show_progress)
  if active is None:  # every latent active: the scores are their own active form
    same = dict(out)
  elif active:
    same = _scores(scores, grid, list(active), f" on the {len(active)} active latents",
                   show_progress)
  else:
    same = empty_code_scores(data, out)
  out.update({active_key(k): v for k, v in same.items() if k != "factor_names"})
  return out


def empty_code_scores(data, scores):
  """What each of `scores` is for a code without an active latent, which carries nothing:
  MIG, SAP, DCI disentanglement and completeness 0; the β-VAE and FactorVAE scores at chance
  (1/K: any factor equally likely); DCI informativeness at chance (1/|v_k| per factor, the
  factors uniform)."""
  sizes = [data.factor_sizes[i] for i in data.latent_factor_indices]  # [K]
  chance = [1.0 / s for s in sizes]
  values = {"beta_vae_score": 1.0 / len(sizes), "factor_vae_score": 1.0 / len(sizes),
            "mig": 0.0, "mig_per_factor": [0.0] * len(sizes), "sap": 0.0,
            "sap_per_factor": [0.0] * len(sizes), "dci_disentanglement": 0.0,
            "dci_completeness": 0.0, "dci_completeness_per_factor": [0.0] * len(sizes),
            "dci_informativeness": float(np.mean(chance)),
            "dci_informativeness_per_factor": chance, "factor_names": scores["factor_names"]}
  empty = {k: v for k, v in values.items() if k in scores}
  empty.update(per_factor_scalars(empty))
  return empty


def _scores(scores, grid, dims, what, show_progress):
  """The scores of `scores` on the grid's codes, restricted to the latents `dims` (None: all)."""
  out = {}
  for i, (name, num_codes, compute) in enumerate(scores):
    bar = progress.Progress(f"evaluate: {name}{what} ({i + 1}/{len(scores)}), {num_codes:,} "
                            f"codes (images encoded so far: {grid.num_encoded:,})",
                            total=num_codes, unit_name="code", enabled=show_progress)

    def represent(indices, bar=bar):
      codes = grid.represent(indices)  # [n, D]
      bar.advance(len(indices))
      return codes if dims is None else codes[:, dims]  # [n, active]

    with bar:
      out.update(compute(represent))
  out.update(per_factor_scalars(out))
  return out


def per_factor_scalars(scores):
  """The per-factor lists of `configs.PER_FACTOR_METRICS` as scalars: `mig_per_factor` ->
  `mig/<factor name>`, which TensorBoard shows and thresholds may name; the lists stay too."""
  names = scores["factor_names"]
  return {f"{metric}/{factor}": float(value) for metric in configs.PER_FACTOR_METRICS
          for factor, value in zip(names, scores.get(f"{metric}_per_factor", ()))}


def shape_recognition_metrics(model, examples_meta, data, num_examples):
  """dSprites: the share of test reconstructions whose shape a template test recognises (see
  `kerasvae.metrics.shape_recognition`), or {} for other data."""
  from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import shape_recognition  # pylint: disable=import-outside-toplevel
  if (num_examples == 0 or "factor_classes" not in data
      or tuple(examples_meta.get("factor_names") or ()) != dsprites.FACTOR_NAMES
      or tuple(examples_meta["image_shape"]) != dsprites.DSprites.observation_shape):
    return {}
  images = data["image"][:num_examples]
  reconstructions = np.concatenate([model.reconstruct(tf.constant(images[i:i + 500])).numpy()
                                    for i in range(0, len(images), 500)])
  return shape_recognition.compute_shape_recognition(
      reconstructions, data["factor_classes"][:num_examples], dsprites.DSprites().render,
      dsprites.SHAPE_NAMES)


def sample_quality_metrics(model, examples_dir, eval_images, seed):
  """Fréchet distance of 1,000 samples to held-out images in a classifier's feature space."""
  from kerasvae.metrics import sample_quality  # pylint: disable=import-outside-toplevel
  train = reader.load_split(examples_dir, "train", limit=5000)
  print(f"evaluate: sample quality (a feature classifier trained on {len(train['image'])} "
        "images)", flush=True)
  classifier = sample_quality.train_feature_classifier(  # Keras' own bars on a terminal
      train["image"], train["label"], seed=seed, verbose=1 if progress.interactive() else 0)
  samples = model.sample(1000, seed=seed).numpy()
  result = sample_quality.compute_sample_quality(classifier, samples, eval_images[:1000])
  return {k: v for k, v in result.items() if isinstance(v, (int, float))}


def check_thresholds(metrics, thresholds, not_applicable=()):
  """The blessing: each `{metric: {lower_bound, upper_bound}}` checked against the metrics.

  Args:
    metrics: the evaluate step's metrics.
    thresholds: `evaluate.thresholds`.
    not_applicable: metrics the model kind never has (its class's `not_applicable_metrics`: an
      autoencoder has no ELBO, KL or IWAE bound): their thresholds are recorded as skipped, so one config can
      bless a VAE on its ELBO and an autoencoder on its reconstruction. Any
      other missing metric fails its check.

  Returns:
    `{"blessed": bool, "checks": [...]}`; a skipped check has `"skipped": reason`.
  """
  checks = []
  for metric, bound in sorted(thresholds.items()):
    if metric in not_applicable:
      checks.append({"metric": metric, "value": None, **bound, "passed": True,
                     "skipped": f"this model kind has no {metric}"})
      continue
    value = metrics.get(metric)
    ok = isinstance(value, (int, float))
    if ok and "lower_bound" in bound:
      ok = value >= bound["lower_bound"]
    if ok and "upper_bound" in bound:
      ok = value <= bound["upper_bound"]
    checks.append({"metric": metric, "value": value, **bound, "passed": bool(ok)})
  return {"blessed": all(c["passed"] for c in checks), "checks": checks}


def informative_dims(metrics, latent_dim, limit=10):
  """The latents worth a traversal row, most informative first, with a label for each.

  A VAE's are ranked by their KL to the prior (`kl_per_dim`: an unused latent has
  KL ≈ 0 and its row would not change), an autoencoder's by the variance of its
  codes (`activity`); at most `limit` of them.

  Returns:
    `(dims, annotations)`.
  """
  if metrics.get("kl_per_dim") is not None:
    scores, name = metrics["kl_per_dim"], "KL"
  elif metrics.get("activity") is not None:
    scores, name = metrics["activity"], "var"
  else:
    return list(range(min(latent_dim, limit))), None
  order = [int(d) for d in np.argsort(-np.asarray(scores, np.float64), kind="stable")[:limit]]
  return order, [f"{name} {scores[d]:.2f}" for d in order]


def write_figures(model, images, labels, out_dir, seed=0, metrics=None, label_names=None):
  """Saves the model's pictures as PNGs; returns {name: uint8 image} for TensorBoard.

  `metrics` (the step's `kl_per_dim` or `activity`) picks the traversals' latents;
  `label_names` (the Examples artifact's) name the classes in the latents' legend.
  """
  decode = lambda z: model.decode_mean(tf.constant(z, tf.float32)).numpy()  # noqa: E731
  out_dir = Path(out_dir)
  figures = {}
  figures["samples"] = viz.sample_figure(model.sample(100, seed=seed).numpy(),
                                         out_dir / "samples.png", title="Samples from the prior")
  originals = images[:10]
  figures["reconstructions"] = viz.reconstruction_figure(
      originals, model.reconstruct(tf.constant(originals)).numpy(), out_dir / "reconstructions.png")
  dims, annotations = informative_dims(metrics or {}, model.latent_dim)
  ranked = "" if annotations is None else (
      f", the {len(dims)} with the largest {annotations[0].split()[0]}"
      + (f" of {model.latent_dim}" if len(dims) < model.latent_dim else "") + " first")
  figures["traversals"] = viz.traversal_figure(
      decode, model.latent_dim, out_dir / "traversals.png", dims=dims, annotations=annotations,
      title=f"Latent traversals: each row sweeps one latent{ranked}; the others at 0")
  if model.latent_dim == 2:
    figures["manifold"] = viz.manifold_figure(decode, out_dir / "manifold.png")
  codes = model.encode_mean(tf.constant(images[:2000])).numpy()
  figures["latents"] = viz.latent_scatter_figure(
      codes, labels[:2000] if labels is not None else None, out_dir / "latents.png",
      title="Posterior means of eval examples", label_names=label_names)
  return figures


def baseline_summary(comparison):
  """One line on the comparison with the served model, rounded."""
  if comparison["version_dir"] is None:
    return "no baseline (the first export of this model name)"
  parts = []
  for c in comparison["checks"]:
    if "skipped" in c:
      parts.append(f"{c['metric']} skipped ({c['skipped']})")
    else:
      parts.append(f"{c['metric']} {common.rounded(c['candidate'])} against "
                   f"{common.rounded(c['baseline'])}, {common.rounded(c['change'], 3)} worse "
                   f"(at most {common.rounded(c['max_change'], 3)}): "
                   + ("passed" if c["passed"] else "FAILED"))
  return f"against the served {comparison['version_dir']}: " + "; ".join(parts)


# The metrics of the one-line summary, in its order (`kerasvae.metrics.registry`).
SUMMARY_METRICS = metric_registry.summary_metrics()


def summary_line(metrics):
  """The evaluate step's one-line summary. Numbers set side by side are over the same images:
  where the IWAE bound read fewer images than the ELBO, the line gives the ELBO of those
  images beside it (`iwae_log_likelihood -304.8 (ELBO -309.1, the same 100 images)`)."""
  parts = []
  for key in SUMMARY_METRICS:
    if key not in metrics:
      continue
    part = f"{key} {metrics[key]:.4g}"
    if key == "elbo" and "iwae_examples" in metrics:
      part += f" ({metrics['num_examples']} images)"
    if key == "iwae_log_likelihood" and "iwae_examples_elbo" in metrics:
      part += (f" (ELBO {metrics['iwae_examples_elbo']:.4g}, the same "
               f"{metrics.get('iwae_examples', '?')} images)")
    parts.append(part)
  return ", ".join(parts)


# Evaluate settings added after evaluations were fingerprinted (`kerasvae.steps.table.EVALUATE`).
FINGERPRINTED_UNLESS_DEFAULT = table.EVALUATE_FINGERPRINTED_UNLESS_DEFAULT


def evaluate_fingerprint(config, train_meta, served=None):
  """The evaluate step's fingerprint (its table: `kerasvae.steps.table.EVALUATE`): the
  evaluate config, the train step's fingerprint and the trained model's bytes, and with
  change thresholds the served version `served` (`baseline.find_baseline`) it compares with."""
  return table.EVALUATE.fingerprint.compute(config=config, train=train_meta, served=served)


def served_baseline(run):
  """What the evaluate fingerprint reads besides its inputs: the served version the change
  thresholds compare against (None without change thresholds)."""
  config = run.config
  return {"served": (baseline.find_baseline(config, run.paths["train"].parent)
                     if config.evaluate.change_thresholds else None)}


def run(config, examples_dir, train_dir, evaluate_dir, force=False):
  """Evaluates a trained model on the eval split of its Examples artifact.

  Returns:
    `evaluate_dir`.
  """
  return executor.execute(table.STEPS["evaluate"], config, evaluate_dir,
                          {"examples": examples_dir, "train": train_dir}, force=force)


def body(run):
  """The evaluate step's body: metrics, figures and the blessing, published as one directory."""
  config, evaluate_dir = run.config, run.directory
  examples_dir, train_dir = run.paths["examples"], run.paths["train"]
  train_meta, served = run.upstream["train"], run.given["served"]
  cfg = config.evaluate
  model = train_step.load_model(train_dir)
  examples_meta = run.upstream["examples"]
  data = reader.load_split(examples_dir, "eval", limit=cfg.num_examples)
  images, labels = data["image"], data.get("label")
  if len(images) == 0:
    raise common.StepError(f"The eval split of {examples_dir} is empty: nothing to evaluate.")
  # Every number below is on the test split, which no selection (early stopping, the best
  # checkpoint) has read.
  metrics = {"split": reader.split_name(examples_meta, "eval"), "num_examples": int(len(images))}
  elbo = likelihood.elbo_metrics(model, images, batch_size=cfg.batch_size, seed=cfg.seed,
                                 per_example=True)
  elbo_per_example = elbo.pop("elbo_per_example", None)
  latent_mean, latent_log_var = elbo.pop("latent_mean"), elbo.pop("latent_log_var")
  usage = likelihood.latent_usage(latent_mean, latent_log_var, cfg.active_unit_threshold)
  metrics.update(elbo)
  metrics.update(usage)
  if cfg.iwae_samples > 0 and model.has_posterior:
    n = cfg.iwae_examples or len(images)
    n = min(n, len(images))
    with progress.Progress(f"evaluate: IWAE bound with K={cfg.iwae_samples} on {n} examples",
                           total=n, unit_name="example") as bar:
      metrics.update(likelihood.iwae_metrics(model, images[:n], num_samples=cfg.iwae_samples,
                                             seed=cfg.seed, on_batch=bar.update))
    if elbo_per_example is not None:  # the ELBO of the same examples, to set beside the IWAE
      metrics["iwae_examples_elbo"] = float(elbo_per_example[:n].mean())
  if model.has_posterior:
    # The KL term split into I(x; z) and KL(q(z) ‖ p(z)) over (at most) the IWAE's examples.
    n = min(len(images), cfg.iwae_examples or SURGERY_EXAMPLES, SURGERY_EXAMPLES)
    metrics.update(elbo_surgery.model_elbo_surgery(model, latent_mean[:n], latent_log_var[:n],
                                                   seed=cfg.seed))
  metrics.update(shape_recognition_metrics(model, examples_meta, data,
                                           cfg.shape_recognition_examples))
  truth = ground_truth_data(examples_meta) if cfg.disentanglement else None
  if truth is not None:
    # The latents the decoder uses: an autoencoder (no KL) counts every latent as active.
    active = (active_latents(usage["kl_per_dim"], cfg.active_latent_kl)
              if "kl_per_dim" in usage else list(range(model.latent_dim)))
    metrics["active_latents"] = active
    metrics.update(disentanglement_metrics(
        model, truth, cfg, active=active if len(active) < model.latent_dim else None))
  if cfg.sample_quality and labels is not None:
    metrics.update(sample_quality_metrics(model, examples_dir, images, cfg.seed))
  blessing = check_thresholds(metrics, cfg.thresholds,
                              not_applicable=model.not_applicable_metrics)
  if not cfg.thresholds and not cfg.change_thresholds:
    print("evaluate: warning: no evaluate.thresholds or change_thresholds: every model is "
          "blessed, whatever its metrics", flush=True)
  if cfg.change_thresholds:
    n = min(len(images), cfg.iwae_examples or len(images))
    blessing["baseline"] = baseline.compare(model, images[:n], cfg.change_thresholds, served)
    blessing["blessed"] = blessing["blessed"] and all(
        c["passed"] for c in blessing["baseline"]["checks"])
    print("evaluate: " + baseline_summary(blessing["baseline"]), flush=True)
  with run.publishing() as tmp:
    figures = write_figures(model, images, labels, tmp, seed=cfg.seed, metrics=metrics,
                            label_names=examples_meta.get("label_names"))
    artifacts.write_json(tmp / "metrics.json", metrics)
    artifacts.write_json(tmp / "blessing.json", blessing)
    run.write_metadata(
        tmp, inputs={"examples": examples_dir, "model": Path(train_dir) / train_step.MODEL_FILE},
        outputs={"metrics": evaluate_dir / "metrics.json",
                 "blessing": evaluate_dir / "blessing.json"},
        blessed=blessing["blessed"], digests=artifacts.digest_files(tmp))
  # The metrics and figures as `evaluate/...` in the model's validation run, at its last epoch.
  summaries.write_evaluation(
      Path(train_dir) / "logs",
      int((train_meta.get("final") or {}).get("epoch", train_meta.get("epochs_run", 0))),
      metrics, figures)
  print(f"evaluate: {summary_line(metrics)}; {blessing_phrase(blessing)}")
  return evaluate_dir


def blessing_phrase(blessing):
  """`blessed: True`, or `blessed: False` with the checks that failed and their bounds."""
  skipped = [c["metric"] for c in blessing["checks"] if "skipped" in c]
  failed = [_failed_check(c) for c in blessing["checks"] if not c["passed"]]
  failed += [f"{c['metric']} vs the served model" for c in
             (blessing.get("baseline") or {}).get("checks", []) if not c["passed"]]
  return (f"blessed: {blessing['blessed']}"
          + (f" (failed: {'; '.join(failed)})" if failed else "")
          + (f" (not applicable to this model: {', '.join(skipped)})" if skipped else ""))


def _failed_check(check):
  value = check["value"]
  shown = f"{value:.4g}" if isinstance(value, (int, float)) else "missing"
  bounds = []
  if "lower_bound" in check:
    bounds.append(f"≥ {check['lower_bound']:g}")
  if "upper_bound" in check:
    bounds.append(f"≤ {check['upper_bound']:g}")
  return f"{check['metric']} {shown}, expected {' and '.join(bounds)} (evaluate.thresholds)"
