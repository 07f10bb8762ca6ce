"""`kerasvae study ood`: out-of-distribution detection with a VAE's likelihood and its corrections.

Measure → `results.json` → `report_text(results)`: the trials (one pipeline run per data set and
seed, each with its own Examples artifact), a background model per trial for the likelihood
ratio, every scored image's five scores, the detection metrics and the tests are measured
once and written to `results.json`; the report is a pure function of that file, so it is
redrawn without training (`--report-only` re-measures nothing that finished: the trials and
background models are reused, the scores recomputed).

The scores (`kerasvae.metrics.anomaly`; higher is more anomalous) and the sets each model scores
against its own test images are in `SCORES` and `ood_sets`.
"""

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np

from kerasvae import artifacts
from kerasvae.config import field
from kerasvae.studies import core
from kerasvae.studies import report

# name: (label, what it is). The values come from `_scores`.
SCORES = {
    "log_likelihood": ("−log p(x)", "the IWAE bound, raw"),
    "elbo": ("−ELBO", "one posterior draw"),
    "reconstruction": ("reconstruction", "−log p(x|z), one posterior draw"),
    "complexity": ("−log p(x) − L(x)", "input complexity, Serrà et al. 2020 (exported)"),
    "likelihood_ratio": ("likelihood ratio", "−(log p(x) − log p₀(x)), Ren et al. 2019"),
}
RAW = "log_likelihood"
EXPORTED = "complexity"  # what the export's `anomaly_score` signature returns
METRICS = {"auroc": "AUROC ↑", "auprc": "AUPRC ↑", "fpr_at_95_tpr": "FPR at 95 % TPR ↓"}
DATA_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}

# Published AUROCs for a model trained on Fashion-MNIST scoring its test set against MNIST's.
# Only numbers we are sure of; the others are named without a number.
PUBLISHED = [
    {"source": "Ren et al. 2019 (NeurIPS), Table 1", "model": "PixelCNN++",
     "budget": "not restated here (see the paper)", "score": "log p(x)", "auroc": 0.089},
    {"source": "Ren et al. 2019 (NeurIPS), Table 1", "model": "PixelCNN++ and a background "
     "PixelCNN++ on mutated inputs (μ and an L2 weight tuned)", "budget": "not restated here",
     "score": "likelihood ratio", "auroc": 0.994},
    {"source": "Serrà et al. 2020 (ICLR)", "model": "Glow, PixelCNN++",
     "budget": "not restated here", "score": "input complexity S (PNG, JPEG2000, FLIF)",
     "auroc": None},
    {"source": "Xiao et al. 2020 (NeurIPS)", "model": "VAE",
     "budget": "not restated here", "score": "likelihood regret", "auroc": None},
    {"source": "Nalisnick et al. 2019 (ICLR)", "model": "Glow, PixelCNN, VAE",
     "budget": "not restated here", "score": "log p(x) (histograms, no AUROC for this pair)",
     "auroc": None},
]


@dataclasses.dataclass
class OODSettings(core.StudySettings):
  """The `study:` block of `kerasvae study ood`."""
  iwae_samples: int = field(100, range=(1, 100_000), help="K of every scored image's IWAE bound.")
  test_examples: int = field(2000, range=(10, None),
                             help="In-distribution test images scored (the first of the split).")
  ood_examples: int = field(2000, range=(10, None),
                            help="Images of each out-of-distribution set, at most.")
  background_mutation_rate: float = field(
      0.2, range=(0.0, 1.0), help="μ of the background model's inputs (Ren et al. 2019).")
  background_epochs: Optional[int] = field(
      None, range=(1, None), help="Epochs of the background model; null: those its trial ran.")
  background_examples: Optional[int] = field(
      None, range=(10, None), help="Training images of the background model; null: all.")


# ----------------------------------------------------------------------------------- measure


