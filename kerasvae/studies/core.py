"""What every study shares: its config, its trials (normal pipeline runs), sample quality, results.

A study config (`kerasvae/configs/studies/<name>.yaml`, or a user's file) is

  title: one line
  study: {settings of the study itself: sample quality, figure sizes}
  base: {a whole pipeline config, shared by every trial}
  trials:                      # one pipeline run each
    - {name: "2", model.latent_dim: 2}       # dotted overrides of `base`
    - {name: "50", model.latent_dim: 50, full_only: true}   # not run with --quick
  quick: {dotted overrides of base and study for the tiny test version}

A trial's config is `base`, then `quick` (with --quick), then the command
line's `--set`, then the trial's own overrides (which define the experiment).
Every trial runs ingest, train and evaluate in `<output>/runs`, so all
trials share one Examples artifact and `tensorboard --logdir <output>/runs`
shows every trial's HParams session.
"""

import dataclasses
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae.config import ConfigError
from kerasvae.steps import configs as step_configs
from kerasvae.steps import table as step_table
from kerasvae.studies import report

logger = logging.getLogger(__name__)

STUDY_CONFIG_DIR = step_configs.CONFIG_DIR / "studies"
# A trial runs the pipeline's steps but export: its model is compared, not served.
TRIAL_STEPS = tuple(step.name for step in step_table.PIPELINE if step.name != "export")
CLASSIFIER_FILE = "classifier.keras"


@dataclasses.dataclass
class StudySettings:
  """The `study:` block: settings of a study beyond its pipeline runs."""
  sample_quality: bool = config_lib.field(
      False, help="Score samples with a classifier trained once per study on the train split.")
  classifier_examples: int = config_lib.field(9000, range=(100, None),
                                              help="Training images of the classifier.")
  classifier_epochs: int = config_lib.field(3, range=(1, None), help="Classifier epochs.")
  num_samples: int = config_lib.field(1000, range=(10, None),
                                      help="Generated images per sample-quality score.")
  seed: int = config_lib.field(0, help="Seed of the study's samples and figures.")
  seeds: list[int] = config_lib.field(
      default_factory=lambda: [0, 1, 2],
      help="Training seeds (train.seed): every trial is trained once per seed and the report "
      "gives the mean and standard deviation over them. --quick trains the first seed only "
      "unless the quick block or --set gives study.seeds.")

  def validate(self):
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise ConfigError(f"study.seeds: expected a non-empty list of distinct training seeds. "
                        f"Received: seeds={config_lib.show(self.seeds)}")


@dataclasses.dataclass
class Trial:
  """One pipeline run of a study and what it measured."""
  name: str
  overrides: dict
  config: object = None
  run_dir: Path = None
  metrics: dict = dataclasses.field(default_factory=dict)
  train_seconds: float = 0.0
  evaluate_seconds: float = 0.0
  epochs_run: int = 0
  steps_per_epoch: int = 0
  full_only: bool = False  # a trial the --quick version leaves out
  setting: str = ""  # the trial's name without its seed: trials of one setting differ in seed
  seed: int = 0  # its training seed (train.seed)

  def to_json(self):
    return {"name": self.name, "setting": self.setting, "seed": self.seed,
            "overrides": self.overrides, "run_dir": str(self.run_dir),
            "full_only": self.full_only,
            "train_seconds": self.train_seconds, "evaluate_seconds": self.evaluate_seconds,
            "epochs_run": self.epochs_run, "steps_per_epoch": self.steps_per_epoch,
            "metrics": self.metrics}


@dataclasses.dataclass
class StudyContext:
  """What a study's figure and table code may use."""
  name: str
  output: Path
  settings: StudySettings
  quick: bool
  base: object  # the PipelineConfig of the first trial without its trial overrides
  examples_dir: Path = None
  classifier: object = None
  force: bool = False  # --force: retrain the classifier too
  sweep: bool = False  # the trials ran as a Kubeflow sweep, each in its own tasks, side by side
  figures: list = dataclasses.field(default_factory=list)  # (caption, relative path)
  # Every finished trial (all seeds): an analysis that reads the first seed names the seeds
  # of a claim about a trend from these, never from that seed alone.
  trials: list = dataclasses.field(default_factory=list)

  @property
  def figure_dir(self):
    path = self.output / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path

  def figure_path(self, stem):
    return self.figure_dir / f"{slug(stem)}.png"

  def add_figure(self, caption, path):
    self.figures.append((caption, Path(path).relative_to(self.output).as_posix()))

  @property
  def data_words(self):
    """How the report names the data (`report.DataWords`), from the trials' ingest config."""
    return report.data_words(self.base.ingest)


