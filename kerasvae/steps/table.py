"""The pipeline's steps, in order: what each reads, what its fingerprint holds, its body.

`kerasvae run` (`kerasvae.pipeline.run_pipeline`), every study trial and the Kubeflow
components (`kerasvae.steps.kfp_adapter`) run these steps through `executor.execute`. Adding a
step: docs/contributing.md, "How a step runs". Importing this module imports no TensorFlow:
the command line checks a command's upstream steps with it first.
"""

import importlib
from pathlib import Path

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae.fingerprints import OMIT, Fingerprint, Part
from kerasvae.steps import common
from kerasvae.steps import executor

_data_ingest = importlib.import_module("kerasvae.data.ingest")  # the package exports `ingest`

INGEST = executor.Step(
    name="ingest", inputs=(), fingerprint=_data_ingest.FINGERPRINT,
    body="kerasvae.steps.ingest:body", settings=("ingest",))

MODEL_FILE = "model/model.keras"  # the trained model in the train step directory
# What early stopping and the kept checkpoint select on, part of the train fingerprint.
SELECTION = "validation/objective"

TRAIN = executor.Step(
    name="train",
    inputs=(executor.Input("examples", "ingest", damage=executor.EXAMPLES_DAMAGE),),
    fingerprint=Fingerprint(
        parts=(Part("model", lambda given: config_lib.to_dict(given.config.model),
                    "the whole model config: kind, network, prior, likelihood"),
               Part("train", lambda given: common.train_identity(given.config.train),
                    "the train config, but for what is left out below"),
               Part("examples", lambda given: given.examples["fingerprint"],
                    "the Examples artifact's fingerprint: other data trains another model"),
               Part("selection", lambda given: (SELECTION if given.config.train
                                                .early_stopping_patience else OMIT),
                    "with early stopping, what it selects on (issue 36): a model selected on "
                    "the validation ELBO is another model. Without early stopping nothing is "
                    "selected, and those trainings keep their fingerprint")),
        left_out={
            "train." + ", train.".join(common.UNFINGERPRINTED_TRAIN_SETTINGS):
                "display and disk use: the trained model is the same, so it is reused",
            **{f"train.{name} at {default}": "added after runs were fingerprinted: a config "
               "that does not set it keeps its run and its reused model"
               for name, default in common.FINGERPRINTED_UNLESS_DEFAULT.items()},
            "run.*": "where the run lives, not what it trains",
            "evaluate, export": "later steps: they do not change the model"}),
    body="kerasvae.steps.train:body", settings=("model", "train"),
    reuse=executor.Reuse(
        line="train: reusing {output} (same inputs and config; --force retrains)",
        damage=executor.Damage("trained model", "train", "kerasvae train --force")))

# Evaluate settings added after evaluations were fingerprinted: the active-latent scores
# (`<score>_active`) and dSprites' shape recognition.
EVALUATE_FINGERPRINTED_UNLESS_DEFAULT = {"active_latent_kl": 0.1,
                                         "shape_recognition_examples": 500}


def _evaluate_settings(config):
  """The evaluate config as fingerprinted, without the baseline (see EVALUATE's table)."""
  evaluate = config_lib.to_dict(config.evaluate)
  if not evaluate["change_thresholds"]:  # evaluations from before baselines stay reusable
    del evaluate["change_thresholds"]
  # Left out at their defaults: those evaluations stay reusable (without the new numbers;
  # --force adds them), as for DCI below.
  for name, default in EVALUATE_FINGERPRINTED_UNLESS_DEFAULT.items():
    if evaluate.get(name) == default:
      del evaluate[name]
  if evaluate["dci"]:  # so do those from before DCI (without its scores; --force adds them)
    del evaluate["dci"]
  return evaluate


def _served_baseline(given):
  """The served version the change thresholds compare against, `[path, version]` or None."""
  settings = _evaluate_settings(given.config)
  if "change_thresholds" not in settings and "dci" not in settings:
    return OMIT
  served = getattr(given, "served", None)
  return [str(served[0]), served[1]] if served else None


