"""kerasvae: variational autoencoders on TensorFlow 2, Keras 3 and TensorFlow Probability.

Models (`VAE`, `Autoencoder`, `NoisyAutoencoder` and the disentangling VAEs `BetaTCVAE`,
`FactorVAE`, `DIPVAEI`, `DIPVAEII`, `AnnealedVAE`, plus `IWAE`; one per `model.kind`), priors
(`StandardGaussianPrior`, `GaussianMixturePrior`, `VampPrior`) and decoder
likelihoods are importable from the top level; the pipeline steps live in
`kerasvae.steps` and the `kerasvae` command in `kerasvae.cli`.
"""

import sys as _sys

from kerasvae import _backend

_backend.ensure_tensorflow_backend()

__version__ = "0.1.0"

# Heavy imports (TensorFlow) happen on first attribute access, so `kerasvae --help` starts fast.
_LAZY = {
    name: "kerasvae.models"
    for name in ("VAE", "Autoencoder", "NoisyAutoencoder", "LatentVariableModel",
                 "BetaTCVAE", "FactorVAE", "DIPVAEI", "DIPVAEII", "AnnealedVAE", "IWAE",
                 "Prior", "StandardGaussianPrior", "GaussianMixturePrior", "VampPrior",
                 "Likelihood", "BernoulliLikelihood", "GaussianLikelihood",
                 "ContinuousBernoulliLikelihood", "PRIORS", "LIKELIHOODS", "MODELS")
}

__all__ = sorted(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=import-outside-toplevel
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'kerasvae' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + __all__)


def _register_models(exec_keras=None, keras_module=None):
  """Imports `kerasvae.models`, whose classes register themselves with Keras' serialization.

  `keras.saving.load_model("vae.keras")` finds `VAE`, the priors and the likelihoods by
  their registered names (`kerasvae>VAE`) only once their modules are imported. Importing
  them here would make `import kerasvae` take TensorFlow's import time, so it happens when
  Keras is imported (by the user or by kerasvae): at once if Keras already is, else
  right after Keras' own `__init__` has run.
  """
  if exec_keras is not None:
    exec_keras(keras_module)
  if "kerasvae.models" in _sys.modules:
    return  # being imported (it imports Keras itself) or done: it registers the classes
  try:
    import kerasvae.models  # pylint: disable=import-outside-toplevel,unused-import
  except Exception as e:  # pylint: disable=broad-except
    # Keras itself must still import; loading a kerasvae model will then fail by name.
    import warnings  # pylint: disable=import-outside-toplevel
    warnings.warn(f"kerasvae could not register its models with Keras: {e!r}", stacklevel=2)


if "keras" in _sys.modules:
  _register_models()
else:
  _backend.on_first_import("keras", _register_models)