# Greek letters in setting names, spelt out in folder and file names ("β=4" → "beta=4").
GREEK_NAMES = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon",
               "λ": "lambda", "μ": "mu", "σ": "sigma", "τ": "tau"}


def slug(text):
  """`text` as a folder or file name: Greek letters spelt out, other characters outside
  [A-Za-z0-9_.=-] replaced by `_`."""
  text = "".join(GREEK_NAMES.get(c, c) for c in str(text))
  return legacy_slug(text)


def legacy_slug(text):
  """The name `slug` gave before it spelt out Greek letters ("β=4" → "_=4"): a study finds
  the runs such a name holds."""
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(text)).strip("_")


def _with_legacy_run_name(config, legacy_name):
  """`config`, renamed `legacy_name` if a finished run sits under that name (`legacy_slug`)
  and none under its own: the trial reuses it instead of training again."""
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  if legacy_name == config.run.name or common.run_directory(config).exists():
    return config
  legacy = dataclasses.replace(config, run=dataclasses.replace(config.run, name=legacy_name))
  return legacy if common.run_directory(legacy).exists() else config


def resolve_study_config_path(name, config=None):
  """The study's YAML: `config` (a path) if given, else the bundled `<name>.yaml`."""
  if config:
    path = Path(config)
    if not path.is_file():
      bundled, names, suggestion = config_lib.find_bundled_yaml(config, STUDY_CONFIG_DIR)
      if bundled is not None:
        return bundled
      raise ConfigError(f"Expected a study YAML file or a bundled study config name {names}. "
                        f"Received: --config {config} (not found).{suggestion}")
    return path
  return STUDY_CONFIG_DIR / f"{name}.yaml"


def _dotted(mapping, where):
  if mapping is None:
    return []
  if not isinstance(mapping, dict):
    raise ConfigError(f"{where}: expected a mapping of dotted keys to values. "
                      f"Received: {config_lib.show(mapping)}")
  return [f"{key}={json.dumps(value)}" for key, value in mapping.items()]


STUDY_KEYS = ("base", "description", "extends", "quick", "study", "title", "trials")


def read_study_yaml(path, _seen=()):
  """A study YAML as a mapping, with the study it `extends` merged under it.

  `extends: NAME` (a bundled study) takes that study's config: its `study`, `base` and
  `quick` mappings are merged key by key under this file's, and its `title`, `description`
  and `trials` are used where this file gives none. The parent's relative data paths are
  resolved against its own base first, so each file's paths keep their meaning.
  """
  path = Path(path)
  raw = config_lib.load_yaml(path)
  unknown = sorted(set(raw) - set(STUDY_KEYS), key=str)
  if unknown:
    raise ConfigError(f"{path}: unknown key {config_lib.show(unknown[0])}. Valid keys: "
                      + ", ".join(STUDY_KEYS) + ".")
  parent_name = raw.pop("extends", None)
  if parent_name is None:
    return raw
  parent_path = STUDY_CONFIG_DIR / f"{parent_name}.yaml"
  if not isinstance(parent_name, str) or not parent_path.is_file():
    names = sorted(p.stem for p in STUDY_CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"{path}: extends: expected the name of a bundled study config among "
                      f"{names}. Received: extends={config_lib.show(parent_name)}")
  if parent_path.resolve() in _seen or parent_path.resolve() == path.resolve():
    raise ConfigError(f"{path}: extends: expected no cycle. Received: "
                      f"{config_lib.show(parent_name)} extends this file again")
  parent = read_study_yaml(parent_path, _seen + (path.resolve(),))
  if isinstance(parent.get("base"), dict):
    step_configs.resolve_file_data_paths(parent["base"], parent_path)
  merged = dict(parent)
  for key, value in raw.items():
    if key in ("study", "base", "quick") and isinstance(value, dict) \
        and isinstance(parent.get(key), dict):
      merged[key] = step_configs.deep_merge(parent[key], value)
    else:
      merged[key] = value
  return merged