EVALUATE = executor.Step(
    name="evaluate",
    inputs=(executor.Input("examples", "ingest", fingerprinted=False,
                           damage=executor.EXAMPLES_DAMAGE),
            executor.Input("train", "train")),  # its model's digest: checked as it loads
    fingerprint=Fingerprint(
        parts=(Part("evaluate", lambda given: _evaluate_settings(given.config),
                    "the evaluate config, but for what is left out below"),
               Part("evaluate.baseline", _served_baseline,
                    "the served version the change thresholds compare against: a newer one "
                    "re-runs the evaluation whatever `evaluate.dci` is (this once hung on "
                    "dci's `else`, so with the default dci: true a candidate was judged "
                    "against a stale baseline). Kept, as None, in the fingerprints of dci: "
                    "false evaluations without thresholds, which have always carried it"),
               Part("train", lambda given: given.train["fingerprint"],
                    "the train step's fingerprint: another training is evaluated anew"),
               Part("model", lambda given: (given.train.get("digests") or {}).get(MODEL_FILE),
                    "the trained model's bytes: a model retrained with `kerasvae train "
                    "--force` (same config, new weights) is evaluated again")),
        left_out={
            "evaluate.change_thresholds when empty, and then the baseline": "evaluations from "
            "before baselines stay reusable",
            "evaluate.dci when true": "evaluations from before DCI stay reusable (without "
            "its scores; --force adds them)",
            **{f"evaluate.{name} at {default}": "added after evaluations were fingerprinted: "
               "those stay reusable (without the new numbers; --force adds them)"
               for name, default in EVALUATE_FINGERPRINTED_UNLESS_DEFAULT.items()},
            "the Examples artifact": "the trained model's fingerprint holds it",
            "run.*, export": "where the run lives, and a later step"}),
    body="kerasvae.steps.evaluate:body", settings=("evaluate",),
    given="kerasvae.steps.evaluate:served_baseline",
    reuse=executor.Reuse(
        line="evaluate: reusing {output} (same model and config; --force re-evaluates)",
        damage=executor.Damage("evaluation", "evaluate", "kerasvae evaluate --force"),
        # Evaluating again is safe: same model, same config, same seed.
        redo_damaged="evaluate: the evaluation {output} is damaged ({problem}); "
                     "evaluating again"))

EXPORT = executor.Step(
    name="export",
    inputs=(executor.Input("train", "train"),  # its model's digest: checked as it loads
            executor.Input("evaluate", "evaluate", damage=executor.Damage(
                "evaluation", "evaluate", "kerasvae evaluate --force"))),
    fingerprint=Fingerprint(
        parts=(Part("train", lambda given: given.train["fingerprint"],
                    "the train step's fingerprint: the model exported"),
               Part("evaluate", lambda given: given.evaluate["fingerprint"],
                    "the evaluate step's fingerprint: the blessing and metrics exported "
                    "beside it"),
               Part("export", lambda given: {
                   k: v for k, v in config_lib.to_dict(given.config.export).items()
                   if k != "serving_base_path"},
                    "the export config, but for what is left out below")),
        left_out={"export.serving_base_path": "models.config's view of the base directory, no "
                                              "part of what is exported (and exports made "
                                              "before the setting existed stay reusable)",
                  "run.*": "where the run lives: the exported model is the same"}),
    body="kerasvae.steps.export:body", settings=("export",),
    reuse=executor.Reuse(
        line="export: reusing {output} (this model is already exported; --force exports again)",
        damage=executor.Damage("exported SavedModel", "export", "kerasvae export --force",
                               "it writes a new version"),
        output="kerasvae.steps.export:exported_output",
        recover="kerasvae.steps.export:recover"))

VALIDATE = executor.Step(
    name="validate",
    inputs=(executor.Input("examples", "ingest", fingerprinted=False),),
    fingerprint=Fingerprint(
        parts=(Part("*", lambda given: config_lib.to_dict(given.data),
                    "the new data's block (`validation.data`, `infer.data` or --images): "
                    "its whole mapping is the fingerprinted one"),),
        left_out={"validation.*": "the rules and thresholds: a validation is never reused, "
                                  "the data is checked anew by every command",
                  "the Examples artifact": "the reference, named in anomalies.json"}),
    body="kerasvae.steps.validate:body", settings=("validation",))

# The pipeline's steps, in order (`kerasvae run`, study trials, the Kubeflow components); the
# steps a command runs on its own data after them (`kerasvae validate`).
PIPELINE = (INGEST, TRAIN, EVALUATE, EXPORT)
STEPS = {step.name: step for step in (*PIPELINE, VALIDATE)}


def check_upstream(config, steps, run_dir):
  """Refuses, before TensorFlow is imported, a command whose first step needs a step that has
  not run: `kerasvae evaluate` on a run without a finished train step fails in a second.

  Args:
    config: the `PipelineConfig`.
    steps: the steps the command runs, in pipeline order.
    run_dir: the run directory.
  """
  run_dir = Path(run_dir)
  first = STEPS.get(steps[0])
  for step in (i.step for i in first.inputs) if first else ():  # what the step reads
    if step in steps:
      continue
    if step == "ingest":  # the run's own ingest or the Examples shared by the same ingest config
      if not (artifacts.is_complete(run_dir / "ingest")
              or artifacts.is_complete(common.examples_directory(config))):
        raise common.StepError(
            f"No Examples artifact for this ingest config: neither {run_dir / 'ingest'} nor "
            f"{common.examples_directory(config)} is complete. Run `kerasvae ingest` with the "
            "same config first.")
    else:
      common.require_step(run_dir / step, step, f"kerasvae {step}")
