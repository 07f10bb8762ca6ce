"""The precision study: one VAE trained with float32 networks and with bfloat16 ones.

`train.precision: mixed_bfloat16` computes the encoder's and decoder's layers in bfloat16 and
keeps everything else in float32 (`kerasvae.models.networks`). The report asks two things:
does the model learn something else (its test ELBO, IWAE log-likelihood, reconstruction, KL
and active units, against the spread between training seeds), and how much faster does it
train, seed by seed, on the CPU its trials ran on. A third section evaluates each bfloat16
model's weights with float32 networks: what the lower precision costs at inference alone.
"""

import json

import numpy as np

from kerasvae import viz
from kerasvae.studies import core
from kerasvae.studies import report

FLOAT32 = "float32"
SPEED = "train_images_per_second"  # the key the analysis adds to every trial's metrics
# What the model learned: (metric key, label, higher is better; None: neither).
LEARNED = (("elbo", "test ELBO", True), ("iwae_log_likelihood", "IWAE log p(x)", True),
           ("reconstruction", "reconstruction", False), ("kl", "KL", None),
           ("active_units", "active units", None))
INFERENCE_EXAMPLES = 500  # test images the float32-inference check scores
NUM_IMAGES = 10  # columns of the pictures


def training_rate(trial):
  """Training images per second: the mean over the epochs after the first (the first also
  traces and compiles the step), or the first's when the trial trained one epoch."""
  rates = [float(r["examples_per_second"]) for r in report.train_history(trial.run_dir / "train")
           if "examples_per_second" in r]
  if not rates:
    return float("nan")
  return float(np.mean(rates[1:] if len(rates) > 1 else rates))


def trained_on(trials):
  """The CPUs the trials' train steps recorded (`artifacts.machine`) with any kernel switch
  (an ISA cap), in order, without repeats; 'not recorded' for a train step written before
  steps recorded their machine."""
  cpus = []
  for trial in trials:
    meta = json.loads((trial.run_dir / "train" / "metadata.json").read_text())
    machine = meta.get("machine") or {}
    switches = machine.get("kernel_switches") or {}
    cpus.append(machine.get("cpu", "not recorded")
                + "".join(f", {k}={v}" for k, v in sorted(switches.items())))
  return list(dict.fromkeys(cpus))


def float32_twin(model):
  """The same model and weights with float32 networks."""
  twin = type(model).from_config({**model.get_config(), "network_dtype": FLOAT32})
  twin(np.zeros((1,) + tuple(model.image_shape), np.float32))  # builds the variables
  twin.set_weights(model.get_weights())
  return twin


def analyse_precision(context, trials):
  """Sections on speed, on what the model learned and on float32 inference, and pictures.

  Args:
    context: the `StudyContext`.
    trials: every trial (precisions × seeds); a precision is a trial's `setting`.

  Returns:
    The report's markdown blocks.
  """
  for trial in trials:
    trial.metrics[SPEED] = training_rate(trial)
    core.write_study_scalars(trial, {SPEED: trial.metrics[SPEED]})
  groups = report.by_setting(trials)
  blocks = _speed_section(groups, trials, context.sweep)
  blocks += _verdict(groups)
  blocks += _inference_section(context, trials)
  blocks += _pictures(context, groups)
  return blocks


def _float32_by_seed(groups):
  """{seed: the float32 trial of that seed}: a trial's partner with the same initial weights
  and data order."""
  return {t.seed: t for t in groups.get(FLOAT32, [])}


def _speed_section(groups, trials, sweep=False):
  baseline = _float32_by_seed(groups)
  others = [name for name in groups if name != FLOAT32]
  rows, ratios = [], {name: [] for name in others}
  for name in others:
    for trial in groups[name]:
      base = baseline.get(trial.seed)
      ratio = trial.metrics[SPEED] / base.metrics[SPEED] if base else float("nan")
      if base:
        ratios[name].append(ratio)
      rows.append([name, trial.seed, f"{base.metrics[SPEED]:,.0f}" if base else "–",
                   f"{trial.metrics[SPEED]:,.0f}", f"{ratio:.2f}x" if base else "–"])
  cpus = trained_on(trials)
  blocks = ["## Training speed",
            "Training images per second of each trial: the mean over its epochs after the "
            "first (the first also traces the step), as its `history.json` records them. "
            + ("The trials trained in their own tasks of a Kubeflow sweep, side by side, so "
               "their speeds compare only as far as those tasks ran on like machines without "
               "sharing them. " if sweep else
               "The trials trained one after another in one process, so their speeds compare "
               "as far as the machine's other load stayed the same. ")
            + "Trained on: " + "; ".join(f"`{cpu}`" for cpu in cpus) + "."]
  if rows:
    blocks.append(report.table(["precision", "seed", f"{FLOAT32} images/s", "images/s",
                                f"against {FLOAT32}"], rows))
  for name, values in ratios.items():
    if len(values) == 1:
      blocks.append(f"**{name}** trained at {values[0]:.2f}x the images per second of "
                    f"{FLOAT32} (one seed).")
    elif values:
      blocks.append(f"**{name}** trained at {min(values):.2f}–{max(values):.2f}x the images per "
                    f"second of {FLOAT32}, seed by seed (mean {np.mean(values):.2f}x).")
  return blocks