def root_study_name(path):
  """The bundled study a study YAML is, or extends (through `extends:`), by name: `priors` for
  fashion-mnist-priors.yaml."""
  path = Path(path)
  for _ in range(20):  # read_study_yaml refuses cycles; this only follows the chain
    parent = (config_lib.load_yaml(path) or {}).get("extends")
    if not isinstance(parent, str) or not (STUDY_CONFIG_DIR / f"{parent}.yaml").is_file():
      return path.stem
    path = STUDY_CONFIG_DIR / f"{parent}.yaml"
  return path.stem


def settings_class_of(path):
  """The dataclass of a study YAML's `study:` block: its study's own (`Study.settings_class`),
  else `StudySettings`."""
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  study = studies.STUDIES.get(root_study_name(path))
  return study.settings_class() if study and study.settings_class else StudySettings


def load_study_config(path, overrides=(), quick=False, output=None, settings_class=None):
  """Reads a study YAML into (title, settings, [(trial name, trial overrides, PipelineConfig)]).

  Args:
    path: the study YAML.
    overrides: `--set key=value` items, applied to `base` (or `study.*`).
    quick: apply the `quick:` block.
    output: the study directory; trials run in `<output>/runs`.
    settings_class: the dataclass of the `study:` block (a study's own subclass of
      `StudySettings`); default `settings_class_of(path)`.

  Returns:
    `(title, description, StudySettings, [Trial])`.
  """
  raw = read_study_yaml(path)
  source = f" (in {path})"
  for key in ("title", "description"):
    if not isinstance(raw.get(key) or "", str):
      raise ConfigError(f"{key}: expected a string{source}. Received: {config_lib.show(raw[key])}")
  trials_raw = raw.get("trials") or []
  if not isinstance(trials_raw, list) or not trials_raw:
    raise ConfigError(f"trials: expected a non-empty list of override mappings{source}. "
                      f"Received: {config_lib.show(trials_raw)}")
  data = {"study": raw.get("study") or {}, **(raw.get("base") or {})}
  step_configs.resolve_file_data_paths(data, path)
  if quick:
    data = config_lib.apply_overrides(data, _dotted(raw.get("quick"), "quick"))
  data = config_lib.apply_overrides(data, overrides)
  if isinstance(data.get("ingest"), dict):  # what is still relative came from --set: the cwd's
    step_configs.resolve_data_paths(data["ingest"], Path.cwd())
  if any(str(o).startswith("train.seed=") for o in overrides):
    raise ConfigError("--set train.seed: expected the training seeds of a study in study.seeds "
                      "(e.g. --set 'study.seeds=[3, 4, 5]'). Received: "
                      + next(o for o in overrides if str(o).startswith("train.seed=")))
  blame = config_lib.ConfigSource(path, overrides)  # names the --set item of a bad value
  settings = config_lib.from_dict(settings_class or settings_class_of(path), data.pop("study"),
                                  where="study", source=blame,
                                  key="study")
  data.setdefault("run", {})["runs_dir"] = str(Path(output) / "runs")
  if quick:
    data.setdefault("train", {})["progress"] = False
    seeds_given = "study.seeds" in (raw.get("quick") or {}) or any(
        str(o).startswith("study.seeds=") for o in overrides)
    if not seeds_given:
      settings.seeds = settings.seeds[:1]
  trials = []
  for i, entry in enumerate(trials_raw):
    if not isinstance(entry, dict):
      raise ConfigError(f"trials[{i}]: expected a mapping of dotted overrides{source}. "
                        f"Received: {config_lib.show(entry)}")
    entry = dict(entry)
    full_only = entry.pop("full_only", False)
    if not isinstance(full_only, bool):
      raise ConfigError(f"trials[{i}].full_only: expected true or false{source}. "
                        f"Received: {config_lib.show(full_only)}")
    if "train.seed" in entry:
      raise ConfigError(f"trials[{i}]: expected the training seeds in study.seeds (each trial is "
                        f"trained once per seed){source}. Received: train.seed="
                        f"{config_lib.show(entry['train.seed'])} in the trial")
    setting = str(entry.pop("name", None) or ", ".join(f"{k.split('.')[-1]}={v}"
                                                      for k, v in entry.items()))
    if quick and full_only:
      continue
    for seed in settings.seeds:
      name = setting if len(settings.seeds) == 1 else f"{setting} seed {seed}"
      trial_data = config_lib.apply_overrides(
          data, _dotted(entry, f"trials[{i}]") + [f"train.seed={seed}"])
      step_configs.resolve_file_data_paths(trial_data, path)  # a trial's own paths: the file's
      run_name = f"{trial_data['run'].get('name', 'trial')}-{name}"
      trial_data["run"]["name"] = slug(run_name)
      config = config_lib.from_dict(step_configs.PipelineConfig, trial_data,
                                    where=f"trials[{i}] ({name})", source=blame)
      config = _with_legacy_run_name(config, legacy_slug(run_name))
      trials.append(Trial(name=name, overrides=entry, config=config, full_only=full_only,
                          setting=setting, seed=seed))
  names = [t.name for t in trials]
  if len(set(names)) != len(names):
    raise ConfigError(f"trials: expected distinct trial names{source}. Received: {names}")
  return raw.get("title") or path.stem, raw.get("description") or "", settings, trials


