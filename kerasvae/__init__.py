"""kerasvae: variational autoencoders on TensorFlow 2, Keras 3 and TensorFlow Probability.

Models (`VAE`, `Autoencoder`, `NoisyAutoencoder`), priors
(`StandardGaussianPrior`, `GaussianMixturePrior`, `VampPrior`) and decoder
likelihoods are importable from the top level; the pipeline steps live in
`kerasvae.steps` and the `kerasvae` command in `kerasvae.cli`.
"""

from kerasvae._backend import ensure_tensorflow_backend

ensure_tensorflow_backend()

__version__ = "0.1.0"

# Heavy imports (TensorFlow) happen on first attribute access, so `kerasvae --help` starts fast.
_LAZY = {
    name: "kerasvae.models"
    for name in ("VAE", "Autoencoder", "NoisyAutoencoder", "LatentVariableModel",
                 "Prior", "StandardGaussianPrior", "GaussianMixturePrior", "VampPrior",
                 "Likelihood", "BernoulliLikelihood", "GaussianLikelihood",
                 "ContinuousBernoulliLikelihood", "PRIORS", "LIKELIHOODS", "MODELS")
}

__all__ = sorted(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    import importlib
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'kerasvae' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + __all__)
