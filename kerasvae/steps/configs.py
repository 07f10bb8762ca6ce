"""The configs of the train, evaluate and export steps and of a whole pipeline run.

A pipeline config is one YAML file with the blocks `ingest`, `model`,
`train`, `evaluate`, `export` and `run`; every key is checked by
`kerasvae.config.from_dict`, so a typo is rejected by name with the valid keys.
"""

import dataclasses
import importlib.resources
import math
from pathlib import Path
from typing import Any, Optional

import yaml

from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae.config import ConfigError
from kerasvae.config import MAX_BATCH_SIZE, MAX_COUNT, MAX_UNITS
from kerasvae.config import field
from kerasvae.data.config import DataConfig
from kerasvae.data.config import IngestConfig
from kerasvae.data.config import bundled_data_dir
from kerasvae.data.config import resolve_data_paths
from kerasvae.data import validation as validation_rules
from kerasvae.metrics import registry as metric_registry



def _package_data_dir(name):
  """The folder `name` of kerasvae's package data, as a filesystem path.

  Found with `importlib.resources`, so it is wherever the package is installed (a
  checkout, a wheel in site-packages, a Docker image). The configs are read as files
  (their paths appear in error messages and decide how relative data paths resolve),
  which every pip install gives; a zipped install does not, and is refused by name.
  """
  folder = importlib.resources.files("kerasvae") / name
  if not isinstance(folder, Path):
    raise ConfigError(f"Expected kerasvae installed as files (pip install). Received: its "
                      f"package data {name}/ in {folder!r}")
  return folder


# The bundled configs: `kerasvae/configs/*.yaml`, the studies' in its `studies/`.
CONFIG_DIR = _package_data_dir("configs")


def _with_kind_blocks(cls):
  """Adds one optional field per registered model kind (`kinds.KINDS`) to `cls`."""
  for kind in kinds.KINDS.values():
    cls.__annotations__[kind.name] = Optional[kind.settings]
    setattr(cls, kind.name, kinds.settings_field(kind))
  return cls


@dataclasses.dataclass
@_with_kind_blocks
class ModelConfig:
  """Which model to train: its kind, the network every kind shares, and the kind's own block.

  The block named after `kind` (e.g. `vae: {kl_weight: 4.0}`) holds the settings only that kind
  reads (`kinds.py`); it gets its defaults when absent, and a block of another kind is refused.
  """
  kind: str = field("vae", choices=tuple(kinds.KINDS),
                    help="The model: " + ", ".join(kinds.KINDS) + ".")
  latent_dim: int = field(10, range=(1, 4096), help="Dimension of the code z.")
  architecture: str = field("mlp", choices=("mlp", "conv"), help="Encoder/decoder family.")
  hidden_units: list[int] = field(default_factory=lambda: [400], range=(1, MAX_UNITS),
                                  help="MLP hidden widths.")
  filters: list[int] = field(default_factory=lambda: [32, 64], range=(1, MAX_UNITS),
                             help="Conv channels, one stride-2 layer each.")
  dense_units: int = field(256, range=(1, MAX_UNITS), help="Conv dense-layer width.")

  # Keys of the flat model block before the kinds had blocks: the error says where they went.
  MOVED_KEYS = kinds.MOVED_KEYS

  def __post_init__(self):
    if self.kind in kinds.KINDS and getattr(self, self.kind) is None:
      setattr(self, self.kind, kinds.KINDS[self.kind].settings())

  def validate(self):
    kinds.check_blocks(self)

  @property
  def settings(self):
    """The block of the chosen kind (e.g. `VAESettings`)."""
    return getattr(self, self.kind)

  def applies(self, name):
    """Whether the setting `name` is used by this model: its network, and its kind's block only."""
    used = {"hidden_units": self.architecture == "mlp",
            "filters": self.architecture == "conv", "dense_units": self.architecture == "conv"}
    if name in kinds.KINDS:
      return name == self.kind
    return used.get(name, True)


