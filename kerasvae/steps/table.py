"""The pipeline's steps, in order: what each reads, what its fingerprint holds, its body.

`kerasvae run` (`kerasvae.pipeline.run_pipeline`), every study trial and the Kubeflow
components (`kerasvae.steps.kfp_adapter`) run these steps through `executor.execute`. Adding a
step: docs/contributing.md, "How a step runs". Importing this module imports no TensorFlow:
the command line checks a command's upstream steps with it first.
"""

import importlib

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

PIPELINE = (INGEST, TRAIN)
STEPS = {step.name: step for step in PIPELINE}
