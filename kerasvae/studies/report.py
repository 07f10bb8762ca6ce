"""Markdown pieces of a study report: tables, figures, the data and budget paragraphs."""

import dataclasses
import json
import math
import re
from pathlib import Path

from kerasvae import kinds
from kerasvae.metrics import registry as metric_registry


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


@dataclasses.dataclass(frozen=True)
class DataWords:
  """How a report names its data, so no sentence calls a garment a digit.

  Attributes:
    name: the data set's name ("MNIST", "Fashion-MNIST"); "" for data the reports do not know.
    noun: one example, as in "nats per digit", "held-out images" (`nouns`: the plural).
    kind: what the classifier recognises, as in "do they look like some digit?" (`kinds`).
    classes: the classes as a group, as in "the ten digits are equally frequent".
    class_names: each label's name ("1" for MNIST's digit, "Trouser" for Fashion-MNIST's 1);
      empty: the labels themselves.
  """
  name: str
  noun: str
  nouns: str
  kind: str
  kinds: str
  classes: str
  class_names: tuple = ()

  def class_name(self, label):
    """The name of class `label` ("Trouser"), or the label itself."""
    label = int(label)
    return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

  @property
  def named(self):
    """'MNIST digits', 'Fashion-MNIST images', or 'images' for other data."""
    return f"{self.name} {self.nouns}" if self.name else self.nouns


# Keyed by the data set's folder, file or TFDS name (`known_data_set`). Fashion-MNIST's ten
# classes are clothes, shoes and bags: an example is an image, a class a fashion item.
DATA_WORDS = {
    "mnist": DataWords("MNIST", "digit", "digits", "digit", "digits", "digits"),
    "fashion_mnist": DataWords("Fashion-MNIST", "image", "images", "fashion item",
                               "fashion items", "classes",
                               ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                "Shirt", "Sneaker", "Bag", "Ankle boot")),
}
OTHER_DATA_WORDS = DataWords("", "image", "images", "object", "objects", "classes")
_IMAGE_FIELDS = {"idx": "images", "npz": "path", "image_folder": "root", "tfds": "name"}


def known_data_set(ingest):
  """The key of `DATA_WORDS` that an ingest config reads, or None for any other data.

  Read from the data's own name: the images file's name or its folder's (`mnist/`,
  `fashion_mnist/`, Debian's `fashion-mnist/`, `fashion_mnist.npz`) or the TFDS name, never
  from the study's name. Only a whole name counts, so `kmnist` or `emnist` are other data.
  """
  source = ingest.data.source
  if source not in _IMAGE_FIELDS:
    return None
  value = getattr(getattr(ingest.data, source), _IMAGE_FIELDS[source]) or ""
  path = Path(value)
  for name in (path.name, path.parent.name):
    key = re.sub(r"[-_ ]+", "_", re.sub(r"(\.(gz|npz|npy))+$|:.*$", "", name.lower()))
    if key in DATA_WORDS:
      return key
  return None


def data_words(ingest):
  """The `DataWords` of the data an ingest config reads: MNIST's digits, Fashion-MNIST's
  images, or neutral images for any other data."""
  return DATA_WORDS.get(known_data_set(ingest), OTHER_DATA_WORDS)