@dataclasses.dataclass
class TrainConfig:
  """How to train: strategy, batches, optimiser, checkpoints and logging."""
  epochs: int = field(10, range=(1, MAX_COUNT), help="Training epochs.")
  batch_size: int = field(128, range=(1, MAX_BATCH_SIZE), help="Per-replica batch size.")
  steps_per_epoch: Optional[int] = field(None, range=(1, MAX_COUNT),
                                         help="Steps per epoch; null: one pass over the data.")
  learning_rate: float = field(1e-3, range=(0.0, None), help="Adam learning rate.")
  lr_schedule: str = field("constant", choices=("constant", "cosine", "exponential"),
                           help="Learning-rate schedule over the training steps.")
  lr_decay_rate: float = field(0.5, range=(0.0, 1.0),
                               help="exponential: factor per lr_decay_epochs.")
  lr_decay_epochs: float = field(10.0, range=(1e-6, None), help="exponential: decay period.")
  strategy: str = field("auto", choices=("auto", "default", "one_device", "mirrored",
                                         "multi_worker"),
                        help="auto: mirrored with >1 GPU, else default.")
  seed: int = field(0, help="Seed of initialisation, shuffling and noise.")
  jit_compile: str = field("auto", choices=("auto", "true", "false"),
                           help="XLA-compile the gradient computation. auto: on, except for conv "
                           "models without a GPU (XLA convolutions are 2-3x slower on CPU).")
  precision: str = field(
      "float32", choices=("float32", "mixed_bfloat16"),
      help="The encoder's and decoder's computation. mixed_bfloat16: their layers compute in "
           "bfloat16 with float32 variables; their outputs, the losses, the metrics, "
           "checkpoints and exports stay float32. 1.1-1.4x the dSprites conv VAE's training "
           "speed on 2 cores with avx512_bf16, test ELBO and IWAE within the seeds' spread "
           "(`kerasvae study precision`); refused under an ONEDNN_MAX_CPU_ISA cap without "
           "oneDNN's bfloat16 kernels (AVX2 and below); 0.47-0.66x float32's speed on "
           "AVX-512 without bf16 instructions; not measured on GPUs.")
  steps_per_execution: int = field(
      10, range=(1, None),
      help="Train steps per tf.function call (the loss is checked and the bar updated between "
           "calls); 10 runs the MNIST MLP 1.3x faster than 1 on 2 CPU cores.")
  checkpoint_every_epochs: int = field(1, range=(1, None), help="Checkpoint interval.")
  checkpoint_min_seconds: float = field(
      30.0, range=(0.0, None),
      help="Least wall time between two checkpoints: a due checkpoint is skipped until this "
           "much has passed since the last (the last epoch, and early stopping, always save; "
           "multi-worker training saves every checkpoint_every_epochs). A kill loses at most "
           "this plus an epoch. 0: every checkpoint_every_epochs.")
  keep_checkpoints: int = field(
      1, range=(1, None),
      help="Checkpoints kept while training (each holds the weights and Adam's two moments: "
           "24 MB for the quickstart's MLP). More let a resume fall back past a damaged one. "
           "A finished training keeps none: its model is saved.")
  keep_final_checkpoint: bool = field(
      False, help="Keep the last resumption checkpoint (weights, Adam's moments, history) of a "
      "finished training, so that a longer training of the same model can continue from it "
      "(`kerasvae study budget` chains its budgets this way). Off: a finished training keeps "
      "only its saved model.")
  eval_every_epochs: int = field(1, range=(1, None), help="Eval ELBO interval (early stopping).")
  early_stopping_patience: int = field(0, range=(0, None),
                                       help="Stop after this many evals without a better eval "
                                       "ELBO; 0: off. The best weights are kept.")
  images_every_epochs: int = field(5, range=(1, None), help="TensorBoard image interval.")
  projector_examples: int = field(500, range=(0, MAX_BATCH_SIZE),
                                  help="Eval latent means shown in the TensorBoard projector.")
  progress: bool = field(True, help="Show Keras' progress bar on a terminal (one line per "
                         "epoch under CI or without a terminal).")

  def applies(self, name):
    """Whether the setting `name` changes this training (e.g. decay settings of a schedule)."""
    if name in ("lr_decay_rate", "lr_decay_epochs"):
      return self.lr_schedule == "exponential"
    return True


