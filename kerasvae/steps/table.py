"""The pipeline's steps, in order: what each reads, what its fingerprint holds, its body.

`kerasvae run` (`kerasvae.pipeline.run_pipeline`), every study trial and the Kubeflow
components (`kerasvae.steps.kfp_adapter`) run these steps through `executor.execute`. Adding a
step: docs/contributing.md, "How a step runs". Importing this module imports no TensorFlow:
the command line checks a command's upstream steps with it first.
"""

import importlib

from kerasvae.steps import executor

_data_ingest = importlib.import_module("kerasvae.data.ingest")  # the package exports `ingest`

INGEST = executor.Step(
    name="ingest", inputs=(), fingerprint=_data_ingest.FINGERPRINT,
    body="kerasvae.steps.ingest:body", settings=("ingest",))

PIPELINE = (INGEST,)
STEPS = {step.name: step for step in PIPELINE}
