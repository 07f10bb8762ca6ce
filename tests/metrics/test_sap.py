"""Tests for the SAP score."""

import numpy as np
import pytest

from kerasvae.metrics import ground_truth
from kerasvae.metrics import sap
from tests.metrics import small_codes

SIZES = dict(num_train=400, num_eval=200)


def test_score_matrix_is_each_single_code_classifiers_accuracy():
  # Factor 0 is the sign of code 0; factor 1 the sign of code 1, except on the last 500 held-out
  # points where it is a coin flip; code 2 is uninformative. A threshold on one code is all a
  # classifier of one feature can learn, so the accuracies follow from the construction.
  random_state = np.random.RandomState(0)
  codes = random_state.normal(size=(2000, 3))  # [N, 3]
  factors = np.stack([codes[:, 0] > 0, codes[:, 1] > 0], axis=1).astype(np.int64)  # [N, 2]
  factors[1500:, 1] = random_state.randint(2, size=500)
  train, held_out = slice(0, 1000), slice(1000, 2000)
  matrix = sap.sap_score_matrix(codes[train], factors[train], codes[held_out],
                                factors[held_out], 0)  # [3, 2]
  assert matrix.shape == (3, 2)
  assert matrix[0, 0] > 0.98  # Observed: 0.994 (C = 0.01 pulls the threshold a little off 0).
  assert abs(matrix[1, 1] - 0.75) < 0.05  # right on half the points, a coin on the other half
  assert np.all(np.abs(matrix[[1, 2, 0, 2], [0, 0, 1, 1]] - 0.5) < 0.06)
  result = sap.sap_from_codes(codes[train], factors[train], codes[held_out], factors[held_out], 0)
  np.testing.assert_allclose(result["sap_score_matrix"], matrix)
  # The gaps, from the matrix by hand: best minus second best of each column.
  expected = [matrix[0, 0] - max(matrix[1, 0], matrix[2, 0]),
              matrix[1, 1] - max(matrix[0, 1], matrix[2, 1])]
  np.testing.assert_allclose(result["sap_per_factor"], expected, rtol=1e-12)
  assert result["sap"] == pytest.approx(np.mean(expected), rel=1e-12)


def test_top_two_gap():
  np.testing.assert_allclose(ground_truth.top_two_gap([[0.9, 0.2], [0.4, 0.2], [0.5, 0.1]]),
                             [0.4, 0.0])
  np.testing.assert_allclose(ground_truth.top_two_gap([[0.7, 0.3]]), [0.7, 0.3])  # no runner-up


def test_disentangled_code_scores_highest():
  result = sap.compute_sap(small_codes.make_data(), small_codes.factor_code, 0, **SIZES)
  matrix = np.array(result["sap_score_matrix"])  # [3, 3]
  np.testing.assert_array_equal(np.argmax(matrix, axis=0), [0, 1, 2])
  # The binary factor is predicted perfectly from its code, chance (1/2) from the others.
  assert matrix[0, 0] == 1.0 and result["sap_per_factor"][0] > 0.4  # Observed: 0.455.
  # With 3 and 4 classes a threshold classifier of one feature misses middle classes.
  assert result["sap"] > 0.3  # Observed: 0.345.
  assert result["factor_names"] == list(small_codes.FACTOR_NAMES[1:])


def test_rotated_noise_and_duplicated_codes_score_lower():
  data = small_codes.make_data()
  disentangled = sap.compute_sap(data, small_codes.factor_code, 0, **SIZES)["sap"]
  rotated = sap.compute_sap(data, small_codes.rotated_code, 0, **SIZES)["sap"]
  noise = sap.compute_sap(data, small_codes.make_noise_code(), 0, **SIZES)["sap"]
  duplicated = sap.compute_sap(data, small_codes.duplicated_code, 0, **SIZES)
  assert rotated < disentangled / 2  # Observed: 0.113 against 0.345.
  assert noise < 0.07  # Observed: 0.037.
  # Two identical codes predict each factor equally well: no gap at all.
  assert duplicated["sap"] == 0.0 and duplicated["sap_per_factor"] == [0.0, 0.0, 0.0]


def test_dropped_factor_has_no_gap():
  result = sap.compute_sap(small_codes.make_data(), small_codes.dropped_code, 0, **SIZES)
  assert min(result["sap_per_factor"][:2]) > 0.25 and result["sap_per_factor"][2] < 0.05


def test_fixed_seed_is_reproducible_and_rejects_bad_inputs():
  data = ground_truth.FactorGrid((1, 3, 4), latent_factor_indices=[0, 1, 2])
  first = sap.compute_sap(data, lambda x: x[:, 1:], 3, num_train=100, num_eval=50)
  assert len(first["sap_per_factor"]) == 2
  assert first == sap.compute_sap(data, lambda x: x[:, 1:], np.random.RandomState(3),
                                  num_train=100, num_eval=50)
  with pytest.raises(ValueError, match="Expected a positive integer. Received: num_train=0"):
    sap.compute_sap(data, lambda x: x, 0, num_train=0)
  with pytest.raises(ValueError, match=r"Received: codes.shape=\(4, 2\), factors.shape=\(3, 1\)"):
    sap.sap_score_matrix(np.zeros((4, 2)), np.zeros((3, 1)), np.zeros((4, 2)),
                         np.zeros((4, 1)), 0)