def run_trial(trial, label=None, force=False, force_ingest=False):
  """Runs ingest → train → evaluate for one trial; fills its metrics and timings.

  `label` is the line printed first (default `study: trial <name>`). A finished trial's
  steps are reused unless `force` (train and evaluate) and `force_ingest` (the Examples
  artifact all trials share: redone once per study).
  """
  from kerasvae import pipeline  # pylint: disable=import-outside-toplevel
  print(label or f"study: trial {trial.name}", flush=True)
  if force:
    pipeline.run_pipeline(trial.config, steps=TRIAL_STEPS[:1], force=force_ingest)
    out = pipeline.run_pipeline(trial.config, steps=TRIAL_STEPS[1:], force=True)
  else:
    out = pipeline.run_pipeline(trial.config, steps=TRIAL_STEPS)
  read_trial_results(trial, out["run_dir"])
  return out["examples"]


def continue_training(previous, trial):
  """Starts `trial`'s training from the last checkpoint of `previous`, a finished trial of the
  same model and seed with fewer epochs: the longer budget continues the shorter one's
  training (weights, Adam's moments, history, TensorBoard logs) instead of starting again.

  Nothing is copied when `trial` has finished, has its own checkpoint (an interrupted
  continuation resumes from there) or has a trained model. The copy is made beside the train
  directory and renamed into place, so a kill leaves no half-copied checkpoint.

  Raises:
    StepError: `previous` finished without its checkpoint (train.keep_final_checkpoint off).
  """
  import shutil  # pylint: disable=import-outside-toplevel
  from kerasvae import training  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  target = common.run_directory(trial.config) / "train"
  if (trial_finished(trial) or training.has_checkpoint(target)
      or (target / artifacts.METADATA_FILE).is_file()):
    return
  source = common.run_directory(previous.config) / "train"
  if not training.has_checkpoint(source):
    raise common.StepError(
        f"Trial {trial.name!r} continues the training of {previous.name!r}, whose directory "
        f"{source} holds no checkpoint to continue from. Expected train.keep_final_checkpoint: "
        f"true in the study's base config. Received: a finished training without one (run the "
        f"study with --force to train every budget again)")
  target.mkdir(parents=True, exist_ok=True)
  for name in (training.CHECKPOINT_DIR, "logs"):
    if not (source / name).is_dir():
      continue
    artifacts.remove_stale_temporaries(target)
    staging = target / artifacts.temporary_name(name)
    shutil.copytree(source / name, staging)
    if (target / name).exists():
      shutil.rmtree(target / name)
    staging.rename(target / name)
  print(f"study: trial {trial.name} continues {previous.name}'s training "
        f"({previous.config.train.epochs} of {trial.config.train.epochs} epochs done)", flush=True)