def data_paragraph(config, split_counts):
  """Where the data comes from and how it is split, in words."""
  ingest = config.ingest
  source = ingest.data.source
  n_train, n_validation, n_test = (split_counts.get(k, 0) for k in ("train", "validation", "test"))
  protocol = (f" Three disjoint splits: {n_train:,} train, {n_validation:,} validation "
              "(early stopping and the best checkpoint read these only) and "
              f"{n_test:,} test. Every number below is on the test split.")
  if source == "idx":
    where = ingest.data.idx.images
    data_set = known_data_set(ingest)
    nouns = data_words(ingest).nouns
    split = (f"{nouns} 0–{ingest.split.validation_start - 1:,} train, "
             f"{ingest.split.validation_start:,}–{ingest.split.eval_start - 1:,} validate and the "
             f"remaining {n_test:,} are the test split" if ingest.split.method == "index"
             else "split by a hash of each example's index" if ingest.split.method == "hash"
             else "the source's own test split is the test split, the validation split comes "
             "from its training split")
    binar = (" Pixels are binarised dynamically (a fresh Bernoulli draw of each grey level every "
             "epoch; evaluation uses one fixed draw)." if ingest.binarize == "dynamic" else "")
    if data_set == "fashion_mnist":
      what = ("**Data.** Fashion-MNIST (Xiao et al. 2017; 28×28 grey images of clothes, shoes and "
              f"bags in ten classes), its official 60,000 training and 10,000 test images "
              f"(`{where}`): ")
    elif data_set == "mnist" and Path(where).name.startswith("t10k"):
      what = ("**Data.** MNIST here is the official MNIST *test* split of 10,000 digits "
              f"(`{where}`), the only MNIST copy available offline: ")
    elif data_set == "mnist":
      what = f"**Data.** MNIST digits (`{where}`): "
    else:
      what = f"**Data.** IDX images (`{where}`): "
    return f"{what}{split}.{protocol}{binar}"
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
            f"{grid}, {drawn}.{protocol} The disentanglement scores sample fresh images from "
            "the same grid's ground-truth factors.")
  return f"**Data.** source `{source}`.{protocol}"


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
  settings = m.settings
  if isinstance(settings, kinds.LikelihoodPriorSettings):
    text = f"{net}, a {LIKELIHOOD_NAMES.get(settings.likelihood, settings.likelihood)} decoder"
  else:
    loss = {"bce": "binary cross-entropy", "mse": "squared error"}[settings.reconstruction_loss]
    text = f"{net}, a sigmoid decoder trained on {loss}"
  return text[0].upper() + text[1:] if capital else text


FINDINGS_HEADING = "## What the numbers say"
QUICK_FINDINGS = ("*Quick mode: no conclusions. A few training steps leave every model "
                  "untrained, so the numbers above answer nothing; run the study without "
                  "`--quick` for its findings.*")


def without_findings(blocks):
  """A quick report's markdown `blocks` with the findings (the "What the numbers say" section,
  up to the next `## ` heading) replaced by `QUICK_FINDINGS`: they are still computed, so the
  quick run exercises their code, but a few training steps support no conclusion."""
  kept, skipping = [], False
  for block in blocks:
    if block and block.startswith(FINDINGS_HEADING):
      kept += [FINDINGS_HEADING, QUICK_FINDINGS]
      skipping = True
    elif skipping and block and block.startswith("## "):
      skipping = False
    if not skipping:
      kept.append(block)
  return kept


def budget_section(trials, wall_clock_seconds, quick, sweep=False):
  """The training budget of every trial and the study's wall-clock.

  `sweep`: the trials ran as a Kubeflow sweep (`kerasvae pipeline compile --study`), each in
  its own tasks, and `wall_clock_seconds` is the report task's alone.
  """
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
                  "better validation objective, the weights of the best evaluation kept"
                  if t.early_stopping_patience else ", a fixed budget: no early stopping, the "
                  "last epoch's weights")
               + f", {_seeds(trials)}). From scratch, the trials' training and evaluation take "
               f"{sum(tr.train_seconds + tr.evaluate_seconds for tr in trials) / 60:.1f} minutes "
               + ("in all (the table, measured in each trial's own tasks of a Kubeflow sweep, "
                  "which ran side by side); the report task, the study's own analysis, took "
                  f"{wall_clock_seconds / 60:.1f} minutes.\n" if sweep else
                  "in all (the table, measured on this machine: 2 CPU cores); this invocation "
                  f"took {wall_clock_seconds / 60:.1f} minutes of wall-clock, since trials "
                  "finished by an earlier invocation are reused and the study's own analysis "
                  "comes on top.\n"))
  if t.early_stopping_patience:
    lines.append(selection_sentence({tr.config.model.kind for tr in trials}) + "\n")
  rows = [[tr.name, tr.epochs_run, f"{tr.epochs_run * tr.steps_per_epoch * t.batch_size:,}",
           fmt(tr.train_seconds, 0), fmt(tr.evaluate_seconds, 0)] for tr in trials]
  lines.append(table(["trial", "epochs run", "examples seen", "train s", "evaluate s"], rows))
  return "\n".join(lines)