def run(plan, force=False, report_only=False):
  """Trains (or reuses) every trial and background model, scores, writes results and report."""
  from kerasvae.steps.common import StepError  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  cpu0 = _cpu_seconds()
  output = plan.output
  trials = plan.trials
  for i, trial in enumerate(trials):
    if report_only and not core.trial_finished(trial):
      raise StepError(f"--report-only: trial {trial.name} of {output} has not finished. "
                             "Run the study without --report-only first.")
    core.run_trial(trial, f"study: trial {i + 1}/{len(trials)} {trial.name}", force=force,
                   force_ingest=force)
  settings = plan.settings
  data = {t.setting: _test_images(t, settings) for t in trials if t.seed == settings.seeds[0]}
  measured = []
  for trial in trials:
    print(f"study: scoring {trial.name}", flush=True)
    measured.append(measure_trial(plan, trial, data, force))
  results = {
      "study": plan.name, "title": plan.title, "quick": plan.quick, "config": str(plan.path),
      "overrides": list(plan.overrides), "settings": dataclasses.asdict(settings),
      "split_counts": {t.setting: report.split_counts(_examples_dir(t)) for t in trials
                       if t.seed == settings.seeds[0]},
      "trials": [dict(t.to_json(), ood=m) for t, m in zip(trials, measured)],
      "tests": comparisons(measured, trials),
      "published": PUBLISHED,
      "wall_clock_seconds": time.time() - t0,
      "cpu_seconds": _cpu_seconds() - cpu0,
      "machine": artifacts.machine(),
      "figures": [],
  }
  results["figures"] = draw_figures(plan, trials, data)
  results["cost"] = measure_cost(core.load_trial_model(trials[0]), data[trials[0].setting][:100])
  artifacts.write_json(output / "results.json", results)
  path = output / "report.md"
  artifacts.write_text(path, report_text(results))
  return path


def _cpu_seconds():
  """User + system CPU seconds of this process and its finished children."""
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def _examples_dir(trial):
  from kerasvae.steps import ingest  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  run_dir = common.run_directory(trial.config)
  return ingest.examples_of(trial.config, run_dir / "ingest")