def read_trial_results(trial, run_dir):
  """Fills the trial's metrics, timings and epochs from its run's `train/` and `evaluate/`.

  The local study reads the run it just ran; the Kubeflow sweep's report task the trial's
  Model and evaluation artifacts, laid out as a run directory.
  """
  trial.run_dir = Path(run_dir)
  train_meta = artifacts.read_json(trial.run_dir / "train" / artifacts.METADATA_FILE)
  eval_meta = artifacts.read_json(trial.run_dir / "evaluate" / artifacts.METADATA_FILE)
  trial.train_seconds = training_seconds(trial.run_dir / "train", train_meta)
  trial.evaluate_seconds = float(eval_meta.get("seconds", 0.0))
  trial.epochs_run = int(train_meta.get("epochs_run", 0))
  trial.steps_per_epoch = int(train_meta.get("steps_per_epoch", 0))
  trial.metrics = artifacts.read_json(trial.run_dir / "evaluate" / "metrics.json")
  trial.metrics.pop("activity", None)


def training_seconds(train_dir, train_meta):
  """The wall-clock a trial's model took to train, over every run that resumed its training.

  The train step records it as `training_seconds`; for a step written before it did, the
  larger of the last run's `seconds` and the sum of the epochs' own times in `history.json`
  (a resumed training's last run saw only its own epochs).
  """
  if "training_seconds" in train_meta:
    return float(train_meta["training_seconds"])
  return max(float(train_meta.get("seconds", 0.0)),
             sum(float(r.get("seconds", 0.0)) for r in report.train_history(train_dir)))


def trial_finished(trial):
  """Whether the trial's model is trained and evaluated for its current config (nothing to run).

  Reads only the steps' metadata; a damaged or stale step counts as not finished.
  """
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import evaluate  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import train  # pylint: disable=import-outside-toplevel
  run_dir = common.run_directory(trial.config)
  try:
    ingest_meta = artifacts.read_json(run_dir / "ingest" / artifacts.METADATA_FILE)
    examples_meta = reader.read_metadata(ingest_meta["outputs"]["examples"])
    train_meta = artifacts.read_json(run_dir / "train" / artifacts.METADATA_FILE)
    if train_meta.get("fingerprint") != train.train_fingerprint(trial.config, examples_meta):
      return False
    return common.reusable(run_dir / "evaluate",
                           evaluate.evaluate_fingerprint(trial.config, train_meta))
  except (OSError, KeyError, TypeError, ValueError):  # missing or damaged (ArtifactError)
    return False


def load_trial_model(trial):
  from kerasvae.steps import train as train_step  # pylint: disable=import-outside-toplevel
  return train_step.load_model(trial.run_dir / "train")


# ----------------------------------------------------------------------------- sample quality


def grey_fraction(images):
  """Fraction of pixels strictly between 0.2 and 0.8: blurry images have many such grey pixels."""
  images = np.asarray(images)
  return float(np.mean((images > 0.2) & (images < 0.8)))


def class_entropy_bits(probabilities):
  """Entropy (bits) of the histogram of predicted classes: log2(10) = 3.32 when ten classes appear
  equally often, 0 when every image is read as the same class."""
  counts = np.bincount(np.argmax(probabilities, axis=-1), minlength=probabilities.shape[-1])
  p = counts / counts.sum()
  p = p[p > 0]
  return float(-np.sum(p * np.log2(p))) + 0.0  # no -0.0