# The numbers the evaluate step can write to metrics.json, which thresholds may name
# (`kerasvae.metrics.registry`, in its order). Which of them a run has depends on the model kind
# and the data (each metric's `needs`): `elbo`, `kl` and the IWAE bound need a posterior, the
# disentanglement scores ground-truth factors, sample quality labels.
THRESHOLD_METRICS = metric_registry.threshold_metrics()
# Disentanglement scores also written per factor, as `<metric>/<factor name>` (`mig/shape`).
PER_FACTOR_METRICS = metric_registry.per_factor_metrics()
# Each disentanglement score is also computed on the active latents alone, named with this
# suffix (`mig_active`, `mig_active_per_factor`, `mig_active/shape`).
ACTIVE_SUFFIX = metric_registry.ACTIVE_SUFFIX
ACTIVE_SCORES = metric_registry.active_scores()


def is_threshold_metric(name):
  """Whether thresholds may name `name`: in `THRESHOLD_METRICS`, or `<metric>/<factor name>`
  for a metric of `PER_FACTOR_METRICS`."""
  metric, _, factor = name.partition("/")
  metric = metric.removesuffix(ACTIVE_SUFFIX)
  return (name.removesuffix(ACTIVE_SUFFIX) in THRESHOLD_METRICS
          or (metric in PER_FACTOR_METRICS and bool(factor)))


# kerasvae.metrics.iwae.MAX_NUM_SAMPLES (that module imports TensorFlow; a config loads without).
MAX_IWAE_SAMPLES = 100_000

# The metrics a candidate is compared on with the served model (kerasvae.steps.baseline), and
# whether a higher value is better.
BASELINE_METRICS = {"elbo": True, "reconstruction": False}


@dataclasses.dataclass
class EvaluateConfig:
  """What to measure and which thresholds bless the model for export."""
  num_examples: Optional[int] = field(None, range=(1, MAX_COUNT), help="Eval examples; null: all.")
  batch_size: int = field(500, range=(1, MAX_BATCH_SIZE), help="Evaluation batch size.")
  iwae_samples: int = field(5000, range=(0, MAX_IWAE_SAMPLES), help="K of the IWAE bound; 0: skip it.")
  iwae_examples: Optional[int] = field(1000, range=(1, MAX_COUNT),
                                       help="Examples of the IWAE estimate; null: all.")
  active_unit_threshold: float = field(0.01, range=(0.0, None),
                                       help="A unit is active if Cov_x(E_q[z_u]) exceeds this.")
  disentanglement: bool = field(True, help="Score disentanglement when the data has factors.")
  active_latent_kl: float = field(
      0.1, range=(0.0, None),
      help="A latent is active when its mean KL to the prior on the test split exceeds this "
      "(nats); every disentanglement score is also computed on the active latents alone "
      "(`mig_active`, ...), since the scores read posterior means whatever their KL.")
  disentanglement_train_points: int = field(10000, range=(10, MAX_COUNT), help="Metric train points.")
  disentanglement_eval_points: int = field(5000, range=(10, MAX_COUNT), help="Metric eval points.")
  dci: bool = field(True, help="With the disentanglement scores, also DCI: a gradient-boosted "
                    "classifier per factor, 4-5 CPU minutes at 10,000 points on dSprites.")
  sample_quality: bool = field(False, help="Fréchet distance in a classifier's feature space "
                               "(labelled data only).")
  shape_recognition_examples: int = field(
      500, range=(0, None), help="dSprites: test reconstructions whose shape a template test "
      "checks (metric shape_recognised, kerasvae.metrics.shape_recognition); 0: skip it.")
  seed: int = field(0, help="Seed of the evaluation's random draws.")
  thresholds: dict[str, dict[str, Any]] = field(
      default_factory=dict,
      help="metric: {lower_bound: x} or {upper_bound: x}; all must hold for the model to be "
      "blessed. Thresholds on what the model kind lacks (an autoencoder's elbo, kl, "
      "iwae_log_likelihood) are skipped, so one config fits a VAE and an autoencoder.")
  change_thresholds: dict[str, Any] = field(
      default_factory=dict,
      help="metric: how much worse than the baseline (the newest version of export.model_name "
      "exported by another run, i.e. the served model) the candidate may be, measured on the "
      "same test images: elbo (nats lower) or reconstruction (nats higher). Empty: no "
      "comparison.")

  def validate(self):
    for metric, limit in self.change_thresholds.items():
      if metric not in BASELINE_METRICS:
        raise ConfigError(f"change_thresholds.{metric}: expected a metric compared with the "
                          f"baseline, one of: {', '.join(BASELINE_METRICS)}. "
                          f"Received: {config_lib.show(metric)}")
      if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (
          math.isfinite(limit) and limit >= 0):
        raise ConfigError(f"change_thresholds.{metric}: expected a finite number >= 0 (nats the "
                          f"candidate may be worse). Received: {config_lib.show(limit)}")
    # The bounds stay as written (an integer stays one in blessing.json and the fingerprint).
    for metric, bound in self.thresholds.items():
      if not is_threshold_metric(metric):
        raise ConfigError(f"thresholds.{metric}: not a metric the evaluate step writes. "
                          f"Expected one of: {', '.join(THRESHOLD_METRICS)}, or "
                          f"<metric>/<factor name> for {', '.join(PER_FACTOR_METRICS)}")
      if not bound or set(bound) - {"lower_bound", "upper_bound"}:
        raise ConfigError(f"thresholds.{metric}: expected a mapping with lower_bound and/or "
                          f"upper_bound. Received: {config_lib.show(bound)}")
      for key, value in bound.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
          raise ConfigError(f"thresholds.{metric}.{key}: expected a finite number. "
                            f"Received: {config_lib.show(value)}")