def selection_sentence(model_kinds):
  """What early stopping selected each model kind on: its own training objective."""
  names = sorted(model_kinds)
  return ("**Selection.** Early stopping and the kept checkpoint follow each model's own "
          "objective on the validation split (`validation/objective` in TensorBoard): "
          + "; ".join(f"`{k}`: {kinds.KINDS[k].selection}" for k in names if k in kinds.KINDS)
          + ".")


# How results.json written before `selection` was recorded were selected.
OLD_SELECTION = (
    "**Selection.** These trials were trained before models were selected on their own "
    "objective: early stopping and the kept checkpoint followed the validation ELBO at β = 1 "
    "(autoencoders: the noise-free validation reconstruction), so a β-VAE was selected on a "
    "bound it does not train and a noisy autoencoder on a loss without its noise. The "
    "retraining the five-seed studies need selects each model on its own objective.")


FIXED_BUDGET = ("**Selection.** A fixed budget: no early stopping; every model is its last "
                "epoch's weights.")


def _seeds(trials):
  """'seed 0', or 'seeds 0, 1 and 2' when the trials differ in their training seed."""
  return seed_phrase({tr.config.train.seed for tr in trials})


def seed_phrase(seeds):
  """'seed 0', or 'seeds 0, 1 and 2', of a set of seeds."""
  seeds = sorted(seeds)
  if len(seeds) == 1:
    return f"seed {seeds[0]}"
  return f"seeds {', '.join(map(str, seeds[:-1]))} and {seeds[-1]}"


def tensorboard_section(context, sweep=False):
  extra = (" The study's own numbers, such as sample quality, are scalars under `study/`."
           if context.settings.sample_quality else "")
  if sweep:
    return ("**TensorBoard.** The trials ran as a Kubeflow sweep: each trial's training curves, "
            "images, projector and HParams session are in the `logs/` folder of its train "
            "task's Model artifact (`tensorboard --logdir` on those folders shows them side by "
            "side); the study's own numbers are in `results.json`.")
  return ("**TensorBoard.** Every trial is a normal pipeline run in `runs/`; "
          f"`tensorboard --logdir {context.output / 'runs'}` shows their training curves, "
          "images, eval latents in the projector and, in the HParams tab, one session per trial "
          f"with its config and final metrics.{extra}")


def split_counts(examples_dir):
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  meta = reader.read_metadata(examples_dir)
  counts = {}
  for role in ("train", "validation", "test"):
    name = reader.split_name(meta, role)
    counts[role] = meta["splits"].get(name, {}).get("num_examples", 0)
  return counts



# The test every report states (docs/concepts.md, "Comparing settings over seeds").
ALPHA = 0.05
POWER = 0.8
TEST_RULE = (
    "Each comparison is the difference of two settings' means over their training seeds with "
    "its 95 % interval and Welch's t-test (unequal variances; Welch–Satterthwaite degrees of "
    "freedom); the p-values of all the report's comparisons are corrected together by "
    "Holm–Bonferroni, and a pair is called *different* only where the corrected p-value is "
    "below 0.05 (a family-wise error rate of 5 %). Elsewhere the report says *no difference "
    "detected* and gives the test's power: the smallest difference it would detect with "
    "80 % power at the strictest Holm level (0.05 / the number of comparisons), given the "
    "seeds' spread. With three seeds per setting that difference is large: a detected "
    "difference is real at the stated error rate, an undetected one is not shown to be absent.")


def by_setting(trials):
  """{setting: [its trials (one per seed)]}, in the config's order."""
  groups = {}
  for trial in trials:
    groups.setdefault(trial.setting or trial.name, []).append(trial)
  return groups