def study_classifier(context):
  """The study's feature classifier: trained once on the train split, saved in the study dir."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import sample_quality  # pylint: disable=import-outside-toplevel
  path = context.output / CLASSIFIER_FILE
  meta_path = context.output / "classifier.json"
  s = context.settings
  wanted = {"examples": str(context.examples_dir), "classifier_examples": s.classifier_examples,
            "classifier_epochs": s.classifier_epochs, "seed": s.seed}
  if not context.force and path.is_file() and meta_path.is_file() and artifacts.read_json(
      meta_path).get("config") == wanted:
    return sample_quality.load_feature_classifier(path)
  # Grey intensities: generated images are the decoder's means, which are grey too.
  train = reader.load_split(context.examples_dir, "train", limit=s.classifier_examples,
                            binarize_seed=None)
  if "label" not in train:
    raise ConfigError("study.sample_quality: expected labelled data for the classifier. "
                      f"Received: an Examples artifact without labels ({context.examples_dir})")
  t0 = time.time()
  classifier = sample_quality.train_feature_classifier(train["image"], train["label"],
                                                       epochs=s.classifier_epochs, seed=s.seed)
  seconds = time.time() - t0
  held_out = reader.load_split(context.examples_dir, "eval", binarize_seed=None)
  _, probabilities = sample_quality.classifier_features(classifier, held_out["image"])
  accuracy = float(np.mean(np.argmax(probabilities, -1) == held_out["label"]))
  classifier.save(path)
  artifacts.write_json(meta_path, {"config": wanted, "eval_accuracy": accuracy,
                                   "train_examples": int(len(train["image"])),
                                   "seconds": seconds})
  return classifier


def reference_images(context):
  """Held-out grey images (the eval split) and as many training images (for the floor)."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  held_out = reader.load_split(context.examples_dir, "eval", binarize_seed=None)["image"]
  n = min(len(held_out), context.settings.num_samples)
  train = reader.load_split(context.examples_dir, "train", limit=n, binarize_seed=None)["image"]
  return held_out[:n], train


def score_images(context, images):
  """Fréchet distance to held-out images, precision and recall, classifier confidence, class
  entropy, grey fraction."""
  from kerasvae.metrics import sample_quality  # pylint: disable=import-outside-toplevel
  held_out, _ = reference_images(context)
  result = sample_quality.compute_sample_quality(context.classifier, images, held_out)
  _, probabilities = sample_quality.classifier_features(context.classifier, images)
  return {"frechet_distance": result["frechet_distance"],
          "precision": result["precision"], "recall": result["recall"],
          "classifier_confidence": result["classifier_confidence"],
          "class_entropy_bits": class_entropy_bits(probabilities),
          "grey_fraction": grey_fraction(images)}


def score_prior_samples(context, trial, model=None):
  """Scores `settings.num_samples` of the trial model's samples into its metrics; the samples."""
  model = model or load_trial_model(trial)
  samples = model.sample(context.settings.num_samples, seed=context.settings.seed).numpy()
  trial.metrics.update(score_images(context, samples))
  return samples


def add_elbo_surgery(context, trial):
  """I(x; z) and KL(q(z) ‖ p(z)) on the test split into the trial's metrics, where its
  evaluate step did not measure them (an evaluation written before it did). VAEs only."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  from kerasvae.metrics import elbo_surgery  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import evaluate  # pylint: disable=import-outside-toplevel
  if "mutual_information_xz" in trial.metrics or "kl" not in trial.metrics:
    return
  model = load_trial_model(trial)
  n = min(trial.config.evaluate.iwae_examples or evaluate.SURGERY_EXAMPLES,
          evaluate.SURGERY_EXAMPLES)
  images = reader.load_split(context.examples_dir, "eval", limit=n)["image"]
  mean, log_var = model.posterior_params(images)
  trial.metrics.update(elbo_surgery.model_elbo_surgery(
      model, mean.numpy(), log_var.numpy(), seed=trial.config.evaluate.seed))


def real_data_reference(context):
  """The scores real training images get against the held-out images: the floor of each number."""
  _, train = reference_images(context)
  return score_images(context, train)


def write_study_scalars(trial, metrics):
  """Adds the study's own numbers as `study/...` scalars to the trial's validation run."""
  from kerasvae import summaries  # pylint: disable=import-outside-toplevel
  summaries.write_study_scalars(trial.run_dir / "train" / "logs",
                                {key: value for key, value in metrics.items()
                                 if report.is_number(value)})
