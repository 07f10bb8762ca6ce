"""A small ground-truth data set and codes of it for the classifier-based scores (DCI, SAP).

`codes.py`'s data have 35 factor classes; DCI fits a gradient-boosted classifier
with one tree per class and stage, so these tests use three varied factors of
2, 3 and 4 classes (9 in all) to stay at about a second per score. The
observations are the factors scaled to [0, 1]. The codes are:

  * `factor_code`: the three varied factors: perfectly disentangled.
  * `rotated_code`: the factors, each scaled to unit variance, times a fixed
    random rotation: the same information, entangled.
  * `make_noise_code()`: Gaussian noise independent of the observations.
  * `dropped_code`: the first two factors and a constant 0 in place of the
    last, as a VAE's unused latent (its posterior mean at the prior's).
  * `duplicated_code`: `factor_code` twice, `[n, 6]`.
"""

import numpy as np

from kerasvae.metrics import ground_truth

FACTOR_SIZES = (1, 2, 3, 4)
FACTOR_NAMES = ("color", "shape", "scale", "position")
ROTATION = np.linalg.qr(np.random.RandomState(1).normal(size=(3, 3)))[0]
# Standard deviation of U{0, ..., n-1} / (n-1): sqrt((n² - 1) / 12) / (n - 1).
_STD = np.array([np.sqrt((n ** 2 - 1) / 12.0) / (n - 1) for n in FACTOR_SIZES[1:]])  # [3]


def make_data():
  return ground_truth.FactorGrid(FACTOR_SIZES, factor_names=FACTOR_NAMES)


def factor_code(observations):
  return observations[:, 1:]  # [n, 3]


def rotated_code(observations):
  return (observations[:, 1:] / _STD) @ ROTATION  # [n, 3]


def make_noise_code(seed=123):
  random_state = np.random.RandomState(seed)
  def noise_code(observations):
    return random_state.normal(size=(len(observations), 3))  # [n, 3]
  return noise_code


def dropped_code(observations):
  return np.concatenate([observations[:, 1:3], np.zeros((len(observations), 1))], axis=1)  # [n, 3]


def duplicated_code(observations):
  return np.concatenate([factor_code(observations), factor_code(observations)], axis=1)  # [n, 6]