def seed_values(trials, key, study=""):
  """The values of metric `key` over `trials` (one setting's seeds) as float64.

  Empty when no seed has the metric. Raises `schema.MissingSeedError` (naming the study, the
  setting, the metric and the seeds) when some seeds have it and others do not: a mean over
  fewer seeds than the setting has is never printed.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  from kerasvae.studies import schema  # pylint: disable=import-outside-toplevel
  present = [t for t in trials if is_number(t.metrics.get(key))
             and math.isfinite(float(t.metrics[key]))]
  if present and len(present) < len(trials):
    schema.check_all_seeds(
        [t if t in present else dataclasses.replace(t, metrics={}) for t in trials], key, study)
  return np.asarray([float(t.metrics[key]) for t in present], np.float64)


def mean_sd(values, digits=2):
  """'m ± sd' over seeds (sample standard deviation, ddof=1); 'm' with one seed."""
  if len(values) == 0:
    return "–"
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Welch's test of setting `a` against setting `b` on one metric (`welch`, `holm`).

  Attributes:
    difference: mean(a) − mean(b).
    low, high: its 95 % confidence interval (Welch).
    p_value: the two-sided Welch p-value; `holm_p` the Holm–Bonferroni adjusted one (set by
      `correct`).
    detectable: the smallest |difference| the test detects with `POWER` at level `alpha / m`.
  """
  key: str
  a: str
  b: str
  n_a: int
  n_b: int
  difference: float
  low: float
  high: float
  p_value: float
  df: float
  se: float
  holm_p: float = float("nan")
  detectable: float = float("nan")

  @property
  def different(self):
    return self.holm_p < ALPHA


def welch(a, b, confidence=0.95):
  """Welch's two-sample t-test of mean(a) − mean(b) and its confidence interval.

  With s_a², s_b² the sample variances (ddof=1): se² = s_a²/n_a + s_b²/n_b, t = Δ/se and
  df = se⁴ / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1)) (Welch–Satterthwaite); the interval is
  Δ ± t_{(1+confidence)/2, df}·se. Two groups without spread give p = 1 when their means are
  equal and 0 otherwise.

  Args:
    a, b: the two samples (at least two values each).

  Returns:
    {"difference", "low", "high", "p_value", "df", "se"}.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  from scipy import stats  # pylint: disable=import-outside-toplevel
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or len(b) < 2:
    raise ValueError(f"Expected at least two values per group. Received: {len(a)} and {len(b)}")
  diff = float(a.mean() - b.mean())
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  se = float(math.sqrt(va + vb))
  if se == 0.0:
    return {"difference": diff, "low": diff, "high": diff, "df": float(len(a) + len(b) - 2),
            "p_value": 1.0 if diff == 0.0 else 0.0, "se": 0.0}
  df = float((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)))
  t = diff / se
  half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
  return {"difference": diff, "low": diff - half, "high": diff + half, "df": df, "se": se,
          "p_value": float(2 * stats.t.sf(abs(t), df))}


def holm(p_values):
  """Holm–Bonferroni adjusted p-values, in the input's order.

  Sorted ascending p_(1) ≤ … ≤ p_(m), the adjusted p_(i) is max_{j ≤ i} min(1, (m − j + 1)·p_(j));
  rejecting where it is below α controls the family-wise error rate at α (Holm 1979).
  """
  m = len(p_values)
  order = sorted(range(m), key=lambda i: p_values[i])
  adjusted, running = [0.0] * m, 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p_values[i]))
    adjusted[i] = running
  return adjusted


def detectable_difference(se, df, alpha, power=POWER):
  """The |difference| a two-sided t-test at level `alpha` detects with probability `power`:
  (t_{1−α/2, df} + t_{power, df})·se (the usual normal-shift approximation, t quantiles)."""
  from scipy import stats  # pylint: disable=import-outside-toplevel
  return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def compare(groups, pairs, columns, study=""):
  """Welch's test for every pair of settings on every column, Holm-corrected together.

  Args:
    groups: {setting: [its trials]} (`by_setting`).
    pairs: [(setting a, setting b)] the report compares.
    columns: `(metric key, header, digits, higher_is_better)`.
    study: the study's name, for the error of a metric some seed lacks.

  Returns:
    [Comparison], with `holm_p` and `detectable` set; pairs where either setting has fewer
    than two seeds of the metric are left out.
  """
  found = []
  for key, *_ in columns:
    for a, b in pairs:
      va, vb = seed_values(groups[a], key, study), seed_values(groups[b], key, study)
      if len(va) < 2 or len(vb) < 2:
        continue
      found.append(Comparison(key=key, a=a, b=b, n_a=len(va), n_b=len(vb), **welch(va, vb)))
  adjusted = holm([c.p_value for c in found])
  m = max(len(found), 1)
  return [dataclasses.replace(c, holm_p=p, detectable=detectable_difference(c.se, c.df, ALPHA / m))
          for c, p in zip(found, adjusted)]


COMPARISON_PLANS = ("all_pairs", "against_first", "neighbours")


def comparison_pairs(names, plan="all_pairs"):
  """The pairs of settings a report compares: every pair, each against the first (the
  baseline), or each with the next (a sweep along one setting)."""
  names = list(names)
  if plan == "against_first":
    return [(b, names[0]) for b in names[1:]]
  if plan == "neighbours":
    return list(zip(names[1:], names[:-1]))
  if plan == "all_pairs":
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
  raise ValueError(f"Expected a comparison plan among {COMPARISON_PLANS}. Received: {plan!r}")


def per_seed(groups, setting, key, digits=2):
  """'18, 25 and 34 (seeds 0, 1 and 2)': one setting's values of `key`, seed by seed."""
  pairs = sorted((t.seed, t.metrics.get(key)) for t in groups.get(setting, [])
                 if is_number(t.metrics.get(key)))
  if not pairs:
    return "–"
  values = [fmt(v, digits) if isinstance(v, float) else str(v) for _, v in pairs]
  text = values[0] if len(values) == 1 else f"{', '.join(values[:-1])} and {values[-1]}"
  return f"{text} ({seed_phrase([s for s, _ in pairs])})"


