"""Tests for the Mutual Information Gap."""

import collections
import math

import numpy as np
import pytest

from kerasvae.metrics import ground_truth
from kerasvae.metrics import mig
from tests.metrics import codes


def _hand_mutual_information(a, b):
  """Σ p(a, b) log(p(a, b) / (p(a) p(b))) in nats, from counts."""
  n = len(a)
  joint = collections.Counter(zip(a.tolist(), b.tolist()))
  count_a = collections.Counter(a.tolist())
  count_b = collections.Counter(b.tolist())
  return sum(c / n * math.log((c / n) / (count_a[x] / n * count_b[y] / n))
             for (x, y), c in joint.items())


def _hand_two_bins(z):
  """Two equal-width bins over [min, max]: 1 below the midpoint, 2 from it on."""
  return np.where(z < (z.min() + z.max()) / 2, 1, 2)


# A tiny example: 8 samples, 3 code dimensions, 2 factors.
CODES = np.array([[0.0, 0.0, 0.0],
                  [0.1, 1.0, 0.0],
                  [0.2, 0.0, 0.0],
                  [0.3, 1.0, 0.0],
                  [1.0, 0.0, 0.0],
                  [0.9, 1.0, 0.0],
                  [0.8, 0.0, 0.0],
                  [0.7, 1.0, 1.0]])  # [N=8, D=3]
FACTORS = np.array([[0, 0], [0, 1], [0, 1], [0, 0],
                    [1, 2], [1, 2], [1, 0], [1, 1]])  # [N=8, K=2]


def test_discretisation_uses_equal_width_bins_over_the_range():
  z = np.array([[0.0], [0.24], [0.26], [0.5], [0.74], [0.76], [1.0]])
  # Edges 0, .25, .5, .75, 1; a value on an edge starts the next bin; the maximum is in the last.
  np.testing.assert_array_equal(mig.histogram_discretize(z, 4)[:, 0], [1, 1, 2, 3, 3, 4, 4])
  # A constant dimension falls in a single bin and so carries no information.
  assert len(np.unique(mig.histogram_discretize(np.full((3, 1), 2.0), 20))) == 1
  for j in range(3):
    np.testing.assert_array_equal(mig.histogram_discretize(CODES, 2)[:, j],
                                  _hand_two_bins(CODES[:, j]))


def test_mig_matches_a_hand_computation():
  binned = [_hand_two_bins(CODES[:, j]) for j in range(3)]
  information = np.array([[_hand_mutual_information(binned[j], FACTORS[:, k]) for k in range(2)]
                          for j in range(3)])  # [D, K]
  entropy = np.array([_hand_mutual_information(FACTORS[:, k], FACTORS[:, k]) for k in range(2)])
  expected_gaps = []
  for k in range(2):
    best, second = sorted(information[:, k], reverse=True)[:2]
    expected_gaps.append((best - second) / entropy[k])

  result = mig.mig_from_codes(CODES, FACTORS, num_bins=2)
  np.testing.assert_allclose(result["mutual_information"], information, rtol=1e-12)
  np.testing.assert_allclose(result["factor_entropy"], entropy, rtol=1e-12)
  np.testing.assert_allclose(result["mig_per_factor"], expected_gaps, rtol=1e-12)
  assert result["mig"] == pytest.approx(np.mean(expected_gaps), rel=1e-12)

  # In closed form for factor 0: z0 is factor 0, so I = H = log 2; the runner-up is z2, which
  # is 1 only once, where factor 0 is 1:
  # I(z2; v0) = 1/2 log(8/7) + 3/8 log(6/7) + 1/8 log 2.
  runner_up = 0.5 * math.log(8 / 7) + 0.375 * math.log(6 / 7) + 0.125 * math.log(2)
  assert result["mig_per_factor"][0] == pytest.approx((math.log(2) - runner_up) / math.log(2))


def test_single_dimension_code_has_no_runner_up():
  result = mig.mig_from_codes(CODES[:, :1], FACTORS[:, :1], num_bins=2)
  assert result["mig"] == pytest.approx(1.0)


def test_constant_factor_is_an_error():
  with pytest.raises(ValueError, match=r"Received: constant factors at \[1\]"):
    mig.mig_from_codes(CODES, np.stack([FACTORS[:, 0], np.zeros(8)], axis=1), num_bins=2)
  with pytest.raises(ValueError, match=r"Received: codes.shape=\(8, 3\), factors.shape=\(7, 2\)"):
    mig.mig_from_codes(CODES, FACTORS[:7])


def test_disentangled_code_scores_one():
  result = mig.compute_mig(codes.make_data(), codes.factor_code, 0, num_train=3000)
  # Slightly below 1: the plug-in information of unrelated dimensions is biased upwards.
  assert result["mig"] > 0.98  # Observed: 0.996.
  assert len(result["mig_per_factor"]) == 5
  assert result["factor_names"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
  np.testing.assert_allclose(np.diag(result["mutual_information"]), result["factor_entropy"],
                             rtol=1e-12)


def test_rotated_code_scores_clearly_lower():
  result = mig.compute_mig(codes.make_data(), codes.rotated_code, 0, num_train=3000)
  assert result["mig"] < 0.2  # Observed: 0.051.


def test_noise_code_scores_near_zero():
  result = mig.compute_mig(codes.make_data(), codes.make_noise_code(), 0, num_train=3000)
  assert 0 <= result["mig"] < 0.02  # Observed: 0.0008.


def test_size_one_factors_are_ignored_and_seed_is_fixed():
  data = ground_truth.FactorGrid((1, 4, 5), latent_factor_indices=[0, 1, 2])
  result = mig.compute_mig(data, lambda x: x[:, 1:], 4, num_train=500)
  assert len(result["mig_per_factor"]) == 2 and result["mig"] > 0.98
  assert result == mig.compute_mig(data, lambda x: x[:, 1:], np.random.RandomState(4),
                                   num_train=500)