def _test_images(trial, settings):
  """The first `test_examples` images of the trial's test split, grey levels in [0, 1]."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  split = reader.load_split(_examples_dir(trial), "test", limit=settings.test_examples,
                            binarize_seed=None)
  return split["image"]


def ood_sets(setting, data, settings):
  """{set name: images} scored against `setting`'s own test images: the other data sets' test
  images, uniform noise, constant images, and the own test images flipped upside down and
  inverted (1 − x). Deterministic in `settings.seed`."""
  own = data[setting]
  n = settings.ood_examples
  rng = np.random.default_rng(settings.seed)
  sets = {DATA_NAMES.get(other, other): images[:n] for other, images in data.items()
          if other != setting}
  shape = (n,) + own.shape[1:]
  sets["uniform noise"] = rng.random(shape, dtype=np.float32)
  sets["constant"] = np.broadcast_to(rng.random((n, 1, 1, 1), dtype=np.float32), shape).copy()
  sets["flipped"] = own[:n, ::-1].copy()
  sets["inverted"] = 1.0 - own[:n]
  return sets


def _background_model(plan, trial, force):
  """Ren et al.'s background model of a trial: its architecture trained on mutated training
  images; saved in `<study>/background/` (written under a temporary name) and reused."""
  import keras  # pylint: disable=import-outside-toplevel
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  settings, c = plan.settings, trial.config
  path = plan.output / "background" / f"{core.slug(trial.name)}.keras"
  info_path = path.with_suffix(".json")
  if path.is_file() and info_path.is_file() and not force:
    return keras.saving.load_model(path), artifacts.read_json(info_path)
  train = reader.load_split(_examples_dir(trial), "train", limit=settings.background_examples,
                            binarize_seed=None)["image"]
  epochs = settings.background_epochs or max(1, trial.epochs_run)
  steps = math.ceil(len(train) / c.train.batch_size)
  if c.train.steps_per_epoch:
    steps = min(steps, c.train.steps_per_epoch)
  keras.utils.set_random_seed(c.train.seed + 1000)
  model = common.build_model(c.model, train.shape[1:], steps_per_epoch=steps,
                             num_train_examples=len(train), batch_size=c.train.batch_size)
  model.compile(optimizer=keras.optimizers.Adam(c.train.learning_rate))
  rng = np.random.default_rng(c.train.seed + 1000)
  started = time.time()
  for _ in range(epochs):  # fresh mutations every epoch
    mutated = anomaly.mutate(train, settings.background_mutation_rate, rng)
    model.fit(mutated, epochs=1, batch_size=c.train.batch_size, steps_per_epoch=steps,
              shuffle=True, verbose=0)
  info = {"epochs": epochs, "train_seconds": time.time() - started, "examples": len(train),
          "mutation_rate": settings.background_mutation_rate}
  with artifacts.replacing(path, suffix=".keras") as tmp:
    model.save(tmp)
  artifacts.write_json(info_path, info)
  return model, info


def _scores(model, background, images, settings):
  """{score name: [N] float64} of `images`, higher = more anomalous (`SCORES`)."""
  from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import iwae  # pylint: disable=import-outside-toplevel
  k = settings.iwae_samples
  out = anomaly.score_images(model, images, k)
  background_log_px = np.concatenate([
      np.asarray(iwae.log_likelihood(background, images[i:i + 500], k,
                                     seed=iwae.DEFAULT_SEED)["log_likelihood"], np.float64)
      for i in range(0, len(images), 500)])
  return {"log_likelihood": -out["log_likelihood"], "elbo": -out["elbo"],
          "reconstruction": out["reconstruction"], "complexity": out["anomaly_score"],
          "likelihood_ratio": anomaly.likelihood_ratio_score(out["log_likelihood"],
                                                             background_log_px)}


def measure_trial(plan, trial, data, force):
  """A trial's scores of every set and their detection metrics against its own test images."""
  from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
  settings = plan.settings
  # A finished trial's measurement is kept: an interrupted study goes on from the next trial.
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  identity = artifacts.fingerprint({"run": str(common.run_directory(trial.config)),
                                    "settings": dataclasses.asdict(settings)})
  cache = plan.output / "measured" / f"{core.slug(trial.name)}.json"
  scores_file = plan.output / "scores" / f"{core.slug(trial.setting)}.npz"
  if cache.is_file() and not force and (trial.seed != settings.seeds[0] or scores_file.is_file()):
    kept = artifacts.read_json(cache)
    if kept.get("identity") == identity:
      return kept["measured"]
  model = core.load_trial_model(trial)
  background, background_info = _background_model(plan, trial, force)
  own = data[trial.setting]
  started = time.time()
  in_scores = _scores(model, background, own, settings)
  sets = {}
  arrays = {"test": in_scores}
  for name, images in ood_sets(trial.setting, data, settings).items():
    out_scores = _scores(model, background, images, settings)
    arrays[name] = out_scores
    sets[name] = {"num_examples": len(images), "scores": {
        score: dict(anomaly.detection_metrics(in_scores[score], out_scores[score]),
                    mean=float(out_scores[score].mean()), sd=float(out_scores[score].std()))
        for score in SCORES}}
  if trial.seed == settings.seeds[0]:  # the figures' scores
    scores_file.parent.mkdir(parents=True, exist_ok=True)
    with artifacts.atomic_file(scores_file) as f:
      np.savez(f, **{f"{s}|{score}": v for s, by in arrays.items() for score, v in by.items()})
  measured = {"test": {"num_examples": len(own), "scores": {
                  score: {"mean": float(v.mean()), "sd": float(v.std())}
                  for score, v in in_scores.items()}},
              "sets": sets, "set_order": list(sets), "background": background_info,
              "score_seconds": time.time() - started, "iwae_samples": settings.iwae_samples}
  artifacts.write_json(cache, {"identity": identity, "measured": measured})
  return measured