@dataclasses.dataclass
class ExportConfig:
  """Where the SavedModel goes."""
  base_dir: str = field("saved_models", help="TF Serving model base directory.")
  model_name: str = field("vae", help="The model's folder name under base_dir.")
  require_blessing: bool = field(True, help="Refuse an unblessed model (override with --force).")
  allow_signature_change: bool = field(
      False, help="Export even if the signatures differ from the model name's previous version.")
  serving_base_path: Optional[str] = field(
      None, help="base_dir as TF Serving sees it, for models.config's base_path entries: /models "
      "for a container started with -v \"$PWD/saved_models:/models\"; null: base_dir's "
      "absolute path on this machine.")

  def validate(self):
    config_lib.check_name(self.model_name, "model_name", config_lib.MODEL_NAME_PATTERN)
    _check_directory(self.base_dir, "base_dir")
    if self.serving_base_path is not None and not str(self.serving_base_path).startswith("/"):
      raise ConfigError("serving_base_path: expected an absolute path as the server sees it "
                        f"(e.g. /models). Received: {config_lib.show(self.serving_base_path)}")


@dataclasses.dataclass
class DriftThresholds:
  """How far new data may drift from the training data before a rule is violated
  (`kerasvae.data.validation`); pixel numbers in reader units ([0, 1] for scaled data)."""
  pixel_mean: float = field(0.05, range=(0.0, None), help="|Δ mean pixel| allowed.")
  pixel_std: float = field(0.05, range=(0.0, None), help="|Δ pixel standard deviation| allowed.")
  value_range: float = field(
      0.1, range=(0.0, None),
      help="How far the 1st and 99th pixel percentiles may move, and pixels lie outside the "
      "training data's [min, max].")
  pixel_histogram: float = field(
      0.05, range=(0.0, 1.0),
      help="Largest Jensen-Shannon divergence (base 2) of the pixel histograms (16 bins).")
  class_balance: float = field(
      0.1, range=(0.0, 1.0), help="Largest L-infinity distance of the class frequencies.")


VALIDATION_RULES = validation_rules.RULES


