"""Every `seed=` of the models takes an integer the way `sample(n, seed=7)` does."""

import numpy as np
import pytest
import tensorflow as tf

import kerasvae


@pytest.fixture(scope="module")
def vae():
  return kerasvae.VAE(input_shape=(6, 6, 1), latent_dim=3, hidden_units=(16,),
                      prior={"name": "vamp", "num_components": 4})


@pytest.fixture(scope="module")
def images():
  return (np.random.default_rng(0).uniform(size=(4, 6, 6, 1)) > 0.5).astype("float32")


def test_elbo_takes_an_integer_seed_like_sample(vae, images):
  first, again, other = (vae.elbo(images, seed=s) for s in (1, 1, 2))
  as_tensor = vae.elbo(images, seed=tf.constant([1, 0], tf.int32))
  for key in ("elbo", "reconstruction", "kl"):
    np.testing.assert_array_equal(first[key], again[key])
    np.testing.assert_array_equal(first[key], as_tensor[key])
  assert not np.allclose(first["kl"], other["kl"])  # the KL is a one-sample estimate here
  np.testing.assert_array_equal(vae.sample(3, seed=np.int64(5)), vae.sample(3, seed=5))


def test_iwae_takes_a_seed_and_is_reproducible_with_it(vae, images):
  first = vae.iwae_log_likelihood(images, num_samples=30, chunk_size=7, seed=3).numpy()
  again = vae.iwae_log_likelihood(images, num_samples=30, chunk_size=7, seed=3).numpy()
  other = vae.iwae_log_likelihood(images, num_samples=30, chunk_size=7, seed=4).numpy()
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, other)
  unseeded = vae.iwae_log_likelihood(images, num_samples=30, chunk_size=7).numpy()
  np.testing.assert_allclose(unseeded, first, atol=5.0)  # the same bound, other noise


@pytest.mark.parametrize("seed", [1.5, "7", [1, 2, 3], True])
def test_a_seed_that_is_not_an_integer_is_rejected_by_name(vae, images, seed):
  with pytest.raises(ValueError, match=r"Expected seed to be an integer.*Received: seed="):
    vae.elbo(images, seed=seed)


def test_iwae_metrics_with_a_seed_are_reproducible(vae, images):
  from kerasvae.metrics import likelihood  # pylint: disable=import-outside-toplevel
  first, again, other = (likelihood.iwae_metrics(vae, images, num_samples=20, batch_size=3,
                                                 seed=s) for s in (0, 0, 1))
  assert first == again and first["iwae_examples"] == 4
  assert first["iwae_log_likelihood"] != other["iwae_log_likelihood"]
