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