def direction_tests(groups, first, last, keys, digits):
  """Welch's test of setting `last` against `first` on each of `keys`, Holm-corrected over
  them: {key: "higher" / "lower" / "no difference detected"} and the sentence stating it.
  A finding about a trend from `first` to `last` uses these, never one seed's numbers."""
  found = {}
  tests = []
  for key in keys:
    a, b = seed_values(groups[last], key), seed_values(groups[first], key)
    if len(a) >= 2 and len(b) >= 2:
      tests.append((key, welch(a, b)))
  adjusted = holm([t["p_value"] for _, t in tests])
  for (key, t), p in zip(tests, adjusted):
    found[key] = ("no difference detected" if p >= ALPHA else
                  "higher" if t["difference"] > 0 else "lower")
    found[key + "/text"] = (f"Δ = {t['difference']:+.{digits.get(key, 2)}f} "
                            f"[{t['low']:+.{digits.get(key, 2)}f}, "
                            f"{t['high']:+.{digits.get(key, 2)}f}], {p_equals('Holm p', p)}")
  return found


def format_p(p):
  """'0.032', '< 0.001', '1.000'; four decimals near 0.05, where the verdict turns."""
  if p < 0.001:
    return "< 0.001"
  return f"{p:.4f}" if 0.045 <= p < 0.055 else f"{p:.3f}"


def p_equals(name, p):
  """'Holm p = 0.012' or 'Holm p < 0.001'."""
  text = format_p(p)
  return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def comparison_phrase(c, digits, higher):
  """'A over B: Δ = +1.23 [+0.50, +1.96], Holm p = 0.012': the better setting first (the larger
  mean, 'above', where `higher` is None: neither is better), Δ its mean minus the other's."""
  first_is_a = c.difference <= 0 if higher is False else c.difference >= 0
  x, y, d, lo, hi = ((c.a, c.b, c.difference, c.low, c.high) if first_is_a
                     else (c.b, c.a, -c.difference, -c.high, -c.low))
  return (f"{x} {'above' if higher is None else 'over'} {y}: Δ = {d:+.{digits}f} "
          f"[{lo:+.{digits}f}, {hi:+.{digits}f}], {p_equals('Holm p', c.holm_p)}")


