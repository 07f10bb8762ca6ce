"""Throughput and latency benchmarks (scripts, never tests): benchmarks/README.md.

Each script measures what the `kerasvae` command runs, so TensorFlow is set up as the command
sets it up (`kerasvae._backend.prefer_onednn`) before any script imports it.
"""

from kerasvae import _backend

_backend.prefer_onednn()
