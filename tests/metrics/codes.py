"""Toy ground-truth data and three codes of it shared by the disentanglement metric tests.

The data are dSprites-like factors (a constant colour and five varied factors,
orientation cut to 10 classes so that 20 MIG bins can resolve every factor),
observed as the factors themselves scaled to [0, 1]. The codes are:

  * `factor_code`: the five varied factors, each scaled to unit variance:
    perfectly disentangled.
  * `rotated_code`: `factor_code` times a fixed random rotation: the same
    information, entangled.
  * `noise_code`: Gaussian noise independent of the observations.
"""

import numpy as np

from kerasvae.metrics import ground_truth

FACTOR_SIZES = (1, 3, 6, 10, 8, 8)
FACTOR_NAMES = ("color", "shape", "scale", "orientation", "pos_x", "pos_y")
VARIED = np.array([1, 2, 3, 4, 5])
NUM_VARIED = len(VARIED)


def make_data():
  return ground_truth.FactorGrid(FACTOR_SIZES, factor_names=FACTOR_NAMES,
                                 latent_factor_indices=[1, 2, 3, 4, 5])


def _uniform_scaled_std(size):
  """Standard deviation of U{0, ..., n-1} / (n-1): sqrt((n² - 1) / 12) / (n - 1)."""
  return np.sqrt((size ** 2 - 1) / 12.0) / (size - 1)


_STD = _uniform_scaled_std(np.asarray(FACTOR_SIZES)[VARIED].astype(np.float64))  # [5]
ROTATION = np.linalg.qr(np.random.RandomState(1).normal(size=(NUM_VARIED, NUM_VARIED)))[0]


def factor_code(observations):
  return observations[:, VARIED] / _STD  # [n, 5]


def rotated_code(observations):
  return factor_code(observations) @ ROTATION  # [n, 5]


def make_noise_code(seed=123):
  random_state = np.random.RandomState(seed)
  def noise_code(observations):
    return random_state.normal(size=(len(observations), NUM_VARIED))  # [n, 5]
  return noise_code