def train_history(train_dir):
  """A train step's `history.json`: one record per epoch ([] where there is none)."""
  path = Path(train_dir) / "history.json"
  return json.loads(path.read_text()) if path.is_file() else []


def validation_elbos(trial):
  """The validation ELBO after each epoch, as the trial's `history.json` records it ([] for a
  trial without its run directory)."""
  if not trial.run_dir:
    return []
  return [float(r["validation/elbo"]) for r in train_history(Path(trial.run_dir) / "train")
          if "validation/elbo" in r]


def still_learning(groups, noun="setting"):
  """How far each setting's validation ELBO (mean over its seeds) still rose in its last epoch,
  as report blocks: a setting far from convergence at the budget is compared as an
  under-trained model, not as itself.

  Args:
    groups: {setting: [its trials, one per seed]} (`by_setting`).
    noun: what a setting is called ("method", "β").

  Returns:
    [paragraph, table], or [] when no setting trained two epochs.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  curves = {}
  for name, group in groups.items():
    per_seed = [validation_elbos(t) for t in group]
    length = min((len(c) for c in per_seed), default=0)
    if length >= 2:
      curves[name] = np.mean([c[:length] for c in per_seed], axis=0)
  if not curves:
    return []
  gains = {name: c[-1] - c[-2] for name, c in curves.items()}
  rows = [[name, " → ".join(f"{v:.1f}" for v in c), f"{gains[name]:+.1f}",
           f"{100 * gains[name] / abs(c[-2]):+.1f} %"] for name, c in curves.items()]
  fastest = max(gains, key=gains.get)
  return [f"**Still learning?** The validation ELBO after each epoch (mean over the seeds) and "
          f"what the last epoch added. Where the last epoch still added much, the {noun}'s "
          f"numbers are those of a model far from convergence at this budget rather than its "
          f"own: the largest last-epoch gain is {fastest}'s ({gains[fastest]:+.1f} nats).",
          table([noun, "validation ELBO by epoch", "last epoch, nats", "last epoch, relative"],
                rows)]


def seed_summary(trials, columns, study="", plan="all_pairs", compared=None):
  """The across-seed table and the tests between settings, as markdown blocks.

  Args:
    trials: every trial of the study (settings × seeds).
    columns: `(metric key, header, digits, higher_is_better)`; `higher_is_better` None for a
      number that is neither (a KL, active units); metrics absent from every trial are left out.
    study: the study's name (for the error of a metric some seed lacks).
    plan: which pairs of settings are compared (`comparison_pairs`).
    compared: the metric keys the report tests (its primary numbers); None: every column.
      The other columns are descriptive: no test, so they cost the corrected tests no power.

  Returns:
    A list of markdown blocks: the table (mean ± sd per setting, every seed), the test's
    statement, one line per metric naming the pairs the corrected tests call different, and
    every comparison in a table.
  """
  groups = by_setting(trials)
  columns = [c for c in columns
             if any(len(seed_values(g, c[0], study)) for g in groups.values())]
  if not columns:
    return []
  seeds = sorted({t.seed for t in trials})
  rows = [[name, ", ".join(str(t.seed) for t in group)]
          + [mean_sd(seed_values(group, key, study), digits) for key, _, digits, _ in columns]
          for name, group in groups.items()]
  blocks = [f"Mean ± standard deviation (n − 1) over training {seed_phrase(seeds)}:",
            table(["setting", "seeds"] + [c[1] for c in columns], rows)]
  bounds = {t.metrics.get("mutual_information_bound") for t in trials} - {None}
  if bounds and any(c[0] == "mutual_information_xz" for c in columns):
    bound = min(bounds)
    examples = min(t.metrics.get("surgery_examples", 0) for t in trials
                   if "surgery_examples" in t.metrics)
    blocks.append(
        f"I(x;z) and KL(q(z)‖p(z)) split the KL column (ELBO surgery, `docs/concepts.md`), "
        f"estimated over {examples:,} test images taken as the data distribution: I(x;z) "
        f"cannot exceed log {examples:,} = {bound:.2f} nats there, and a value at that bound "
        "means the code tells every one of those images apart; the rest of the KL is then the "
        "mismatch between the aggregate posterior and the prior.")
  if len(seeds) < 2 or len(groups) < 2:
    if len(seeds) < 2:
      blocks.append("One training seed: the table cannot say which differences are larger than "
                    "the spread between seeds, so no ranking is drawn from it.")
    return blocks
  tested = [c for c in columns if compared is None or c[0] in compared]
  blocks += comparison_blocks(groups, tested, study, plan,
                              descriptive=len(tested) < len(columns))
  return blocks


PLAN_WORDS = {"all_pairs": "every pair of settings",
              "against_first": "every setting against the first ({first})",
              "neighbours": "each setting against the one before it"}


def comparison_blocks(groups, columns, study="", plan="all_pairs", descriptive=False):
  """The tests' statement, the metric-by-metric verdicts and the table of every comparison."""
  comparisons = compare(groups, comparison_pairs(groups, plan), columns, study)
  if not comparisons:
    return []
  info = {key: (header, digits, higher) for key, header, digits, higher in columns}
  m = len(comparisons)
  lines = []
  for key, (header, digits, higher) in info.items():
    mine = [c for c in comparisons if c.key == key]
    if not mine:
      continue
    found = [comparison_phrase(c, digits, higher) for c in mine if c.different]
    rest = [c for c in mine if not c.different]
    text = f"- **{header}**: " + ("different: " + "; ".join(found) if found else
                                  "no difference detected")
    if rest:
      smallest = min(c.detectable for c in rest)
      text += ((f"; no difference detected for the other {len(rest)} pair(s)" if found else "")
               + f" (power: 80 % only for |Δ| ≥ {smallest:.{digits}f}"
               + (", for the best-measured of them" if len(rest) > 1 else "") + ")")
    lines.append(text)
  rows = [[info[c.key][0], f"{c.a} − {c.b}", f"{c.n_a}, {c.n_b}",
           f"{c.difference:+.{info[c.key][1]}f}",
           f"[{c.low:+.{info[c.key][1]}f}, {c.high:+.{info[c.key][1]}f}]",
           format_p(c.p_value), format_p(c.holm_p),
           "different" if c.different else "no difference detected",
           f"{c.detectable:.{info[c.key][1]}f}"] for c in comparisons]
  first = next(iter(groups))
  what = (("on its primary numbers (" + ", ".join(h for h, _, _ in info.values())
           + "; the table's other columns are descriptive, not tested)") if descriptive
          else "on every number of the table")
  return [f"**Comparisons.** The report compares {PLAN_WORDS[plan].format(first=first)} "
          f"{what}: {m} comparisons. " + TEST_RULE,
          "\n".join(lines),
          "<details><summary>Every comparison: difference of means (first − second), its 95 % "
          "interval, Welch's p-value, the Holm-adjusted p-value, the verdict and the smallest "
          "difference detected with 80 % power</summary>\n\n"
          + table(["metric", "settings", "seeds", "Δ", "95 % interval", "p", "Holm p", "verdict",
                   "80 % power at |Δ| ≥"], rows) + "\n\n</details>"]


