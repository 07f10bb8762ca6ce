"""Tests for disentanglement, completeness and informativeness (DCI)."""

import math

import numpy as np
import pytest
from scipy import stats

from kerasvae.metrics import dci
from kerasvae.metrics import ground_truth
from tests.metrics import small_codes

SIZES = dict(num_train=400, num_eval=200)  # a gradient-boosted fit per factor: about 1 s here


def _hand_dci(importance):
  """D and C written out with Python loops and `math.log`, as in Eastwood & Williams (2018)."""
  num_codes, num_factors = len(importance), len(importance[0])
  total = sum(sum(row) for row in importance)
  disentanglement = 0.0
  for row in importance:
    row_sum = sum(row)
    if row_sum == 0:
      continue  # ρ_i = 0
    entropy = -sum(r / row_sum * math.log(r / row_sum, num_factors) for r in row if r > 0)
    disentanglement += row_sum / total * (1 - entropy)
  completeness = 0.0
  for k in range(num_factors):
    column = [importance[i][k] for i in range(num_codes)]
    column_sum = sum(column)
    if column_sum == 0:
      continue
    entropy = -sum(r / column_sum * math.log(r / column_sum, num_codes) for r in column if r > 0)
    completeness += column_sum / total * (1 - entropy)
  return disentanglement, completeness


def test_entropy_formulas_match_a_hand_computation():
  # Code 0 serves factor 0 only, code 1 splits 1:1 between factors 1 and 2, code 2 serves all
  # three, code 3 nothing; the columns sum to different totals, so the weights matter.
  importance = [[0.9, 0.0, 0.0],
                [0.0, 0.5, 0.5],
                [0.2, 0.2, 0.2],
                [0.0, 0.0, 0.0]]  # [D=4, K=3]
  result = dci.dci_from_importance(importance)
  disentanglement, completeness = _hand_dci(importance)
  assert result["dci_disentanglement"] == pytest.approx(disentanglement, rel=1e-12)
  assert result["dci_completeness"] == pytest.approx(completeness, rel=1e-12)
  # In closed form: D_i = 1, 1 - log 2 / log 3, 0 and (uniform) 0; ρ = (0.9, 1, 0.6, 0) / 2.5.
  np.testing.assert_allclose(result["dci_disentanglement_per_code"],
                             [1, 1 - math.log(2) / math.log(3), 0, 0], atol=1e-12)
  np.testing.assert_allclose(result["dci_code_importance"], [0.36, 0.4, 0.24, 0], rtol=1e-12)
  assert result["dci_disentanglement"] == pytest.approx(
      0.36 + 0.4 * (1 - math.log(2) / math.log(3)), rel=1e-12)
  # C_0: (0.9, 0.2) / 1.1 over 4 codes.
  c0 = 1 + (0.9 / 1.1 * math.log(0.9 / 1.1) + 0.2 / 1.1 * math.log(0.2 / 1.1)) / math.log(4)
  assert result["dci_completeness_per_factor"][0] == pytest.approx(c0, rel=1e-12)


def test_matches_disentanglement_libs_entropy_with_its_offset():
  # disentanglement_lib adds 1e-11 to R and lets scipy normalise; zero entries aside the same.
  importance = np.random.RandomState(0).uniform(size=(6, 4)) ** 3  # [D, K]
  importance[2] = 0.0  # a code of no importance
  per_code = 1 - stats.entropy(importance.T + 1e-11, base=4)  # [D]
  per_factor = 1 - stats.entropy(importance + 1e-11, base=6)  # [K]
  disentanglement = np.sum(per_code * importance.sum(axis=1) / importance.sum())
  completeness = np.sum(per_factor * importance.sum(axis=0) / importance.sum())
  result = dci.dci_from_importance(importance)
  assert result["dci_disentanglement"] == pytest.approx(disentanglement, abs=1e-8)
  assert result["dci_completeness"] == pytest.approx(completeness, abs=1e-8)
  np.testing.assert_allclose(result["dci_completeness_per_factor"], per_factor, atol=1e-8)


def test_perfect_duplicated_and_empty_importance_matrices():
  perfect = dci.dci_from_importance(np.eye(3))
  assert perfect["dci_disentanglement"] == 1.0 and perfect["dci_completeness"] == 1.0
  # Each factor held equally by two codes: each code still serves one factor.
  duplicated = dci.dci_from_importance(np.concatenate([np.eye(3), np.eye(3)]))  # [6, 3]
  assert duplicated["dci_disentanglement"] == pytest.approx(1.0)
  assert duplicated["dci_completeness"] == pytest.approx(1 - math.log(2) / math.log(6))
  uniform = dci.dci_from_importance(np.ones((3, 3)))
  assert uniform["dci_disentanglement"] == pytest.approx(0.0, abs=1e-12)
  assert uniform["dci_completeness"] == pytest.approx(0.0, abs=1e-12)
  empty = dci.dci_from_importance(np.zeros((3, 2)))
  assert empty["dci_disentanglement"] == pytest.approx(0.0, abs=1e-12)
  assert empty["dci_completeness"] == pytest.approx(0.0, abs=1e-12)
  # One code: completeness is trivially 1 (an entropy over one outcome is 0).
  assert dci.dci_from_importance([[0.3, 0.7]])["dci_completeness"] == 1.0