def _verdict(groups):
  """Whether the seeds separate each lower precision from float32 on what the model learned
  (the across-seed table above the sections gives the numbers)."""
  base = groups.get(FLOAT32)
  lines = []
  for name, group in groups.items():
    if name == FLOAT32 or not base:
      continue
    if min(len(group), len(base)) < 2:
      lines.append(f"- **{name}**: one training seed, so no difference from {FLOAT32} can be "
                   "told from the spread between seeds.")
      continue
    found = report.compare({name: group, FLOAT32: base}, [(name, FLOAT32)],
                           [(key, label, 2, higher) for key, label, higher in LEARNED],
                           "precision")
    info = {key: (label, higher) for key, label, higher in LEARNED}
    apart = [f"{info[c.key][0]}: {report.comparison_phrase(c, 2, info[c.key][1])}"
             for c in found if c.different]
    power = ", ".join(f"{info[c.key][0]} |Δ| ≥ {c.detectable:.2f}" for c in found
                      if not c.different)
    lines.append(f"- **{name}** against {FLOAT32}: " + (
        "different after the Holm correction on " + "; ".join(apart)
        + ("; no difference detected on the other numbers" if power else "") + "."
        if apart else "no difference detected on any number: at this budget the test finds "
        "nothing the precision changes beyond what the training seed does")
        + (f" (power: 80 % only for {power})." if power else ""))
  if not lines:
    return []
  blocks = ["## What the model learned",
            "The across-seed table above gives each precision's test numbers; here, whether "
            "the seeds separate the lower precision from float32 on "
            + ", ".join(label for _, label, _ in LEARNED[:-1]) + f" and {LEARNED[-1][1]}. "
            + report.TEST_RULE,
            "\n".join(lines)]
  return blocks + _paired(groups)


def _paired(groups):
  """Seed by seed: a trial and the float32 trial of its seed start from the same weights and
  read the data in the same order, so their difference is the precision's alone."""
  base = _float32_by_seed(groups)
  rows = []
  for name, group in groups.items():
    for trial in group:
      if name == FLOAT32 or trial.seed not in base:
        continue
      cells = []
      for key, _, _ in LEARNED:
        a, b = trial.metrics.get(key), base[trial.seed].metrics.get(key)
        cells.append(f"{a - b:+.2f}" if report.is_number(a) and report.is_number(b) else "–")
      rows.append([name, trial.seed] + cells)
  if not rows:
    return []
  spread = {key: report.seed_values(groups[FLOAT32], key) for key, _, _ in LEARNED}
  sds = ", ".join(f"{label} {spread[key].std(ddof=1):.2f}" for key, label, _ in LEARNED
                  if len(spread[key]) > 1)
  return ["Seed by seed: each trial minus the float32 trial of the same seed, which started "
          "from the same initial weights and read the data in the same order, so that the "
          "difference is the precision's alone"
          + (f" (for scale, the float32 seeds' standard deviation: {sds})" if sds else "")
          + ".",
          report.table(["precision", "seed"] + [f"{label} difference" for _, label, _ in LEARNED],
                       rows)]


def _inference_section(context, trials):
  """Each lower-precision model's test ELBO as it computes, and with float32 networks."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  mixed = [t for t in trials if t.setting != FLOAT32]
  if not mixed:
    return []
  images = reader.load_split(context.examples_dir, "eval", limit=INFERENCE_EXAMPLES)["image"]
  rows = []
  for trial in mixed:
    model = core.load_trial_model(trial)
    seed = trial.config.evaluate.seed
    own = model.elbo(images, seed=seed)["elbo"].numpy().astype(np.float64)
    exact = float32_twin(model).elbo(images, seed=seed)["elbo"].numpy().astype(np.float64)
    trial.metrics["elbo_float32_inference"] = float(exact.mean())
    rows.append([trial.name, f"{own.mean():.3f}", f"{exact.mean():.3f}",
                 f"{(own - exact).mean():+.3f}", f"{np.abs(own - exact).max():.3f}"])
  return ["## The same weights computed in float32",
          f"Each lower-precision model's ELBO on {len(images):,} test images as it computes "
          "(its networks in bfloat16), and with the same weights in float32 networks, with the "
          "same draw of z: what the precision costs at inference alone, apart from what it "
          "changed in training.",
          report.table(["trial", "ELBO as trained", "ELBO in float32", "mean difference",
                        "largest difference for one image"], rows)]


def _pictures(context, groups):
  """Test images, each precision's reconstructions and its samples from one draw of z."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  images = reader.load_split(context.examples_dir, "eval", limit=NUM_IMAGES,
                             binarize_seed=None)["image"]
  firsts = {name: group[0] for name, group in groups.items()}
  models = {name: core.load_trial_model(trial) for name, trial in firsts.items()}
  latent_dim = next(iter(models.values())).latent_dim
  z = np.random.default_rng(context.settings.seed).standard_normal(
      (NUM_IMAGES, latent_dim)).astype(np.float32)
  rows, labels = [viz.image_grid(images, ncols=NUM_IMAGES)], ["test images"]
  for name, model in models.items():
    rows.append(viz.image_grid(model.reconstruct(images).numpy(), ncols=NUM_IMAGES))
    labels.append(f"{name}\nreconstructions")
  for name, model in models.items():
    rows.append(viz.image_grid(model.decode_mean(z).numpy(), ncols=NUM_IMAGES))
    labels.append(f"{name}\nsamples")
  seeds = sorted({t.seed for t in firsts.values()})
  path = context.figure_path("precision_pictures")
  viz.save_png(viz.labelled_rows(rows, labels, title="Reconstructions and samples, seed "
                                 + ", ".join(map(str, seeds))), path)
  return ["## Pictures", report.figure(
      context, f"Test images, each precision's reconstructions of them (decoder means of the "
      "posterior means), and decoded samples: the same ten draws of z ~ N(0, I) through each "
      f"precision's decoder (training seed {', '.join(map(str, seeds))}).", path)]
