# The component image of the Kubeflow pipeline (`kerasvae pipeline compile --image ...`):
# TensorFlow's GPU image plus kerasvae with its `kfp` extra (the components run
# `python3 -m kfp.dsl.executor_main` and install nothing at start-up).
# Not built or run in this repository's tests (no Docker daemon where they run; they use KFP's
# local runner, and tests/test_package.py installs what this file copies, the same way, into a
# fresh venv). Where a daemon runs, from the repository's root:
#   docker build -t REGISTRY/kerasvae:0.1.0 . && docker push REGISTRY/kerasvae:0.1.0
FROM tensorflow/tensorflow:2.21.0-gpu
WORKDIR /opt/kerasvae
COPY setup.cfg pyproject.toml README.md ./
COPY kerasvae kerasvae
# A non-editable install: the image holds the installed package (with its bundled configs,
# package data in kerasvae/configs/), not this source tree.
RUN pip install --no-cache-dir ".[kfp]" && rm -rf /opt/kerasvae/kerasvae
# The bundled configs read their data (mnist/, fashion_mnist/) below this folder: mount the data
# there (a volume on the pipeline's tasks), or build with another location:
#   docker build --build-arg KERASVAE_DATA_DIR=/mnt/datasets -t kerasvae:0.1.0 .
ARG KERASVAE_DATA_DIR=/data
ENV KERASVAE_DATA_DIR=${KERASVAE_DATA_DIR}
