"""Makes sure Keras runs on TensorFlow before anything imports it."""

import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) drowns the CLI's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def ensure_tensorflow_backend():
  """Selects the TensorFlow backend for Keras 3, or fails if another one was forced.

  Raises:
    ImportError: if `KERAS_BACKEND` names another backend, or Keras was
      already imported with one.
  """
  requested = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  if requested != "tensorflow":
    raise ImportError(
        "kerasvae needs the TensorFlow backend of Keras 3. Expected "
        f"KERAS_BACKEND=tensorflow. Received: KERAS_BACKEND={requested}. "
        "Unset it or set it to 'tensorflow'.")
  keras = sys.modules.get("keras")
  if keras is not None and hasattr(keras, "backend"):
    active = keras.backend.backend()
    if active != "tensorflow":
      raise ImportError(
          "kerasvae needs the TensorFlow backend of Keras 3, but Keras was "
          f"already imported with backend={active!r}. Import kerasvae first "
          "or set KERAS_BACKEND=tensorflow.")
