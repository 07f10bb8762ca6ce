"""Tests for the ground-truth data protocol, `FactorGrid` and the batched sampling helpers."""

import numpy as np
import pytest

from kerasvae.metrics import ground_truth
from tests.metrics import codes


def test_factor_grid_samples_uniform_class_indices():
  data = ground_truth.FactorGrid((1, 3, 6))
  factors = data.sample_factors(60000, np.random.RandomState(0))
  assert factors.shape == (60000, 3) and factors.dtype == np.int64
  assert np.all(factors[:, 0] == 0)
  for k, size in enumerate((1, 3, 6)):
    frequencies = np.bincount(factors[:, k], minlength=size) / len(factors)
    np.testing.assert_allclose(frequencies, np.full(size, 1.0 / size), atol=0.01)
  assert data.latent_factor_indices == [1, 2]
  assert data.factor_names == ("factor_0", "factor_1", "factor_2")


def test_factor_grid_default_observations_are_scaled_factors():
  data = ground_truth.FactorGrid((1, 3, 6))
  observations = data.sample_observations_from_factors(np.array([[0, 2, 5], [0, 1, 0]]), None)
  np.testing.assert_array_equal(observations, np.array([[0, 1, 1], [0, 0.5, 0]], np.float32))
  assert observations.dtype == np.float32
  assert isinstance(data, ground_truth.GroundTruthData)


def test_factor_grid_custom_observation_fn():
  data = ground_truth.FactorGrid((2, 3), observation_fn=lambda f: np.ones((len(f), 4, 4)) * f[:, :1, None])
  observations = data.sample_observations_from_factors(np.array([[1, 0], [0, 2]]), None)
  assert observations.shape == (2, 4, 4)
  np.testing.assert_array_equal(observations[:, 0, 0], [1, 0])


def test_factor_grid_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"Expected .* Received: factor_sizes=\(3, 0\)"):
    ground_truth.FactorGrid((3, 0))
  with pytest.raises(ValueError, match="Received: factor_names"):
    ground_truth.FactorGrid((3, 4), factor_names=("a",))
  with pytest.raises(ValueError, match="Received: latent_factor_indices"):
    ground_truth.FactorGrid((3, 4), latent_factor_indices=[2])


def test_varied_factor_indices_ignores_size_one_factors_even_when_listed():
  data = ground_truth.FactorGrid((1, 3, 1, 6), latent_factor_indices=[0, 1, 2, 3])
  np.testing.assert_array_equal(ground_truth.varied_factor_indices(data), [1, 3])
  with pytest.raises(ValueError, match="at least two latent factors"):
    ground_truth.varied_factor_indices(ground_truth.FactorGrid((1, 5)))
  with pytest.raises(TypeError, match="Received: ground_truth_data=object without factor_sizes"):
    ground_truth.varied_factor_indices(object())


def test_as_random_state():
  random_state = np.random.RandomState(3)
  assert ground_truth.as_random_state(random_state) is random_state
  assert ground_truth.as_random_state(7).randint(1000) == np.random.RandomState(7).randint(1000)
  with pytest.raises(TypeError, match=r"Received: random_state=0.5"):
    ground_truth.as_random_state(0.5)


def test_represent_batches_calls_and_checks_outputs():
  batch_sizes = []
  def code(x):
    batch_sizes.append(len(x))
    return 2.0 * x
  observations = np.arange(10.0).reshape(5, 2)
  np.testing.assert_array_equal(ground_truth.represent(code, observations, batch_size=2),
                                2.0 * observations)
  assert batch_sizes == [2, 2, 1]
  with pytest.raises(ValueError, match=r"Expected .*\[2, D\].* Received: shape=\(2, 2, 1\)"):
    ground_truth.represent(lambda x: x[..., None], observations, batch_size=2)
  with pytest.raises(ValueError, match="Expected finite representations"):
    ground_truth.represent(lambda x: x * np.nan, observations, batch_size=2)


def test_sample_codes_and_factors_returns_varied_factors_and_their_codes():
  data = codes.make_data()
  observed_batches = []
  def code(x):
    observed_batches.append(len(x))
    return codes.factor_code(x)
  sampled_codes, factors = ground_truth.sample_codes_and_factors(data, code, 1000, 0,
                                                                 batch_size=300)
  assert max(observed_batches) <= 300 and sum(observed_batches) == 1000
  assert factors.shape == (1000, 5)
  # The same seed draws the same factors; their codes are the scaled factors.
  all_factors = data.sample_factors(1000, np.random.RandomState(0))
  np.testing.assert_array_equal(factors, all_factors[:, 1:])
  np.testing.assert_allclose(sampled_codes,
                             codes.factor_code(data.scaled_factors(all_factors)), rtol=1e-6)


