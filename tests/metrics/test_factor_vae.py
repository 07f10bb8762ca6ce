"""Tests for the FactorVAE score."""

import numpy as np
import pytest

from kerasvae.metrics import factor_vae
from tests.metrics import codes

SIZES = dict(batch_size=64, num_train=1000, num_eval=500, num_variance_estimate=2000)


def test_disentangled_code_scores_one():
  result = factor_vae.compute_factor_vae_score(codes.make_data(), codes.factor_code, 0, **SIZES)
  assert result["factor_vae_score"] == 1.0
  assert result["factor_vae_train_accuracy"] == 1.0
  assert result["num_active_dims"] == 5
  assert result["dimension_to_factor"] == [0, 1, 2, 3, 4]


def test_rotated_code_scores_clearly_lower():
  result = factor_vae.compute_factor_vae_score(codes.make_data(), codes.rotated_code, 0, **SIZES)
  assert result["factor_vae_score"] < 0.8  # Observed: 0.67.


def test_noise_code_scores_near_chance():
  result = factor_vae.compute_factor_vae_score(codes.make_data(), codes.make_noise_code(), 0,
                                               **SIZES)
  # Chance is 1/5; the majority vote fits the training noise a little.
  assert result["factor_vae_score"] < 0.32  # Observed: 0.188.


def test_collapsed_dimensions_are_pruned_and_missing_factor_is_misclassified():
  # Code: [shape, scale, 0.01 * orientation, constant]. The last two have std < 0.05 and are
  # pruned. Fixing shape or scale zeroes the variance of its own dimension, so those votes are
  # always right; the three factors without a dimension (orientation, pos_x, pos_y) vote for
  # either remaining dimension at random and are outvoted there, so they are always wrong.
  # The accuracy is the share of votes for shape and scale: 2/5, binomial std 0.022 at 500.
  def code(x):
    factors = codes.factor_code(x)
    return np.stack([factors[:, 0], factors[:, 1], 0.01 * factors[:, 2],
                     np.full(len(x), 3.0)], axis=1)
  result = factor_vae.compute_factor_vae_score(codes.make_data(), code, 0, **SIZES)
  assert result["num_active_dims"] == 2
  assert result["active_dims"] == [0, 1]
  assert result["dimension_to_factor"] == [0, 1]
  assert abs(result["factor_vae_score"] - 2 / 5) < 0.08  # Observed: 0.338.
  assert abs(result["factor_vae_train_accuracy"] - 2 / 5) < 0.05  # Observed: 0.39.


def test_all_collapsed_scores_zero():
  result = factor_vae.compute_factor_vae_score(
      codes.make_data(), lambda x: np.zeros((len(x), 3)), 0, **SIZES)
  assert result["factor_vae_score"] == 0.0 and result["num_active_dims"] == 0


def test_majority_vote_on_constructed_votes():
  votes = np.array([[5, 0, 1],
                    [1, 7, 0],
                    [0, 2, 4]])  # [K=3 factors, A=3 dimensions]
  classifier = factor_vae.majority_vote_classifier(votes)
  np.testing.assert_array_equal(classifier, [0, 1, 2])
  assert factor_vae.majority_vote_accuracy(votes, classifier) == pytest.approx((5 + 7 + 4) / 20)
  # Two dimensions can belong to one factor; a factor without a dimension is always wrong.
  votes = np.array([[3, 4, 0],
                    [1, 0, 0],
                    [0, 1, 5]])
  classifier = factor_vae.majority_vote_classifier(votes)
  np.testing.assert_array_equal(classifier, [0, 0, 2])
  assert factor_vae.majority_vote_accuracy(votes, classifier) == pytest.approx((3 + 4 + 5) / 14)
  # Evaluated with another classifier, e.g. the training one on held-out votes.
  assert factor_vae.majority_vote_accuracy(votes, np.array([1, 1, 1])) == pytest.approx(1 / 14)


def test_least_variance_dimension_uses_normalised_variances():
  batch = np.array([[0.0, 0.0, 10.0],
                    [1.0, 0.5, 10.0],
                    [2.0, 1.0, 10.0]])  # [L=3, D=3]; sample variances 1, 0.25, 0.
  codes_ = np.stack([batch, batch])  # [P=2, L, D]
  active = np.array([0, 1])  # Dimension 2 pruned.
  # Raw variances prefer dimension 1; normalised by s² = (0.1, 1) dimension 0 wins (10 > 0.25).
  np.testing.assert_array_equal(
      factor_vae.least_variance_dimension(codes_, np.array([1.0, 1.0, 1.0]), active), [1, 1])
  np.testing.assert_array_equal(
      factor_vae.least_variance_dimension(codes_, np.array([100.0, 1.0, 1.0]), active), [0, 0])


def test_votes_count_every_point_once():
  data = codes.make_data()
  votes = factor_vae.sample_factor_vae_votes(
      data, codes.factor_code, 37, np.random.RandomState(0), global_variances=np.ones(5),
      active_dims=np.arange(5), batch_size=8, representation_batch_size=50)
  assert votes.shape == (5, 5) and votes.sum() == 37
  np.testing.assert_array_equal(votes, np.diag(np.diag(votes)))


def test_fixed_seed_is_reproducible():
  data = codes.make_data()
  first = factor_vae.compute_factor_vae_score(data, codes.rotated_code, 3, **SIZES)
  second = factor_vae.compute_factor_vae_score(data, codes.rotated_code,
                                               np.random.RandomState(3), **SIZES)
  assert first == second


def test_rejects_batch_of_one():
  with pytest.raises(ValueError, match="Received: batch_size=1"):
    factor_vae.compute_factor_vae_score(codes.make_data(), codes.factor_code, 0, batch_size=1)