@dataclasses.dataclass
class ValidateConfig:
  """The `validation:` block of `kerasvae validate` (and of the same check in `kerasvae infer`):
  new data against the training data's schema and statistics."""
  data: Optional[DataConfig] = field(
      None, omit_none=True,
      help="The new data (any ingest source); null: give it with --images FOLDER.")
  max_examples: Optional[int] = field(None, range=(1, None),
                                      help="Validate the first this many examples; null: all.")
  training_reference: Optional[str] = field(
      None, help="An Examples artifact (runs/examples/<hash>) of earlier training data: `train` "
      "then checks its own training split against it with the same rules before training "
      "on new data; null: no check.")
  on_anomaly: str = field("fail", choices=("fail", "warn"),
                          help="fail: a violated rule stops the step; warn: it is recorded.")
  warn_rules: list[str] = field(default_factory=list,
                                help="Rules that only warn even with on_anomaly=fail.")
  thresholds: DriftThresholds = field(default_factory=DriftThresholds)

  def validate(self):
    unknown = [r for r in self.warn_rules if r not in VALIDATION_RULES]
    if unknown:
      raise ConfigError(f"warn_rules: expected rules among {', '.join(VALIDATION_RULES)}. "
                        f"Received: {config_lib.show(unknown[0])}")


@dataclasses.dataclass
class InferConfig:
  """`kerasvae infer` (a BulkInferrer): per-example scores of a data set, sharded, resumable."""
  data: Optional[DataConfig] = field(
      None, omit_none=True,
      help="The data to score (any ingest source); null: the run's Examples split `split` "
      "(or --images FOLDER).")
  split: str = field("test", help="With data null: the Examples split to score.")
  model: Optional[str] = field(
      None, help="A SavedModel version directory (saved_models/<name>/<version>); null: the "
      "run's trained model.")
  num_samples: int = field(100, range=(1, 100_000), help="K of the IWAE log p(x).")
  batch_size: int = field(250, range=(1, None), help="Images per scoring call.")
  examples_per_shard: int = field(2000, range=(1, None),
                                  help="Examples per output shard (kept after a kill).")
  threshold_quantile: float = field(
      0.99, range=(0.0, 1.0),
      help="The anomaly threshold is this quantile of the validation split's anomaly scores.")
  threshold_examples: int = field(1000, range=(10, None),
                                  help="Validation examples the threshold is fitted on.")
  check_data: bool = field(True, help="Check the data against the training data first "
                           "(validation.* settings) when it is not the run's own Examples.")


@dataclasses.dataclass
class RunConfig:
  """Where runs live and what they are called."""
  name: str = field("run", help="Pipeline name; the run directory is <runs_dir>/<name>-<hash>.")
  runs_dir: str = field("runs", help="Root of all runs (point TensorBoard here).")

  def validate(self):
    # The name becomes a folder under runs_dir: `../../x` or `/x` would write anywhere.
    config_lib.check_name(self.name, "name")
    _check_directory(self.runs_dir, "runs_dir")


def _check_directory(value, what):
  path = Path(value).expanduser()
  if not value.strip() or (path.exists() and not path.is_dir()):
    received = "an empty path" if not value.strip() else f"a file at {path}"
    raise ConfigError(f"{what}: expected a directory path. Received: {received}")


@dataclasses.dataclass
class PipelineConfig:
  """A whole pipeline: every step's config."""
  run: RunConfig = field(default_factory=RunConfig)
  ingest: IngestConfig = field(default_factory=IngestConfig)
  model: ModelConfig = field(default_factory=ModelConfig)
  train: TrainConfig = field(default_factory=TrainConfig)
  evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
  export: ExportConfig = field(default_factory=ExportConfig)
  validation: ValidateConfig = field(default_factory=ValidateConfig)
  infer: InferConfig = field(default_factory=InferConfig)

  def validate(self):
    split = self.ingest.split
    if split.method == "hash" and split.eval_fraction <= 0:
      raise ConfigError("ingest.split.eval_fraction: expected a fraction above 0: the "
                        "evaluate scores the test split. Received: eval_fraction="
                        f"{split.eval_fraction}")


def resolve_config_path(name_or_path):
  """A path to a YAML file, or the name of a bundled config (`quickstart`, `mnist_vae`, ...)."""
  path = Path(name_or_path)
  if path.suffix in (".yaml", ".yml") or path.exists():
    return path
  bundled, names, suggestion = config_lib.find_bundled_yaml(name_or_path, CONFIG_DIR)
  if bundled is not None:
    return bundled
  raise ConfigError(f"Expected a YAML file or a bundled config name {names}. "
                    f"Received: --config {name_or_path}.{suggestion}")


