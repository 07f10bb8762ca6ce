"""Encoder and decoder networks: an MLP family and a convolutional family, for any image shape.

Networks are plain `keras.Sequential` models built from a few integers, so a
model's config stays a handful of constructor arguments and its weights load
into an identically rebuilt network.
"""

import math

import keras

ARCHITECTURES = ("mlp", "conv")
# The Keras dtype policies a network's layers may compute in. "mixed_bfloat16": bfloat16
# computation, float32 variables; the network's output is cast back to float32, so what
# reads it (the posterior, the likelihood, the losses) computes in float32.
DTYPES = ("float32", "mixed_bfloat16")


def check_dtype(dtype):
  """Returns `dtype` (one of `DTYPES`; None is "float32") or raises naming the argument."""
  if dtype is None:
    return "float32"
  if dtype not in DTYPES:
    raise ValueError(f"Expected dtype to be one of {list(DTYPES)}. Received: dtype={dtype!r}")
  return dtype


def _sequential(layers, dtype, name):
  """A `keras.Sequential` of `layers` with a float32 output: a network computing in another
  `dtype` ends with a float32 identity layer that casts its output."""
  if dtype != "float32":
    layers = layers + [keras.layers.Activation("linear", dtype="float32", name="output_float32")]
  return keras.Sequential(layers, name=name)


def check_image_shape(input_shape):
  """Returns `input_shape` as a tuple `(H, W, C)` or raises naming the argument."""
  shape = tuple(input_shape) if input_shape is not None else ()
  if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
    raise ValueError(
        "Expected input_shape to be (height, width, channels) with positive integers. "
        f"Received: input_shape={input_shape}")
  return shape


def _check_positive_ints(values, name, allow_empty=False):
  values = tuple(values)
  if (not values and not allow_empty) or not all(isinstance(v, int) and v > 0 for v in values):
    raise ValueError(f"Expected {name} to be a {'' if allow_empty else 'non-empty '}list of positive integers. "
                     f"Received: {name}={list(values)}")
  return values


def _conv_check(input_shape, filters):
  height, width, _ = input_shape
  factor = 2 ** len(filters)
  if height % factor or width % factor:
    raise ValueError(
        f"The conv architecture halves the image {len(filters)} times (one per entry of "
        f"filters={list(filters)}), so height and width must be divisible by {factor}. "
        f"Received: input_shape={input_shape}. Use fewer filters or the mlp architecture.")
  return height // factor, width // factor


def make_encoder(architecture, input_shape, output_units, hidden_units=(400,),
                 filters=(32, 64), dense_units=256, activation="relu", dtype="float32",
                 name="encoder"):
  """Builds an encoder network mapping images [B, H, W, C] to features [B, output_units].

  Args:
    architecture: `"mlp"` (flatten, dense layers) or `"conv"` (stride-2 4x4
      convolutions, then one dense layer), as in Burgess et al. (2018).
    input_shape: image shape `(H, W, C)`.
    output_units: width of the final linear layer (2 * latent_dim for a
      Gaussian posterior: mean and log-variance).
    hidden_units: widths of the MLP's hidden layers; empty for a linear map.
    filters: channels of each stride-2 convolution (conv only).
    dense_units: width of the dense layer after the convolutions (conv only).
    activation: hidden activation.
    dtype: the layers' Keras dtype policy, one of `DTYPES`: `"float32"`, or
      `"mixed_bfloat16"` (bfloat16 computation, float32 variables and output).
    name: the network's name.

  Returns:
    A built `keras.Sequential`; with "mixed_bfloat16" its output is cast to float32.
  """
  input_shape = check_image_shape(input_shape)
  dtype = check_dtype(dtype)
  policy = None if dtype == "float32" else dtype  # float32: Keras' global policy, as ever
  layers = [keras.Input(shape=input_shape)]
  if architecture == "mlp":
    layers.append(keras.layers.Flatten(dtype=policy))
    for units in _check_positive_ints(hidden_units, "hidden_units", allow_empty=True):
      layers.append(keras.layers.Dense(units, activation=activation, dtype=policy))
  elif architecture == "conv":
    filters = _check_positive_ints(filters, "filters")
    _conv_check(input_shape, filters)
    for f in filters:
      layers.append(keras.layers.Conv2D(f, 4, strides=2, padding="same", activation=activation,
                                        dtype=policy))
    layers.append(keras.layers.Flatten(dtype=policy))
    layers.append(keras.layers.Dense(dense_units, activation=activation, dtype=policy))
  else:
    raise ValueError(f"Expected architecture to be one of {list(ARCHITECTURES)}. "
                     f"Received: architecture={architecture!r}")
  layers.append(keras.layers.Dense(output_units, dtype=policy))
  return _sequential(layers, dtype, name)


def make_decoder(architecture, output_shape, latent_dim, hidden_units=(400,),
                 filters=(32, 64), dense_units=256, activation="relu", dtype="float32",
                 name="decoder"):
  """Builds a decoder mapping latents [B, latent_dim] to per-pixel parameters [B, H, W, C].

  The output is unconstrained (logits or pre-sigmoid means); the likelihood
  turns it into a distribution. Arguments mirror `make_encoder`, and the
  convolutional decoder inverts the encoder with transposed convolutions.

  Returns:
    A built `keras.Sequential`; with "mixed_bfloat16" its output is cast to float32.
  """
  output_shape = check_image_shape(output_shape)
  dtype = check_dtype(dtype)
  policy = None if dtype == "float32" else dtype  # float32: Keras' global policy, as ever
  layers = [keras.Input(shape=(latent_dim,))]
  if architecture == "mlp":
    for units in reversed(_check_positive_ints(hidden_units, "hidden_units", allow_empty=True)):
      layers.append(keras.layers.Dense(units, activation=activation, dtype=policy))
    layers.append(keras.layers.Dense(math.prod(output_shape), dtype=policy))
    layers.append(keras.layers.Reshape(output_shape, dtype=policy))
  elif architecture == "conv":
    filters = _check_positive_ints(filters, "filters")
    height, width = _conv_check(output_shape, filters)
    layers.append(keras.layers.Dense(dense_units, activation=activation, dtype=policy))
    layers.append(keras.layers.Dense(height * width * filters[-1], activation=activation,
                                     dtype=policy))
    layers.append(keras.layers.Reshape((height, width, filters[-1]), dtype=policy))
    for f in reversed(filters[:-1]):
      layers.append(keras.layers.Conv2DTranspose(f, 4, strides=2, padding="same",
                                                 activation=activation, dtype=policy))
    layers.append(keras.layers.Conv2DTranspose(output_shape[-1], 4, strides=2, padding="same",
                                               dtype=policy))
  else:
    raise ValueError(f"Expected architecture to be one of {list(ARCHITECTURES)}. "
                     f"Received: architecture={architecture!r}")
  return _sequential(layers, dtype, name)
