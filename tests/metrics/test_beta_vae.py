"""Tests for the β-VAE score."""

import numpy as np
import pytest

from kerasvae.metrics import beta_vae
from kerasvae.metrics import ground_truth
from tests.metrics import codes

SIZES = dict(batch_size=64, num_train=1000, num_eval=500)


def test_disentangled_code_scores_one():
  result = beta_vae.compute_beta_vae_score(codes.make_data(), codes.factor_code, 0, **SIZES)
  assert result["beta_vae_score"] == 1.0
  assert result["beta_vae_train_accuracy"] == 1.0
  assert result["num_factors"] == 5
  assert result["factor_names"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]


def test_rotated_code_is_still_scored_well_above_chance():
  # The β-VAE score is lenient: the classifier sees |R(v1 - v2)| averaged over the batch,
  # and the zero in the fixed factor's direction still shows through a rotation.
  result = beta_vae.compute_beta_vae_score(codes.make_data(), codes.rotated_code, 0, **SIZES)
  assert 0.6 < result["beta_vae_score"] < 1.0  # Observed: 0.794 (chance is 0.2).


def test_noise_code_scores_at_chance():
  result = beta_vae.compute_beta_vae_score(codes.make_data(), codes.make_noise_code(), 0,
                                           **SIZES)
  assert abs(result["beta_vae_score"] - 1.0 / codes.NUM_VARIED) < 0.07  # Observed: 0.206.


def test_fixed_seed_is_reproducible():
  data = codes.make_data()
  first = beta_vae.compute_beta_vae_score(data, codes.rotated_code, 5, **SIZES)
  second = beta_vae.compute_beta_vae_score(data, codes.rotated_code,
                                           np.random.RandomState(5), **SIZES)
  assert first == second


def test_points_keep_the_chosen_factor_fixed_within_each_pair():
  # With the factors as the code, the fixed factor's coordinate of b is exactly 0 and the
  # others are positive, so every point's label can be read off its features.
  data = codes.make_data()
  features, labels = beta_vae.sample_beta_vae_points(
      data, codes.factor_code, 50, np.random.RandomState(0), batch_size=16,
      representation_batch_size=100)  # Three points per call: chunks of 3, 3, ..., 2.
  assert features.shape == (50, 5) and labels.shape == (50,)
  np.testing.assert_array_equal(features[np.arange(50), labels], 0.0)
  np.testing.assert_array_equal(np.argmin(features, axis=1), labels)
  assert np.all(np.sort(features, axis=1)[:, 1] > 0)


def test_features_are_mean_absolute_differences():
  codes1 = np.array([[[0.0, 1.0], [2.0, -1.0]]])  # [1, 2, 2]
  codes2 = np.array([[[1.0, 1.0], [-2.0, 0.0]]])
  # Hand computation: (|0-1| + |2+2|) / 2 = 2.5 and (|1-1| + |-1-0|) / 2 = 0.5.
  np.testing.assert_allclose(beta_vae.beta_vae_features(codes1, codes2), [[2.5, 0.5]])


def test_size_one_factors_are_never_labels():
  data = ground_truth.FactorGrid((1, 4, 5), latent_factor_indices=[0, 1, 2])
  result = beta_vae.compute_beta_vae_score(data, lambda x: x[:, 1:], 0, batch_size=8,
                                           num_train=100, num_eval=50)
  assert result["num_factors"] == 2 and result["beta_vae_score"] == 1.0


def test_rejects_bad_sizes():
  with pytest.raises(ValueError, match="Expected a positive integer. Received: num_train=0"):
    beta_vae.compute_beta_vae_score(codes.make_data(), codes.factor_code, 0, num_train=0)