def measure_cost(model, images, num_samples=(100, 1000), repeats=3):
  """Seconds per image of the export's `log_likelihood` and `anomaly_score` functions (traced
  as `kerasvae export` traces them) at each K, and of the PNG code length alone, on `images`
  in one batch, on this machine. Returns a dict for results.json."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from kerasvae import serving  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
  _, functions = serving.serving_signatures(model)
  x = tf.constant(np.asarray(images, np.float32))

  def per_image(fn):
    fn()  # traced and warmed up first
    started = time.perf_counter()
    for _ in range(repeats):
      fn()
    return (time.perf_counter() - started) / repeats / len(images)

  out = {"batch": len(images), "repeats": repeats, "machine": artifacts.machine()}
  for k in num_samples:
    for name in ("log_likelihood", "anomaly_score"):
      out[f"{name}_k{k}"] = per_image(lambda n=name, k=k: functions[n](x, tf.constant(k)))
  png = tf.function(anomaly.png_code_length)
  out["png"] = per_image(lambda: png(x))
  return out


def holm(p_values):
  """Holm–Bonferroni adjusted p-values (step-down, monotone), in the input order."""
  p = np.asarray(p_values, np.float64)
  order = np.argsort(p)
  adjusted = np.empty_like(p)
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (len(p) - rank) * p[i]))
    adjusted[i] = running
  return adjusted.tolist()


def comparisons(measured, trials):
  """Each corrected score's AUROC against raw −log p(x)'s on the other data set, both
  directions: a two-sided paired t-test over the training seeds, Holm–Bonferroni corrected
  over the whole family. Needs at least two seeds (otherwise: an empty list)."""
  from scipy import stats  # pylint: disable=import-outside-toplevel
  rows = []
  for setting in dict.fromkeys(t.setting for t in trials):
    group = [m for m, t in zip(measured, trials) if t.setting == setting]
    other = next((DATA_NAMES.get(s, s) for s in DATA_NAMES if s != setting
                  and DATA_NAMES.get(s, s) in group[0]["sets"]), None)
    if other is None or len(group) < 2:
      continue
    raw = np.array([m["sets"][other]["scores"][RAW]["auroc"] for m in group])
    for score in SCORES:
      if score == RAW:
        continue
      values = np.array([m["sets"][other]["scores"][score]["auroc"] for m in group])
      diff = values - raw
      p = 1.0 if np.allclose(diff, diff[0]) and diff[0] == 0 else float(
          stats.ttest_rel(values, raw).pvalue)
      rows.append({"trained_on": setting, "ood": other, "score": score,
                   "mean_difference": float(diff.mean()), "p_value": p})
  for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]) if rows else []):
    row["p_holm"] = adjusted
  return rows


# ----------------------------------------------------------------------------------- figures


def draw_figures(plan, trials, data):
  """Score histograms per data set and ROC curves (the first seed), from the saved scores."""
  from kerasvae.studies import figures  # pylint: disable=import-outside-toplevel
  plt = figures._pyplot()  # pylint: disable=protected-access
  out = []
  fig_dir = plan.output / "figures"
  fig_dir.mkdir(parents=True, exist_ok=True)
  seed = plan.settings.seeds[0]
  for setting in dict.fromkeys(t.setting for t in trials if t.seed == seed):
    stored = np.load(plan.output / "scores" / f"{core.slug(setting)}.npz")
    arrays = {}
    for key in stored.files:
      name, score = key.split("|")
      arrays.setdefault(name, {})[score] = stored[key]
    label = DATA_NAMES.get(setting, setting)
    fig, axes = plt.subplots(1, len(SCORES), figsize=(3.4 * len(SCORES), 3.2))
    for ax, (score, (score_label, _)) in zip(axes, SCORES.items()):
      pooled = np.concatenate([arrays[n][score] for n in arrays])
      low, high = np.percentile(pooled, [0.5, 99.5])
      bins = np.linspace(low, high, 60)
      for name, by in arrays.items():
        ax.hist(np.clip(by[score], low, high), bins=bins, histtype="step", density=True,
                label=f"{label} test" if name == "test" else name, linewidth=1.2)
      ax.set_title(score_label, fontsize=9)
      ax.set_yticks([])
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Scores of the VAE trained on {label} (seed {seed}; higher = more anomalous; "
                 "0.5-99.5 % range, the rest in the edge bins)", fontsize=9)
    path = fig_dir / f"histograms_{core.slug(setting)}.png"
    figures._save(fig, path)  # pylint: disable=protected-access
    out.append({"caption": f"Score histograms of the VAE trained on {label}", "path":
                path.relative_to(plan.output).as_posix(), "trained_on": setting, "kind": "hist"})
    others = [n for n in arrays if n in DATA_NAMES.values()]
    fig, axes = plt.subplots(1, 1 + len(others), figsize=(4.2 * (1 + len(others)), 3.8),
                             squeeze=False)
    from kerasvae.metrics import anomaly  # pylint: disable=import-outside-toplevel
    for ax, name in zip(axes[0], others + ["uniform noise"]):
      for score, (score_label, _) in SCORES.items():
        fpr, tpr = anomaly.roc_curve(arrays["test"][score], arrays[name][score])
        ax.plot(fpr, tpr, label=score_label)
      ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
      ax.set_xlabel(f"false positive rate ({label} test flagged)")
      ax.set_ylabel(f"true positive rate ({name} flagged)")
      ax.set_title(f"{label} → {name} (seed {seed})", fontsize=9)
      ax.legend(fontsize=7)
    path = fig_dir / f"roc_{core.slug(setting)}.png"
    figures._save(fig, path)  # pylint: disable=protected-access
    out.append({"caption": f"ROC curves of the VAE trained on {label}", "path":
                path.relative_to(plan.output).as_posix(), "trained_on": setting, "kind": "roc"})
  return out


# ------------------------------------------------------------------------------------ report


def _mean_sd(values, digits=3):
  return report.mean_sd(np.asarray(values, np.float64), digits)


def _by_setting(results):
  groups = {}
  for trial in results["trials"]:
    groups.setdefault(trial["setting"], []).append(trial)
  return groups


def metric_values(group, ood, score, metric="auroc"):
  """One number per seed of `group` (trials of one data set)."""
  return [t["ood"]["sets"][ood]["scores"][score][metric] for t in group]


def headline(results):
  """{(trained on, OOD data set): {score: [AUROC per seed]}} for raw −log p(x) and the exported
  score: the numbers the README and docs/serving.md quote."""
  out = {}
  for setting, group in _by_setting(results).items():
    for ood in group[0]["ood"]["sets"]:
      if ood in DATA_NAMES.values():
        out[(setting, ood)] = {s: metric_values(group, ood, s) for s in (RAW, EXPORTED)}
  return out


def headline_sentence(results):
  """One sentence per direction: the AUROC of raw log p(x) and of the exported score."""
  parts = []
  for (setting, ood), values in headline(results).items():
    parts.append(f"{DATA_NAMES.get(setting, setting)} → {ood}: AUROC of raw log p(x) "
                 f"{_mean_sd(values[RAW])}, of `anomaly_score` {_mean_sd(values[EXPORTED])}")
  return "; ".join(parts)


def report_text(results):
  """The report's markdown, a pure function of `results.json`'s content."""
  groups = _by_setting(results)
  settings = results["settings"]
  seeds = sorted({t["seed"] for t in results["trials"]})
  blocks = [f"# {results['title']}",
            "*Question.* Does a VAE's log p(x) tell its own test images from images of another "
            "data set, noise, constant images and flipped or inverted ones, and do the corrected "
            "scores of the literature do better?"]
  if results["quick"]:
    blocks.append("> **Quick mode.** The tiny version the tests run: a few training steps, a "
                  "handful of images; the numbers say nothing about the models.")
  counts = results["split_counts"]
  blocks.append(
      "**Data.** " + "; ".join(
          f"{DATA_NAMES.get(s, s)}: {c['train']:,} train, {c['validation']:,} validation "
          f"(early stopping), {c['test']:,} test images" for s, c in counts.items())
      + ". Fashion-MNIST's splits are its official 60,000 training images (the first 55,000 "
      "train, the last 5,000 validate) and its official 10,000 test images; only MNIST's "
      "official 10,000-image test file is on disk, so its first 8,000 digits train, the next "
      "1,000 validate and the last 1,000 are the test split: disjoint parts of one file. "
      f"Each model scores the first {settings['test_examples']:,} images of its own test split "
      f"(in-distribution) against at most {settings['ood_examples']:,} images of each "
      "out-of-distribution set: the other data set's test split, uniform noise, constant "
      "images (one grey level each, uniform in [0, 1]) and its own test images flipped "
      "upside down and inverted (1 − x). Nothing here is tuned on out-of-distribution images.")
  first = results["trials"][0]
  blocks.append(
      f"**Scores** (higher = more anomalous; IWAE with K = {settings['iwae_samples']} and the "
      "export's fixed seed): " + "; ".join(f"**{label}**: {what}" for label, what in
                                           SCORES.values())
      + f". The background model p₀ has the same architecture, trained for as many epochs as "
      f"its trial's model ran on the training images with μ = "
      f"{settings['background_mutation_rate']} of their pixels replaced by uniform grey levels "
      "(Ren et al. also add an L2 penalty to the background model and tune both "
      "hyperparameters; we do neither). L(x) is the PNG size (zlib level 9) of the image "
      "quantised to 8 bits, in "
      "nats. The detection metrics take the out-of-distribution images as positives; FPR at "
      "95 % TPR is the share of in-distribution test images flagged by the threshold that "
      "flags 95 % of the out-of-distribution ones.")
  blocks.append(f"**Headline** (mean ± sd over training {report.seed_phrase(seeds)}): "
                + headline_sentence(results) + ".")
  blocks.append(_budget(results))
  for setting, group in groups.items():
    label = DATA_NAMES.get(setting, setting)
    blocks.append(f"## Trained on {label}")
    sets = group[0]["ood"].get("set_order") or list(group[0]["ood"]["sets"])  # JSON sorts keys
    for metric, metric_label in METRICS.items():
      rows = [[SCORES[s][0]] + [_mean_sd(metric_values(group, o, s, metric)) for o in sets]
              for s in SCORES]
      blocks.append(f"{metric_label} against {label}'s test images, mean ± sd over seeds:\n\n"
                    + report.table(["score"] + sets, rows))
    means = {s: {o: float(np.mean(metric_values(group, o, s))) for o in sets} for s in SCORES}
    below = [o for o in sets if means[RAW][o] < 0.5]
    finding = (
        "Raw −log p(x) ranks " + (", ".join(f"{o} (AUROC {means[RAW][o]:.3f})" for o in below)
                                   + " *below* the model's own test images on average: "
                                   "the trap of Nalisnick et al. (2019)" if below else
                                   "every set above the test images on average (AUROC > 0.5)")
        + ". The best mean AUROC per set: " + "; ".join(
            f"{o}: {SCORES[max(SCORES, key=lambda s: means[s][o])][0]} "
            f"({max(means[s][o] for s in SCORES):.3f})" for o in sets) + ".")
    blocks.append(report.QUICK_FINDINGS if results["quick"] else finding)
    test_means = {s: _mean_sd([t["ood"]["test"]["scores"][s]["mean"] for t in group], 1)
                  for s in SCORES}
    blocks.append(f"Mean score of {label}'s own test images (nats), mean ± sd over seeds: "
                  + "; ".join(f"{SCORES[s][0]} {v}" for s, v in test_means.items()) + ".")
    for fig in results["figures"]:
      if fig["trained_on"] == setting:
        blocks.append(f"![{fig['caption']}]({fig['path']})\n\n*{fig['caption']} (seed "
                      f"{seeds[0]}).*")
  blocks.append(_tests_section(results))
  blocks.append(_published_section(results))
  blocks.append(f"*Reproduce:* `kerasvae study ood" + (" --quick" if results["quick"] else "")
                + "".join(f" --set {o}" for o in results["overrides"]) + "`")
  return "\n\n".join(b for b in blocks if b) + "\n"


def _budget(results):
  rows = []
  for t in results["trials"]:
    bg = t["ood"]["background"]
    rows.append([t["name"], t["epochs_run"], report.fmt(t["train_seconds"], 0),
                 report.fmt(t["evaluate_seconds"], 0), bg["epochs"],
                 report.fmt(bg["train_seconds"], 0), report.fmt(t["ood"]["score_seconds"], 0)])
  machine = results.get("machine") or {}
  cpu = (f"{results['cpu_seconds'] / 60:.1f} CPU-minutes (user + system) in "
         f"{results['wall_clock_seconds'] / 60:.1f} minutes of wall-clock for this invocation "
         f"on {machine.get('cpu', 'this machine')} ({machine.get('cores', '?')} cores, shared "
         "with other work); trials and background models finished by an earlier invocation are "
         "reused and not counted")
  return ("**Budget.** " + cpu + ".\n\n"
          + report.table(["trial", "epochs run", "train s", "evaluate s", "background epochs",
                          "background train s", "scoring s"], rows))


def _tests_section(results):
  tests = results["tests"]
  if not tests:
    return ("**Tests.** One training seed: no difference between scores is claimed.")
  rows = [[DATA_NAMES.get(r["trained_on"], r["trained_on"]) + " → " + r["ood"],
           SCORES[r["score"]][0], f"{r['mean_difference']:+.3f}", f"{r['p_value']:.2g}",
           f"{r['p_holm']:.2g}", "yes" if r["p_holm"] < 0.05 else "no"] for r in tests]
  return ("## Which differences are real\n\nEach score's AUROC against raw −log p(x)'s on the "
          "other data set, per direction: a two-sided paired t-test over the training seeds "
          f"(n = {len({t['seed'] for t in results['trials']})}, the same seed's two scores "
          "are paired), Holm–Bonferroni corrected over the "
          f"{len(tests)} comparisons; a difference is claimed only where the corrected p is "
          "below 0.05.\n\n"
          + report.table(["direction", "score", "AUROC − raw", "p", "p (Holm)", "claimed"],
                         rows))


def _published_section(results):
  rows = [[p["source"], p["model"], p["budget"], p["score"],
           "—" if p["auroc"] is None else f"{p['auroc']:.3f}"] for p in results["published"]]
  ours = headline(results).get(("fashion-mnist", "MNIST"))
  text = ("## Beside the published numbers (Fashion-MNIST → MNIST)\n\n"
          "AUROCs published for a model trained on Fashion-MNIST scoring its test images "
          "against MNIST. Only numbers we are sure of are given; a dash means the paper reports "
          "the score on this pair but we do not quote its number from memory, or does not "
          "report an AUROC. The papers' models are far larger than this study's MLP VAE.\n\n"
          + report.table(["source", "model", "budget", "score", "AUROC"], rows))
  if ours:
    text += (f"\n\nThis study, MLP VAE: raw log p(x) {_mean_sd(ours[RAW])}, input complexity "
             f"{_mean_sd(ours[EXPORTED])} (mean ± sd over seeds).")
  return text


# ------------------------------------------------------------------ what other pages quote


def _direction(setting):
  other = next(DATA_NAMES[s] for s in DATA_NAMES if s != setting)
  return f"{DATA_NAMES[setting]} → {other}", other


def serving_block(results):
  """The paragraphs docs/serving.md quotes (between its `ood-study` markers), from results.json."""
  groups = _by_setting(results)
  seeds = sorted({t["seed"] for t in results["trials"]})
  lines = []
  for setting, group in groups.items():
    _, other = _direction(setting)
    if other not in group[0]["ood"]["sets"]:
      continue
    cells = {label: (_mean_sd(metric_values(group, name, RAW)),
                     _mean_sd(metric_values(group, name, EXPORTED)))
             for name, label in ((other, other), ("constant", "constant images"),
                                 ("uniform noise", "uniform noise"))}
    lines.append(f"- trained on {DATA_NAMES[setting]}: "
                 + "; ".join(f"against {name} {raw} with raw log p(x), {fixed} with "
                             "`anomaly_score`" for name, (raw, fixed) in cells.items()))
  text = ("AUROC measured by `kerasvae study ood` ([report](studies/ood/report.md): an MLP VAE "
          "with a continuous Bernoulli decoder, mean ± sd over training "
          f"{report.seed_phrase(seeds)}; 0.5 is chance, and below 0.5 a score ranks the "
          "out-of-distribution images as *more* normal than the model's own test images):\n\n"
          + "\n".join(lines))
  cost = results.get("cost")
  if cost:
    ms = {k: 1000 * v for k, v in cost.items() if isinstance(v, float)}
    text += ("\n\nCost per image on the study's machine "
             f"({(cost.get('machine') or {}).get('cpu', 'CPU')}, its 2 cores shared with other "
             f"work, so upper bounds; batches of {cost['batch']}, the Fashion-MNIST model): "
             f"`log_likelihood` {ms['log_likelihood_k100']:.2f} ms at "
             f"K = 100 and {ms['log_likelihood_k1000']:.2f} ms at K = 1000; `anomaly_score` "
             f"{ms['anomaly_score_k100']:.2f} and {ms['anomaly_score_k1000']:.2f} ms; the PNG "
             f"code length alone {ms['png']:.3f} ms.")
  return text


def readme_cells(results):
  """The README studies-table row's cells (question, command, numbers, report), from
  results.json: `kerasvae.studies.published` puts them in the generated table."""
  parts = []
  for (setting, ood_name), values in headline(results).items():
    parts.append(f"{DATA_NAMES[setting]} → {ood_name}: raw log p(x) {_mean_sd(values[RAW])}, "
                 f"`anomaly_score` (−log p(x) − L_PNG(x)) {_mean_sd(values[EXPORTED])}")
  seeds = sorted({t["seed"] for t in results["trials"]})
  return ["Does a VAE's log p(x) flag another data set, noise, constant, flipped or inverted "
          f"images, and do the literature's corrections? (Fashion-MNIST and MNIST, "
          f"{len(seeds)} seeds)", "`kerasvae study ood`", "AUROC " + "; ".join(parts),
          "[report](docs/studies/ood/report.md)"]


def readme_row(results):
  """The README studies-table row, from results.json."""
  return "| " + " | ".join(readme_cells(results)) + " |"


def serving_text(results, text):
  """docs/serving.md's `text` with `serving_block` between its markers."""
  start = text.index(SERVING_BEGIN) + len(SERVING_BEGIN)
  end = text.index(SERVING_END)
  return text[:start] + "\n" + serving_block(results) + "\n" + text[end:]


SERVING_BEGIN = "<!-- ood-study:begin (rendered from docs/studies/ood/results.json by " \
    "kerasvae.studies.ood.serving_block) -->"
SERVING_END = "<!-- ood-study:end -->"


def render_docs(results, serving_md, readme):
  """Writes `serving_block` between docs/serving.md's markers and `readme_row` over the README
  row of this study (the row naming `kerasvae study ood`, or before the table's end)."""
  artifacts.write_text(serving_md, serving_text(results, Path(serving_md).read_text()))
  lines = Path(readme).read_text().splitlines()
  row = readme_row(results)
  mine = [i for i, line in enumerate(lines) if "| `kerasvae study ood` |" in line]
  if mine:
    lines[mine[0]] = row
  else:
    last = max(i for i, line in enumerate(lines)
               if line.startswith("| ") and "kerasvae study" in line)
    lines.insert(last + 1, row)
  artifacts.write_text(readme, "\n".join(lines) + "\n")
