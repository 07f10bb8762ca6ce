"""The importance-weighted (IWAE) estimate of log p(x), for the metrics, the serving signature
and the reports: the one estimator, `kerasvae.models.importance_sampling` (the models compute
their `iwae_log_likelihood` with it, so it lives below the metrics; see that module for the
mathematics and the references).
"""

from kerasvae.models.importance_sampling import CHUNK_PIXELS
from kerasvae.models.importance_sampling import DEFAULT_SEED
from kerasvae.models.importance_sampling import MAX_NUM_SAMPLES
from kerasvae.models.importance_sampling import OUTPUTS
from kerasvae.models.importance_sampling import chunk_size_for
from kerasvae.models.importance_sampling import draws
from kerasvae.models.importance_sampling import estimate
from kerasvae.models.importance_sampling import log_likelihood
from kerasvae.models.importance_sampling import mean_bound
from kerasvae.models.importance_sampling import seed_pair

__all__ = ["CHUNK_PIXELS", "DEFAULT_SEED", "MAX_NUM_SAMPLES", "OUTPUTS", "chunk_size_for",
           "draws", "estimate", "log_likelihood", "mean_bound", "seed_pair"]
