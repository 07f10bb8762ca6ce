"""Markdown pieces of a study report: tables, figures, the data and budget paragraphs."""

import math


def fmt(value, digits=2):
  """A table cell: numbers with `digits` decimals, lists as space-separated numbers."""
  if value is None:
    return "–"
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    if math.isnan(value):
      return "nan"
    return f"{value:.{digits}f}"
  if isinstance(value, (list, tuple)):
    return " ".join(fmt(v, digits) for v in value)
  return str(value)


def table(headers, rows):
  """A markdown table; `rows` are lists of already formatted cells."""
  lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(str(c) for c in row) + " |")
  return "\n".join(lines)


def figure(context, caption, path):
  """Markdown embedding a PNG of the study dir (relative path) and records it."""
  context.add_figure(caption, path)
  rel = path.relative_to(context.output).as_posix()
  return f"![{caption}]({rel})\n\n*{caption}*"


def data_paragraph(config, split_counts):
  """Where the data comes from and how it is split, in words."""
  ingest = config.ingest
  source = ingest.data.source
  n_train, n_eval = split_counts.get("train", 0), split_counts.get("eval", 0)
  if source == "idx":
    where = ingest.data.idx.images
    split = (f"the first {ingest.split.eval_start:,} digits train and the remaining "
             f"{n_eval:,} are held out for evaluation" if ingest.split.method == "index"
             else f"{n_train:,} train, {n_eval:,} held out")
    binar = (" Pixels are binarised dynamically (a fresh Bernoulli draw of each grey level every "
             "epoch; evaluation uses one fixed draw)." if ingest.binarize == "dynamic" else "")
    return (f"**Data.** MNIST here is the official MNIST *test* split of 10,000 digits "
            f"(`{where}`), the only MNIST copy available offline: {split} "
            f"({n_train:,} / {n_eval:,} examples). All numbers below are on the {n_eval:,} "
            f"held-out digits.{binar}")
  if source == "dsprites":
    d = ingest.data.dsprites
    restricted = {name: values for name in ("shapes", "scales", "orientations", "pos_x", "pos_y")
                  if (values := getattr(d, name)) is not None}
    from kerasvae.data import dsprites  # pylint: disable=import-outside-toplevel
    size = math.prod(len(c) for c in dsprites.allowed_classes(**restricted))
    chosen = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in restricted.items())
    grid = (f"the grid restricted to {chosen} ({size:,} images)" if restricted
            else f"the full grid of {size:,} images")
    drawn = (f"{d.num_examples:,} images drawn from it with seed {d.seed}" if d.num_examples
             else "every image of it")
    return (f"**Data.** dSprites (64×64 binary images of a square, ellipse or heart at 6 scales, "
            f"40 orientations and 32×32 positions; rendered by the built-in generator): "
            f"{grid}, {drawn}: {n_train:,} for training and {n_eval:,} held out. The "
            f"disentanglement scores sample fresh images from the same grid's ground-truth "
            f"factors.")
  return f"**Data.** source `{source}`: {n_train:,} training and {n_eval:,} held-out examples."


def trend(values, tolerance=0.0):
  """'rises', 'falls', 'stays flat' or 'is not monotone' for a sequence of numbers.

  Differences within `tolerance` count as equal, so noise does not make a trend.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  d = np.diff(np.asarray(values, dtype=np.float64))
  if np.all(np.abs(d) <= tolerance):
    return "stays flat"
  if np.all(d >= -tolerance):
    return "rises"
  if np.all(d <= tolerance):
    return "falls"
  return "is not monotone"


LIKELIHOOD_NAMES = {"bernoulli": "Bernoulli", "gaussian": "Gaussian",
                    "continuous_bernoulli": "continuous Bernoulli"}


def model_sentence(config, capital=False):
  """'an MLP encoder and decoder with hidden layers [...], a Bernoulli decoder'."""
  m = config.model
  if m.architecture == "mlp":
    net = f"an MLP encoder and decoder with hidden layers {list(m.hidden_units)}"
  else:
    net = (f"a convolutional encoder and decoder (stride-2 convolutions with "
           f"{list(m.filters)} channels, a {m.dense_units}-unit dense layer)")
  text = f"{net}, a {LIKELIHOOD_NAMES.get(m.likelihood, m.likelihood)} decoder"
  return text[0].upper() + text[1:] if capital else text


def budget_section(trials, wall_clock_seconds, quick):
  """The training budget of every trial and the study's wall-clock."""
  c = trials[0].config
  t = c.train
  lines = []
  if quick:
    lines.append("> **Quick mode.** This is the tiny version the tests run: a few training steps "
                 "per trial, so the numbers and pictures say nothing about the models. Run the "
                 "study without `--quick` for the real thing.\n")
  lines.append(f"**Budget.** Each trial trains for at most {t.epochs} epoch(s) of "
               f"{trials[0].steps_per_epoch} steps (batch {t.batch_size}, Adam, learning rate "
               f"{t.learning_rate:g}"
               + (f", early stopping after {t.early_stopping_patience} evaluations without a "
                  "better held-out ELBO" if t.early_stopping_patience else "")
               + f", {_seeds(trials)}). From scratch, the trials' training and evaluation take "
               f"{sum(tr.train_seconds + tr.evaluate_seconds for tr in trials) / 60:.1f} minutes "
               "in all (the table, measured on this machine: 2 CPU cores); this invocation took "
               f"{wall_clock_seconds / 60:.1f} minutes of wall-clock, since trials finished by an "
               "earlier invocation are reused and the study's own analysis comes on top.\n")
  rows = [[tr.name, tr.epochs_run, f"{tr.epochs_run * tr.steps_per_epoch * t.batch_size:,}",
           fmt(tr.train_seconds, 0), fmt(tr.evaluate_seconds, 0)] for tr in trials]
  lines.append(table(["trial", "epochs run", "examples seen", "train s", "evaluate s"], rows))
  return "\n".join(lines)


def _seeds(trials):
  """'seed 0', or 'seeds 0, 1 and 2' when the trials differ in their training seed."""
  seeds = sorted({tr.config.train.seed for tr in trials})
  if len(seeds) == 1:
    return f"seed {seeds[0]}"
  return f"seeds {', '.join(map(str, seeds[:-1]))} and {seeds[-1]}"


def tensorboard_section(context):
  extra = (" The study's own numbers, such as sample quality, are scalars under `study/`."
           if context.settings.sample_quality else "")
  return ("**TensorBoard.** Every trial is a normal pipeline run in `runs/`; "
          f"`tensorboard --logdir {context.output / 'runs'}` shows their training curves, "
          "images, eval latents in the projector and, in the HParams tab, one session per trial "
          f"with its config and final metrics.{extra}")


def split_counts(examples_dir):
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  meta = reader.read_metadata(examples_dir)
  counts = {}
  for role in ("train", "eval"):
    name = reader.split_name(meta, role)
    counts[role] = meta["splits"].get(name, {}).get("num_examples", 0)
  return counts

