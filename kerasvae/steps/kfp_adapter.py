"""The pipeline steps as Kubeflow Pipelines components see them: config text in, artifact paths out.

`kerasvae/kfp_pipeline.py` wires four KFP components; each one calls a function
here, and each function runs its step of `kerasvae.steps.table.PIPELINE` through
`kerasvae.steps.executor.execute`, as `kerasvae run` does:

  ingest    config                        -> examples (Dataset: the Examples artifact)
  train     config, examples              -> model (Model: the train step directory)
  evaluate  config, examples, model       -> metrics (Metrics: every scalar of metrics.json),
                                             evaluation (the evaluate step directory: metrics.json,
                                             blessing.json, the PNGs), summary (HTML), and
                                             whether the model may be exported
  export    config, model, evaluation     -> saved_model (Model: the SavedModel directory)
  infer     config, examples, saved_model -> scores (Dataset: the infer step's shards, summary,
                                             threshold and TensorBoard logs), metrics (the
                                             summary's numbers): a BulkInferrer over the
                                             test split (or `infer.data`), through the export

A study sweep's report task calls `kerasvae.studies.sweep.study_report` (steps never import
the studies above them: `tests/test_layers.py`).

A step writes into a local scratch directory and its result is then copied to the
output artifact's path: the steps' atomic renames stay on a local filesystem, whatever
the artifact store is (a local path KFP uploads afterwards, or a `/gcs/` mount on
Vertex AI). The artifact arguments are KFP's artifact objects, used only through their
`path`, `metadata` and `log_metric`, so this module never imports kfp.
"""

import base64
import html
import shutil
import tempfile
from pathlib import Path

from kerasvae import _backend, artifacts
from kerasvae.metrics import registry as metric_registry
from kerasvae.steps import configs
from kerasvae.steps import executor
from kerasvae.steps import table

# A component's process imports this module before TensorFlow, as the command line would.
_backend.prefer_onednn()

# Training checkpoints only serve to resume a killed training in the same directory; a KFP
# retry starts in a fresh one, so they stay out of the Model artifact.
_NOT_IN_MODEL_ARTIFACT = ("checkpoints",)
# The summary's first rows: the registry's headline metrics, in `kerasvae evaluate`'s order.
_HEADLINE_METRICS = metric_registry.headline_metrics()


