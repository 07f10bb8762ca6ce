"""kerasvae: variational autoencoders on TensorFlow 2, Keras 3 and TensorFlow Probability."""

from kerasvae._backend import ensure_tensorflow_backend

ensure_tensorflow_backend()

__version__ = "0.1.0"
