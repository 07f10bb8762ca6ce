"""Metrics as pure functions returning dicts: likelihood, disentanglement, sample quality.

`registry` lists every metric the evaluate step writes. The functions below are imported on
first use (they load scikit-learn; `sample_quality` Keras), so that reading the registry
(`kerasvae config`) imports none of them.
"""

import importlib

_LAZY = {
    "compute_beta_vae_score": "kerasvae.metrics.beta_vae",
    "compute_dci": "kerasvae.metrics.dci",
    "compute_factor_vae_score": "kerasvae.metrics.factor_vae",
    "FactorGrid": "kerasvae.metrics.ground_truth",
    "GroundTruthData": "kerasvae.metrics.ground_truth",
    "compute_mig": "kerasvae.metrics.mig",
    "compute_sap": "kerasvae.metrics.sap",
}

__all__ = list(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