def scalar_metrics(metrics):
  """Every scalar of a `metrics.json` mapping as `{name: float}`, lists and mappings flattened.

  `kl_per_dim: [a, b]` becomes `kl_per_dim/z0`, `kl_per_dim/z1` (the TensorBoard tags of
  the evaluate step); other lists `name/0`, ...; a nested mapping `name/key`. Booleans and
  strings are not metrics.
  """
  out = {}

  def add(name, value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
      return
    if isinstance(value, (int, float)):
      out[name] = float(value)
    elif isinstance(value, dict):
      for key, item in value.items():
        add(f"{name}/{key}", item)
    elif isinstance(value, (list, tuple)):
      prefix = "z" if name.endswith("_per_dim") else ""
      for i, item in enumerate(value):
        add(f"{name}/{prefix}{i}", item)

  for key, value in metrics.items():
    add(key, value)
  return out


def _copy_tree(source, destination, ignore=()):
  destination = Path(destination)
  destination.mkdir(parents=True, exist_ok=True)
  shutil.copytree(source, destination, dirs_exist_ok=True,
                  ignore=shutil.ignore_patterns(*ignore) if ignore else None)


def _execute(name, config, scratch, paths=None, force=False):
  """Runs the step `name` of the step table into `<scratch>/<name>`; returns its result."""
  return executor.execute(table.STEPS[name], config, Path(scratch) / name, paths, force=force)


def ingest(config, overrides, examples):
  """The ingest component: writes the Examples artifact into `examples.path`."""
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  cfg = configs.load_config_parameter(config, overrides)
  with tempfile.TemporaryDirectory(prefix="kerasvae-ingest-") as scratch:
    cfg.run.runs_dir = scratch  # where the step puts the shared Examples artifact
    examples_dir = _execute("ingest", cfg, scratch)
    _copy_tree(examples_dir, examples.path)
  meta = reader.read_metadata(examples.path)
  examples.metadata.update(
      source=cfg.ingest.data.source, fingerprint=meta["fingerprint"],
      image_shape=list(meta["image_shape"]),
      split_counts={name: split["num_examples"] for name, split in meta["splits"].items()})


def train(config, overrides, examples, model):
  """The train component: trains on `examples` and writes the train step directory to `model`."""
  cfg = configs.load_config_parameter(config, overrides)
  with tempfile.TemporaryDirectory(prefix="kerasvae-train-") as scratch:
    train_dir = _execute("train", cfg, scratch, {"examples": examples.path})
    _copy_tree(train_dir, model.path, ignore=_NOT_IN_MODEL_ARTIFACT)
  meta = artifacts.read_json(Path(model.path) / artifacts.METADATA_FILE)
  model.metadata.update(framework="keras", model_file=table.MODEL_FILE,
                        kind=cfg.model.kind, latent_dim=cfg.model.latent_dim,
                        epochs_run=meta.get("epochs_run"), strategy=meta.get("strategy"),
                        replicas=meta.get("replicas"))


def evaluate(config, overrides, force_export, examples, model, metrics, evaluation, summary):
  """The evaluate component: metrics, figures and the blessing of `model`.

  Returns:
    Whether the model may be exported: it is blessed, or `force_export` is set, or
    the config says `export.require_blessing: false`. The pipeline's export runs on
    this (a KFP condition).
  """
  cfg = configs.load_config_parameter(config, overrides)
  with tempfile.TemporaryDirectory(prefix="kerasvae-evaluate-") as scratch:
    evaluate_dir = _execute("evaluate", cfg, scratch,
                            {"examples": examples.path, "train": model.path})
    _copy_tree(evaluate_dir, evaluation.path)
  values = artifacts.read_json(Path(evaluation.path) / "metrics.json")
  blessing = artifacts.read_json(Path(evaluation.path) / "blessing.json")
  for name, value in scalar_metrics(values).items():
    metrics.log_metric(name, value)
  exportable = bool(blessing["blessed"] or force_export or not cfg.export.require_blessing)
  if not exportable:
    from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
    print(f"evaluate: not exportable, the model is not blessed "
          f"({common.blessing_failures(blessing)}): a pipeline's export task skips it",
          flush=True)
  evaluation.metadata.update(blessed=bool(blessing["blessed"]), exportable=exportable)
  Path(summary.path).parent.mkdir(parents=True, exist_ok=True)
  Path(summary.path).write_text(summary_html(values, blessing, evaluation.path, exportable))
  return exportable


def export(config, overrides, force_export, model, evaluation, saved_model):
  """The export component: the SavedModel of `model` (with its five signatures) in `saved_model`.

  The artifact is the SavedModel directory itself (`saved_model.pb` at its root), the
  layout Vertex AI's model upload and `tf.saved_model.load` take; for TF Serving, copy
  it to `<model base>/<export.model_name>/<version>/`.
  """
  from kerasvae import serving  # pylint: disable=import-outside-toplevel
  cfg = configs.load_config_parameter(config, overrides)
  with tempfile.TemporaryDirectory(prefix="kerasvae-export-") as scratch:
    cfg.export.base_dir = str(Path(scratch) / "saved_models")
    version_dir = _execute("export", cfg, scratch,
                           {"train": model.path, "evaluate": evaluation.path},
                           force=force_export)
    _copy_tree(version_dir, saved_model.path)
  info = artifacts.read_json(Path(saved_model.path) / serving.METADATA_DIR / serving.METADATA_FILE)
  blessed = artifacts.read_json(Path(evaluation.path) / "blessing.json")["blessed"]
  saved_model.metadata.update(framework="tensorflow", model_name=cfg.export.model_name,
                              blessed=bool(blessed), forced=bool(force_export and not blessed),
                              signatures=sorted(info["signatures"]))


def infer(config, overrides, examples, saved_model, scores, metrics):
  """The infer component: per-example codes and anomaly scores of `infer.split` of `examples`
  (or of `infer.data`, checked against the training data first) under the exported
  `saved_model`, through its signatures."""
  from kerasvae.steps import infer as infer_step  # pylint: disable=import-outside-toplevel
  cfg = configs.load_config_parameter(config, overrides)
  with tempfile.TemporaryDirectory(prefix="kerasvae-infer-") as scratch:
    infer_dir = infer_step.run(cfg, examples.path, None, Path(scratch) / "infer",
                               model_path=saved_model.path)
    _copy_tree(infer_dir, scores.path)
  summary = artifacts.read_json(Path(scores.path) / "summary.json")
  for name, value in scalar_metrics(summary).items():
    metrics.log_metric(name, value)
  scores.metadata.update(format=infer_step.FORMAT, num_examples=summary["num_examples"],
                         shards=infer_step.finished_shards(scores.path)[-1] + 1,
                         threshold=summary["threshold"])


def summary_html(metrics, blessing, evaluate_dir, exportable):
  """A self-contained HTML page: the blessing, every metric and the figures (inline PNGs)."""
  verdict = "blessed" if blessing["blessed"] else "NOT blessed"
  values = scalar_metrics(metrics)
  first = [k for k in _HEADLINE_METRICS if k in values]
  rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{values[k]:.6g}</td></tr>"
                 for k in first + [k for k in values if k not in first])
  checks = ""
  for c in blessing["checks"]:
    bounds = " and ".join(f"{op} {c[key]}" for key, op in (("lower_bound", "&ge;"),
                                                          ("upper_bound", "&le;")) if key in c)
    checks += (f"<tr><td>{html.escape(str(c['metric']))}</td><td>{c['value']}</td>"
               f"<td>{bounds}</td><td>{'passed' if c['passed'] else 'FAILED'}</td></tr>")
  figures = ""
  for png in sorted(Path(evaluate_dir).glob("*.png")):
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    figures += (f"<figure><img src=\"data:image/png;base64,{data}\" style=\"max-width:600px\">"
                f"<figcaption>{html.escape(png.stem)}</figcaption></figure>")
  export_text = "will be exported" if exportable else "will not be exported"
  return (
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kerasvae evaluation</title>"
      "</head><body>"
      f"<h1>Evaluation: {verdict}; the model {export_text}</h1>"
      "<h2>Blessing thresholds</h2><table border=\"1\"><tr><th>metric</th><th>value</th>"
      f"<th>threshold</th><th>result</th></tr>{checks}</table>"
      "<h2>Metrics</h2><table border=\"1\"><tr><th>metric</th><th>value</th></tr>"
      f"{rows}</table><h2>Figures</h2>{figures}</body></html>")