def test_encoded_grid_encodes_each_combination_once():
  data = codes.make_data()
  seen = []
  def code(observations):
    seen.extend(map(tuple, observations))
    return codes.rotated_code(observations)
  grid = ground_truth.EncodedGrid(data, code, batch_size=100)
  assert (grid.factor_sizes, grid.factor_names) == (codes.FACTOR_SIZES, codes.FACTOR_NAMES)
  assert grid.latent_factor_indices == [1, 2, 3, 4, 5]
  random_state = np.random.RandomState(0)
  factors = grid.sample_factors(30000, random_state)  # [30000, 6] of 11,520 combinations
  np.testing.assert_array_equal(factors, data.sample_factors(30000, np.random.RandomState(0)))
  indices = grid.sample_observations_from_factors(factors, random_state)  # [30000]
  np.testing.assert_array_equal(indices, np.ravel_multi_index(tuple(factors.T), codes.FACTOR_SIZES))
  expected = codes.rotated_code(data.sample_observations_from_factors(factors, None))
  for start in range(0, 30000, 7000):  # in pieces, as the metrics call it
    np.testing.assert_array_equal(grid.represent(indices[start:start + 7000]),
                                  expected[start:start + 7000])
  distinct = len(np.unique(indices))
  assert 10000 < distinct < 30000  # most combinations drawn, many twice
  assert grid.num_encoded == len(seen) == len(set(seen)) == distinct
  np.testing.assert_array_equal(grid.represent(indices), expected)  # all looked up
  assert len(seen) == distinct


def test_scores_through_an_encoded_grid_are_the_direct_scores():
  from kerasvae import metrics  # pylint: disable=import-outside-toplevel
  data = codes.make_data()
  grid = ground_truth.EncodedGrid(data, codes.rotated_code)
  for compute, kwargs in ((metrics.compute_beta_vae_score, {"num_train": 300, "num_eval": 200}),
                          (metrics.compute_factor_vae_score,
                           {"num_train": 300, "num_eval": 200, "num_variance_estimate": 2000}),
                          (metrics.compute_mig, {"num_train": 3000})):
    direct = compute(data, codes.rotated_code, 5, **kwargs)
    assert compute(grid, grid.represent, 5, **kwargs) == direct
  assert 11000 < grid.num_encoded <= np.prod(codes.FACTOR_SIZES)  # of 101,000 codes drawn


def test_classifier_scores_through_an_encoded_grid_are_the_direct_scores():
  from kerasvae import metrics  # pylint: disable=import-outside-toplevel
  from tests.metrics import small_codes  # pylint: disable=import-outside-toplevel
  data = small_codes.make_data()  # fewer classes than `codes`: DCI fits a tree per class
  grid = ground_truth.EncodedGrid(data, small_codes.rotated_code)
  for compute in (metrics.compute_dci, metrics.compute_sap):
    direct = compute(data, small_codes.rotated_code, 5, num_train=200, num_eval=100)
    assert compute(grid, grid.represent, 5, num_train=200, num_eval=100) == direct
  assert grid.num_encoded == np.prod(small_codes.FACTOR_SIZES)  # all 24 of 600 codes drawn


def test_encoded_grid_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"at most 134,217,728 factor combinations. "
                                       r"Received: factor_sizes=\(1, 3, 100000, 1000\)"):
    ground_truth.EncodedGrid(ground_truth.FactorGrid((1, 3, 100000, 1000)), codes.factor_code)
  with pytest.raises(ValueError, match="Received: batch_size=0"):
    ground_truth.EncodedGrid(codes.make_data(), codes.factor_code, batch_size=0)
  grid = ground_truth.EncodedGrid(codes.make_data(), codes.factor_code)
  with pytest.raises(ValueError, match=r"Expected factors of shape \[num, 6\]. Received: "
                                       r"factors.shape=\(2, 5\)"):
    grid.sample_observations_from_factors(np.zeros((2, 5), np.int64), None)
