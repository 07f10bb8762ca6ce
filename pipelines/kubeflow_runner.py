"""Compiles the kerasvae pipeline for your Kubeflow (or Vertex AI) cluster and, given a host, submits it.

The wiring a user edits, kept apart from the library as the TFX template keeps its
`kubeflow_v2_runner.py` apart from the components: set the constants below (your image,
your config or study, your accelerators), then

  python pipelines/kubeflow_runner.py                            # writes kerasvae_pipeline.yaml
  python pipelines/kubeflow_runner.py --host http://KFP_HOST     # and submits a run

The pipeline itself (components, DAG, compiler) is the library's `kerasvae.kfp_pipeline`,
the same factory `kerasvae pipeline compile` calls; this file only chooses its settings.
It needs the `kfp` extra (`pip install ".[kfp]"`).
"""

import argparse
import sys

from kerasvae import kfp_pipeline

# The image every component runs in: the repository's Dockerfile, built and pushed to your
# registry (`docker build -t REGISTRY/kerasvae:0.1.0 . && docker push REGISTRY/kerasvae:0.1.0`).
IMAGE = "REGISTRY/kerasvae:0.1.0"
# A bundled config name or a YAML file (its mapping is compiled into the spec).
CONFIG = "mnist_vae"
OVERRIDES = []  # `--set` values, e.g. ["train.epochs=20"]
# The train step's accelerator: "nvidia.com/gpu" on Kubeflow, "NVIDIA_TESLA_T4" on Vertex AI;
# "" trains on CPU.
ACCELERATOR_TYPE = "nvidia.com/gpu"
ACCELERATOR_COUNT = 1
# A study name (e.g. "priors") compiles that study as a sweep instead of one run: its trials
# (CONFIG then names the study's YAML, None its bundled one) in parallel, at most PARALLELISM
# at once (0: no cap), each on the accelerator above.
STUDY = None
PARALLELISM = 0
OUTPUT = "kerasvae_pipeline.yaml"
EXPERIMENT = "kerasvae"


def compile_spec(output=OUTPUT):
  """Writes the pipeline spec with this file's settings; returns its path."""
  if STUDY:
    return kfp_pipeline.compile_study(STUDY, output, CONFIG, OVERRIDES, image=IMAGE,
                                      accelerator_type=ACCELERATOR_TYPE,
                                      accelerator_count=ACCELERATOR_COUNT,
                                      parallelism=PARALLELISM)
  return kfp_pipeline.compile_pipeline(CONFIG, output, OVERRIDES, image=IMAGE,
                                       accelerator_type=ACCELERATOR_TYPE,
                                       accelerator_count=ACCELERATOR_COUNT)


def submit(package, host, experiment=EXPERIMENT):
  """Starts a run of the compiled `package` on the KFP API server at `host`; returns its id."""
  import kfp  # pylint: disable=import-outside-toplevel
  client = kfp.Client(host=host)
  return client.create_run_from_pipeline_package(str(package), arguments={},
                                                 experiment_name=experiment).run_id


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", default=OUTPUT, help=f"the spec file (default: {OUTPUT})")
  parser.add_argument("--host", default=None,
                      help="the KFP API server; given, the compiled spec is submitted as a run")
  args = parser.parse_args(argv)
  package = compile_spec(args.output)
  print(f"kubeflow_runner: wrote {package}")
  if args.host:
    print(f"kubeflow_runner: submitted run {submit(package, args.host)} to {args.host}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
