# The component image of the Kubeflow pipeline (`kerasvae pipeline compile --image ...`):
# TensorFlow's GPU image plus kerasvae with its `kfp` extra (the components run
# `python3 -m kfp.dsl.executor_main` and install nothing at start-up).
# Not built or run in this repository's tests (they use KFP's local runner).
#   docker build -t kerasvae:0.1.0 . && docker tag kerasvae:0.1.0 REGISTRY/kerasvae:0.1.0
FROM tensorflow/tensorflow:2.21.0-gpu
WORKDIR /opt/kerasvae
COPY setup.cfg pyproject.toml README.md ./
COPY kerasvae kerasvae
COPY pipelines pipelines
RUN pip install --no-cache-dir ".[kfp]"