def test_importance_matrix_is_checked():
  with pytest.raises(ValueError, match=r"Received: shape=\(3,\)"):
    dci.dci_from_importance(np.ones(3))
  with pytest.raises(ValueError, match="Received: min=-1."):
    dci.dci_from_importance([[1.0, -1.0]])


def test_disentangled_code_is_perfect():
  result = dci.compute_dci(small_codes.make_data(), small_codes.factor_code, 0, **SIZES)
  assert result["dci_disentanglement"] > 0.99  # Observed: 1.0 (to 1e-4).
  assert result["dci_completeness"] > 0.99
  assert result["dci_informativeness"] == 1.0 and result["dci_informativeness_train"] == 1.0
  assert result["factor_names"] == list(small_codes.FACTOR_NAMES[1:])
  importance = np.array(result["dci_importance_matrix"])  # [3, 3]
  np.testing.assert_allclose(importance.sum(axis=0), 1.0, rtol=1e-12)
  np.testing.assert_allclose(importance, np.eye(3), atol=1e-3)


def test_rotated_code_is_informative_but_entangled():
  result = dci.compute_dci(small_codes.make_data(), small_codes.rotated_code, 0, **SIZES)
  assert result["dci_disentanglement"] < 0.5  # Observed: 0.22.
  assert result["dci_completeness"] < 0.5  # Observed: 0.23.
  assert result["dci_informativeness"] > 0.95  # trees undo the rotation: observed 1.0


def test_noise_code_scores_near_zero_and_chance():
  result = dci.compute_dci(small_codes.make_data(), small_codes.make_noise_code(), 0, **SIZES)
  assert result["dci_disentanglement"] < 0.05  # Observed: 0.002.
  assert result["dci_completeness"] < 0.05
  chance = np.mean(1.0 / np.array(small_codes.FACTOR_SIZES[1:]))  # 0.361
  assert abs(result["dci_informativeness"] - chance) < 0.07  # Observed: 0.353.
  assert result["dci_informativeness_train"] > 0.8  # the trees memorise the noise


def test_dropped_factor_loses_its_completeness_and_informativeness():
  # The last factor's code is constant. Its classifier's importances still sum to 1: they go
  # to the codes of the other factors it splits the training points on (overfitting).
  result = dci.compute_dci(small_codes.make_data(), small_codes.dropped_code, 0, **SIZES)
  completeness = result["dci_completeness_per_factor"]
  informativeness = result["dci_informativeness_per_factor"]
  assert min(completeness[:2]) > 0.99 and completeness[2] < 0.6  # Observed: 1, 1, 0.39.
  assert min(informativeness[:2]) == 1.0
  assert abs(informativeness[2] - 1 / small_codes.FACTOR_SIZES[3]) < 0.1  # Observed: 0.30.
  # The same overfitting makes the two good codes look half-used for the dropped factor, so
  # disentanglement falls too (observed: 0.43), though no code mixes two captured factors.
  assert result["dci_disentanglement"] < 0.6
  assert result["dci_code_importance"][2] == 0.0


def test_duplicated_codes_are_incomplete_but_disentangled():
  result = dci.compute_dci(small_codes.make_data(), small_codes.duplicated_code, 0, **SIZES)
  assert result["dci_disentanglement"] > 0.99  # each code still serves one factor
  # Ties between the copies go either way, so each factor's importance is split about evenly
  # over two of six codes: C_k near 1 - log 2 / log 6 = 0.613.
  np.testing.assert_allclose(result["dci_completeness_per_factor"],
                             1 - math.log(2) / math.log(6), atol=0.06)  # Observed: 0.62-0.65.
  assert result["dci_informativeness"] == 1.0


def test_fixed_seed_is_reproducible_and_size_one_factors_are_ignored():
  data = ground_truth.FactorGrid((1, 3, 4), latent_factor_indices=[0, 1, 2])
  first = dci.compute_dci(data, lambda x: x[:, 1:], 3, num_train=100, num_eval=50)
  assert len(first["dci_completeness_per_factor"]) == 2
  assert first == dci.compute_dci(data, lambda x: x[:, 1:], np.random.RandomState(3),
                                  num_train=100, num_eval=50)


def test_rejects_bad_inputs():
  with pytest.raises(ValueError, match="Expected a positive integer. Received: num_eval=0"):
    dci.compute_dci(small_codes.make_data(), small_codes.factor_code, 0, num_eval=0)
  codes = np.zeros((4, 2))
  with pytest.raises(ValueError, match=r"two classes of factor 1. Received: classes=\[0\]"):
    dci.dci_from_codes(codes, np.array([[0, 0], [1, 0], [0, 0], [1, 0]]), codes,
                       np.zeros((4, 2), np.int64), 0)
  with pytest.raises(ValueError, match=r"same D and K.*eval_codes.shape=\(4, 3\)"):
    dci.dci_from_codes(codes, np.zeros((4, 2)), np.zeros((4, 3)), np.zeros((4, 2)), 0)