def load_pipeline_config(path=None, overrides=(), base=None):
  """Loads a pipeline config from YAML (or the quickstart) with dotted overrides.

  Args:
    path: a YAML file or bundled config name; None: `quickstart`.
    overrides: `["model.latent_dim=2", ...]`, values parsed as YAML.
    base: a dict applied under the file (used by studies for shared settings).

  Returns:
    A validated `PipelineConfig`.
  """
  path = resolve_config_path(path or "quickstart")
  data = config_lib.load_yaml(path)
  resolve_file_data_paths(data, path)
  if base:
    data = deep_merge(base, data)
  data = config_lib.apply_overrides(data, overrides)
  for block in DATA_BLOCKS:  # what is still relative came from --set: the cwd's
    if isinstance(data.get(block), dict):
      resolve_data_paths(data[block], Path.cwd())
  return config_lib.from_dict(PipelineConfig, data, where="config", source=config_lib.ConfigSource(path, overrides))


def load_config_parameter(config, overrides=()):
  """The `PipelineConfig` of a Kubeflow pipeline's `config` parameter plus its `--set` overrides.

  Args:
    config: YAML text of a pipeline config (a mapping), or a bundled config name
      (`quickstart`, `mnist_vae`, ...), or a YAML file in the component's image.
    overrides: `["train.epochs=1", ...]`, as `--set` takes them.

  Returns:
    A validated `PipelineConfig`.
  """
  text = (config or "").strip()
  try:
    data = yaml.safe_load(text) if text else None
  except yaml.YAMLError as e:
    raise ConfigError("The pipeline's config parameter is not valid YAML: "
                      f"{config_lib.yaml_error(e)}") from None
  if not isinstance(data, dict):
    return load_pipeline_config(text or None, list(overrides))
  # Relative data paths of the YAML text resolve as a bundled config's do, against the data
  # directory ($KERASVAE_DATA_DIR in the component's image); those of --set values against
  # the working directory, as on the command line.
  if isinstance(data.get("ingest"), dict):
    resolve_data_paths(data["ingest"], bundled_data_dir(), bundled=True)
  data = config_lib.apply_overrides(data, list(overrides))
  if isinstance(data.get("ingest"), dict):
    resolve_data_paths(data["ingest"], Path.cwd())
  return config_lib.from_dict(PipelineConfig, data, where="config",
                              source=" (in the pipeline's config parameter)")


def config_parameter(config, overrides=()):
  """The default of the pipeline's `config` parameter: the YAML file's mapping on one line.

  The file is validated (with the overrides) first, so a bad config fails at compile
  time. One line, because the KFP 2.17 compiler copies parameter defaults into a
  comment header of the compiled YAML and a multi-line default breaks that file.
  """
  load_pipeline_config(config, list(overrides))
  data = config_lib.load_yaml(resolve_config_path(config or "quickstart"))
  return yaml.safe_dump(data, default_flow_style=True, sort_keys=False,
                        width=float("inf")).strip()


def is_bundled(path):
  """True for a config shipped with the package in `kerasvae/configs/` (or its `studies/`)."""
  return Path(path).resolve().is_relative_to(CONFIG_DIR)


def resolve_file_data_paths(data, path):
  """Makes the relative data paths of the YAML `path`'s mapping `data` absolute, in place.

  A bundled config's paths are relative to the data directory (`$KERASVAE_DATA_DIR`, by
  default `../shared/data` beside the repository), a user's YAML's to its own folder: never
  to the current directory, so a config works from anywhere.
  """
  bundled = is_bundled(path)
  base = bundled_data_dir() if bundled else Path(path).absolute().parent
  for block in DATA_BLOCKS:
    if isinstance(data.get(block), dict):
      resolve_data_paths(data[block], base, bundled=bundled)
  return data


# The blocks holding a `data:` source config whose relative paths are resolved.
DATA_BLOCKS = ("ingest", "validation", "infer")


def deep_merge(base, top):
  """`top` merged over `base`, mapping by mapping (neither is modified)."""
  out = dict(base)
  for key, value in top.items():
    if isinstance(value, dict) and isinstance(out.get(key), dict):
      out[key] = deep_merge(out[key], value)
    else:
      out[key] = value
  return out
