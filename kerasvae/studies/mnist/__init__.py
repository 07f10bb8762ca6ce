"""The MNIST-family studies: latent size, β, autoencoder versus VAE, priors.

Each `analyse_*` function gets the finished trials, adds the study's own
measurements (sample quality with the study's classifier), draws the figures
and returns the report's sections as markdown. Every sentence about results is
built from the measured numbers, so the text cannot contradict the table, and
names the data with `context.data_words` (MNIST's digits, Fashion-MNIST's
images), so it cannot call a garment a digit.

One module per study (`latent_dim`, `beta`, `ae_vs_vae`, `priors`) and what they share
(`common`); the study registry (`kerasvae.studies.STUDIES`) calls the `analyse_*` functions
re-exported here.
"""

from kerasvae.studies.mnist.ae_vs_vae import (AE_SAMPLERS, MODEL_NAMES, NOTABLE_CHANGE,
                                              analyse_ae_vs_vae, code_noise)
from kerasvae.studies.mnist.beta import TRAVERSED_LATENTS, analyse_beta, most_active
from kerasvae.studies.mnist.common import ELBO_COLUMNS, SAMPLE_COLUMNS, sample_quality_text
from kerasvae.studies.mnist.latent_dim import analyse_latent_dim, in_short
from kerasvae.studies.mnist.priors import PRIOR_NAMES, analyse_priors

__all__ = [
    "AE_SAMPLERS", "ELBO_COLUMNS", "MODEL_NAMES", "NOTABLE_CHANGE", "PRIOR_NAMES",
    "SAMPLE_COLUMNS", "TRAVERSED_LATENTS", "analyse_ae_vs_vae", "analyse_beta",
    "analyse_latent_dim", "analyse_priors", "code_noise", "in_short", "most_active",
    "sample_quality_text",
]