def metric_column(key, digits):
  """A `seed_summary` column `(key, header, digits, higher is better)` of a metric the evaluate
  step writes, its header and direction from `kerasvae.metrics.registry` (`MIG ↑`)."""
  metric = metric_registry.get(key)
  return (key, metric.header, digits, metric.higher_is_better)


# The numbers every study's across-seed table gives where its trials have them.
SEED_COLUMNS = (
    metric_column("iwae_log_likelihood", 2), metric_column("iwae_examples_elbo", 2),
    metric_column("elbo", 2), metric_column("reconstruction", 2), metric_column("kl", 2),
    metric_column("active_units", 1), metric_column("mutual_information_xz", 2),
    metric_column("marginal_kl", 2), metric_column("frechet_distance", 1),
    metric_column("precision", 3), metric_column("recall", 3),
    metric_column("classifier_confidence", 3),
    ("class_entropy_bits", "class entropy (bits)", 2, None),  # the studies' own (core.py)
    metric_column("beta_vae_score", 3), metric_column("factor_vae_score", 3),
    metric_column("mig", 3))


# The disentanglement scores the evaluate step writes (`kerasvae.steps.evaluate`), named as the
# reports name them (`kerasvae.metrics.registry`), in its order, each beside its active form;
# a report shows those a trial's metrics.json holds.
SCORE_LABELS = metric_registry.score_titles()
ACTIVE = metric_registry.ACTIVE_SUFFIX  # `mig_active`: the score on the active latents alone
PER_FACTOR = "_per_factor"  # `mig_per_factor`: one value per factor, in `factor_names`' order
RANKING = (
    "Disentanglement scores come in two forms: disentanglement_lib's, over every latent "
    "(`mig`), and the same score over the active latents alone, those whose KL exceeds "
    "`evaluate.active_latent_kl` (`mig_active`; `docs/concepts.md`). Where a trial has the "
    "active form the report tests and ranks by it, the other shown beside it for comparison "
    "with the literature; trials evaluated before it existed are ranked by "
    "disentanglement_lib's form.")


