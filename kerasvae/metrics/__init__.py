"""Metrics as pure functions returning dicts: likelihood, disentanglement, sample quality.

`sample_quality` imports Keras; it is loaded on first use.
"""

from kerasvae.metrics.beta_vae import compute_beta_vae_score
from kerasvae.metrics.dci import compute_dci
from kerasvae.metrics.factor_vae import compute_factor_vae_score
from kerasvae.metrics.ground_truth import FactorGrid
from kerasvae.metrics.ground_truth import GroundTruthData
from kerasvae.metrics.mig import compute_mig
from kerasvae.metrics.sap import compute_sap