def ranked_key(key, trials):
  """The form of a score the report tests and ranks by: `<key>_active` where every trial has
  it, else `key` itself (results written before the active form existed)."""
  active = f"{key}{ACTIVE}"
  if key in SCORE_LABELS and trials and all(active in t.metrics for t in trials):
    return active
  return key


def is_number(value):
  """A metric value that is a number (an int or float, not a bool, a list or None)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def score_keys(trials):
  """The disentanglement scores the trials' metrics hold, in `SCORE_LABELS`' order, then any
  other score the evaluate step writes per factor too (a scalar `<key>` beside a list
  `<key>_per_factor`), in the order of the first trial's metrics."""
  held = {k for t in trials for k, v in t.metrics.items() if is_number(v)}
  per_factor = [k[:-len(PER_FACTOR)] for t in trials for k in t.metrics
                if k.endswith(PER_FACTOR)]
  return [k for k in SCORE_LABELS if k in held] + list(dict.fromkeys(
      k for k in per_factor if k in held and k not in SCORE_LABELS))


def score_label(key):
  """'MIG', 'DCI completeness'; a per-factor scalar 'MIG: shape'; an unknown key as it is."""
  score, _, factor = key.partition("/")
  label = SCORE_LABELS.get(score, score)
  return f"{label}: {factor}" if factor else label


def score_columns(trials):
  """`seed_summary` columns `(key, header ↑, 3 digits, higher is better)` of `score_keys`."""
  return [(key, f"{score_label(key)} ↑", 3, True) for key in score_keys(trials)]


def per_factor_keys(trials, score):
  """The scalars `<score>/<factor>` of one score, in the factors' order; each trial's metrics
  gain those its `<score>_per_factor` list and `factor_names` give and it lacks (a metrics.json
  written before the evaluate step wrote them as scalars)."""
  keys = []
  for trial in trials:
    values = trial.metrics.get(score + PER_FACTOR)
    names = trial.metrics.get("factor_names")
    names = names if isinstance(names, list) else []
    if isinstance(values, list) and len(values) == len(names):
      for name, value in zip(names, values):
        trial.metrics.setdefault(f"{score}/{name}", value)
    # The factors' own order (metrics.json's keys are sorted), then any other factor.
    keys += [f"{score}/{name}" for name in names if f"{score}/{name}" in trial.metrics]
    keys += [k for k in trial.metrics if k.startswith(f"{score}/")]
  return list(dict.fromkeys(keys))


def study_seed_columns(trials):
  """`SEED_COLUMNS` plus the disentanglement scores the trials hold that it lacks (DCI, SAP)."""
  known = {c[0] for c in SEED_COLUMNS}
  return tuple(SEED_COLUMNS) + tuple(c for c in score_columns(trials) if c[0] not in known)
