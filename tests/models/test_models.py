"""The models: bounds on a linear-Gaussian model, β and warm-up, round trips, bad arguments."""

import gzip
import math

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import kerasvae
from kerasvae.models import networks

PRIOR_SPECS = ["gaussian", {"name": "gmm", "num_components": 3},
               {"name": "vamp", "num_components": 4}]


def _images(n=16, shape=(28, 28, 1), seed=0):
  rng = np.random.default_rng(seed)
  return (rng.uniform(size=(n,) + shape) > 0.7).astype("float32")


def _linear_gaussian_vae(sigma=0.5, posterior_variance_factor=4.0):
  """A VAE whose decoder is x = W z + b + N(0, sigma^2) and whose encoder is the posterior mean.

  With W having orthogonal columns the true posterior covariance is diagonal,
  Sigma = (I + W^T W / sigma^2)^-1; the encoder uses `posterior_variance_factor`
  times it, so the ELBO is strictly below log p(x) = log N(x; b, W W^T + sigma^2 I).
  """
  pixels, d = 6, 2
  vae = kerasvae.VAE((pixels, 1, 1), d, hidden_units=(),
                     likelihood={"name": "gaussian", "scale": sigma, "mean_activation": "identity"})
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(pixels, d)))
  w = q * np.array([1.5, 0.8])  # [P, D], orthogonal columns
  b = rng.normal(size=pixels) * 0.3
  sigma_post = np.linalg.inv(np.eye(d) + w.T @ w / sigma**2)  # diagonal
  gain = w @ sigma_post / sigma**2  # [P, D]: mean = (x - b) @ gain
  log_var = np.log(np.diag(sigma_post) * posterior_variance_factor)
  enc_kernel = np.concatenate([gain, np.zeros((pixels, d))], axis=1)
  enc_bias = np.concatenate([-b @ gain, log_var])
  vae.encoder.layers[-1].set_weights([enc_kernel.astype("float32"), enc_bias.astype("float32")])
  vae.decoder.layers[0].set_weights([w.T.astype("float32"), b.astype("float32")])
  x = rng.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(pixels), size=5)
  log_px = scipy.stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(pixels)).logpdf(x)
  return vae, x.reshape(5, pixels, 1, 1).astype("float32"), log_px


def test_elbo_is_below_exact_log_likelihood_and_iwae_approaches_it():
  vae, x, log_px = _linear_gaussian_vae()
  tf.random.set_seed(0)
  elbo = np.mean([vae.elbo(x)["elbo"].numpy() for _ in range(400)], axis=0)
  gaps = []
  for k in (1, 10, 100, 2000):
    # 200 independent estimates per example (200 seeds: the draws of one seed are shared by
    # every image) average away the estimator's noise.
    estimate = np.stack([vae.iwae_log_likelihood(x, num_samples=k, chunk_size=500,
                                                 seed=seed).numpy() for seed in range(200)])
    gaps.append(np.mean(log_px - estimate.mean(0)))
  assert np.all(elbo < log_px - 0.05), (elbo, log_px)
  np.testing.assert_allclose(gaps[0], np.mean(log_px - elbo), rtol=0.1)  # K = 1 is the ELBO
  # The bound tightens with K (up to the estimates' noise, about 1e-3 here) towards log p(x).
  assert gaps[0] > gaps[1] > gaps[2] - 0.003, gaps
  assert gaps[1] > 0.01 and abs(gaps[3]) < 0.01, gaps


def test_iwae_is_exact_with_the_true_posterior():
  vae, x, log_px = _linear_gaussian_vae(posterior_variance_factor=1.0)
  np.testing.assert_allclose(vae.iwae_log_likelihood(x, num_samples=7), log_px, atol=1e-3)


def test_iwae_chunking_gives_the_same_bound():
  vae, x, _ = _linear_gaussian_vae(posterior_variance_factor=1.0)
  # With the exact posterior every importance weight equals p(x), whatever the chunks.
  a = vae.iwae_log_likelihood(x, num_samples=50, chunk_size=7).numpy()
  b = vae.iwae_log_likelihood(x, num_samples=50, chunk_size=50).numpy()
  np.testing.assert_allclose(a, b, atol=1e-4)


def test_iwae_with_a_seed_is_repeatable():
  vae, x, _ = _linear_gaussian_vae()
  a = vae.iwae_log_likelihood(x, num_samples=20, chunk_size=7, seed=3).numpy()
  np.testing.assert_array_equal(a, vae.iwae_log_likelihood(x, num_samples=20, chunk_size=7,
                                                           seed=3).numpy())
  assert not np.allclose(a, vae.iwae_log_likelihood(x, num_samples=20, chunk_size=7,
                                                    seed=4).numpy())
  assert not np.allclose(vae.iwae_log_likelihood(x, num_samples=20).numpy(),
                         vae.iwae_log_likelihood(x, num_samples=20).numpy())


def test_kl_weight_scales_exactly_the_kl_part():
  x = _images(8)
  plain = kerasvae.VAE((28, 28, 1), 4, kl_weight=1.0)
  beta = kerasvae.VAE((28, 28, 1), 4, kl_weight=4.0)
  beta.set_weights(plain.get_weights())
  tf.random.set_seed(3)
  t1 = plain.loss_terms(x, training=True)
  tf.random.set_seed(3)
  t4 = beta.loss_terms(x, training=True)
  np.testing.assert_allclose(t1["reconstruction"], t4["reconstruction"], rtol=1e-6)
  np.testing.assert_allclose(t1["kl"], t4["kl"], rtol=1e-6)
  np.testing.assert_allclose(t4["loss"] - t1["loss"], 3.0 * t1["kl"], rtol=1e-4)
  np.testing.assert_allclose(t4["elbo"], t1["elbo"], rtol=1e-6)  # the ELBO is always β = 1


def test_kl_warmup_schedule():
  vae = kerasvae.VAE((28, 28, 1), 2, kl_weight=4.0, kl_warmup_steps=100)
  weights = [float(vae.kl_weight_at(s)) for s in (0, 25, 50, 100, 1000)]
  np.testing.assert_allclose(weights, [0.0, 1.0, 2.0, 4.0, 4.0])
  assert float(kerasvae.VAE((28, 28, 1), 2, kl_weight=4.0).kl_weight_at(0)) == 4.0


@pytest.mark.parametrize("noise_scale,per_coordinate",
                         [("total", 0.05 / 4), ("per_dimension", 0.05)])
def test_noisy_autoencoder_adds_noise_of_the_stated_variance(noise_scale, per_coordinate):
  ae = kerasvae.NoisyAutoencoder((28, 28, 1), 4, noise_factor=0.05, noise_scale=noise_scale)
  rng = np.random.default_rng(0)
  # Codes away from the origin and of unequal scales: R is their mean squared norm, not a variance.
  code = rng.normal(size=(40000, 4)) * [1.0, 2.0, 3.0, 0.5] + [1.0, 0.0, -2.0, 0.0]
  radius_sq = np.mean(np.sum(code ** 2, -1))  # R, in float64
  code = tf.constant(code, tf.float32)
  noise = (ae.code_for_decoder(code, training=True) - code).numpy().astype(np.float64)
  np.testing.assert_allclose(noise.mean(0), 0.0, atol=0.02 * np.sqrt(radius_sq))
  # Every coordinate gets the same variance; their sum is 0.05·R ("total") or 4 x 0.05·R.
  np.testing.assert_allclose(noise.var(0), per_coordinate * radius_sq, rtol=0.04)
  np.testing.assert_allclose(noise.var(0).sum(), 4 * per_coordinate * radius_sq, rtol=0.02)
  np.testing.assert_array_equal(ae.code_for_decoder(code, training=False), code)


def test_noisy_autoencoder_default_reading_and_config():
  ae = kerasvae.NoisyAutoencoder((28, 28, 1), 10)
  assert (ae.noise_factor, ae.noise_scale) == (0.05, "total")
  ae = kerasvae.NoisyAutoencoder((28, 28, 1), 10, noise_factor=0.2, noise_scale="per_dimension")
  rebuilt = kerasvae.NoisyAutoencoder.from_config(ae.get_config())
  assert (rebuilt.noise_factor, rebuilt.noise_scale) == (0.2, "per_dimension")
  assert rebuilt.get_config() == ae.get_config()


def test_autoencoder_samplers_fit_the_codes():
  ae = kerasvae.Autoencoder((28, 28, 1), 2)
  codes = np.random.default_rng(0).normal([3.0, -1.0], [0.5, 2.0], size=(5000, 2))
  ae.fit_latent_sampler(codes, method="gaussian")
  z = ae.sample_latents(20000, seed=tf.constant([1, 2])).numpy()
  np.testing.assert_allclose(z.mean(0), [3.0, -1.0], atol=0.05)
  np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.05)
  ae.fit_latent_sampler(codes, method="uniform_box")
  z = ae.sample_latents(20000, seed=tf.constant([1, 2])).numpy()
  np.testing.assert_allclose(z.min(0), codes.min(0), atol=0.01)
  np.testing.assert_allclose(z.max(0), codes.max(0), atol=0.01)


def _model_cases():
  for prior in PRIOR_SPECS:
    yield "vae", dict(prior=prior)
  yield "vae", dict(likelihood={"name": "gaussian", "learn_scale": True}, architecture="conv",
                    filters=(8, 16), dense_units=32)
  yield "vae", dict(likelihood="continuous_bernoulli")
  yield "autoencoder", dict(reconstruction_loss="mse", latent_sampler="uniform_box")
  yield "noisy_autoencoder", dict(architecture="conv", filters=(8, 16), dense_units=32)


@pytest.mark.parametrize("kind,kwargs", list(_model_cases()))
def test_save_load_round_trip_gives_identical_outputs(tmp_path, kind, kwargs):
  model = kerasvae.MODELS[kind]((28, 28, 1), 3, **kwargs)
  x = _images(4)
  model.compile(optimizer="adam")
  model.fit(x, epochs=1, batch_size=4, verbose=0)
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert type(loaded) is type(model)
  assert loaded.get_config() == model.get_config()
  np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
  np.testing.assert_array_equal(loaded.sample(5, seed=7), model.sample(5, seed=7))
  if kind == "vae":
    seed = tf.constant([5, 6])
    for key in ("elbo", "kl", "reconstruction"):
      np.testing.assert_allclose(loaded.elbo(x, seed=seed)[key], model.elbo(x, seed=seed)[key],
                                 rtol=1e-6)
  rebuilt = type(model).from_config(model.get_config())
  rebuilt.set_weights(model.get_weights())
  np.testing.assert_array_equal(rebuilt.reconstruct(x), model.reconstruct(x))


def test_priors_round_trip_through_keras_serialization():
  for spec in PRIOR_SPECS:
    vae = kerasvae.VAE((28, 28, 1), 3, prior=spec)
    config = keras.saving.serialize_keras_object(vae.prior)
    prior = keras.saving.deserialize_keras_object(config)
    assert prior.get_config() == vae.prior.get_config()
    prior.set_weights(vae.prior.get_weights())
    z = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(prior.log_prob(z, vae.posterior_params),
                               vae.prior.log_prob(z, vae.posterior_params), rtol=1e-6)


def test_same_seed_same_samples_other_seed_other_samples():
  vae = kerasvae.VAE((28, 28, 1), 3, prior={"name": "gmm", "num_components": 3})
  np.testing.assert_array_equal(vae.sample(4, seed=1), vae.sample(4, seed=1))
  assert np.abs(vae.sample(4, seed=1) - vae.sample(4, seed=2)).max() > 1e-3


def test_vamp_pseudo_inputs_initialise_from_data():
  vae = kerasvae.VAE((28, 28, 1), 3, prior={"name": "vamp", "num_components": 4})
  x = _images(10)
  vae.prior.initialize_from_data(x, seed=0)
  chosen = vae.prior.pseudo_inputs.numpy()
  assert all(any(np.array_equal(c, xi) for xi in x) for c in chosen)
  with pytest.raises(ValueError, match="num_components=4"):
    vae.prior.initialize_from_data(x[:3])


@pytest.mark.parametrize("kwargs,message", [
    (dict(kl_weight=-1.0), "kl_weight"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(prior={"name": "gmm", "num_components": 0}), "num_components"),
    (dict(prior={"name": "vamp", "num_components": 0}), "num_components"),
    (dict(prior="laplace"), "prior"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(architecture="conv", filters=(8, 8, 8)), "input_shape"),
    (dict(input_shape=(28, 28)), "input_shape"),
    (dict(architecture="transformer"), "architecture"),
    (dict(kl_warmup_steps=-5), "kl_warmup_steps"),
    (dict(likelihood={"name": "gaussian", "scale": 0.0}), "scale"),
])
def test_bad_arguments_raise_at_construction_naming_the_argument(kwargs, message):
  args = dict(input_shape=(28, 28, 1), latent_dim=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    kerasvae.VAE(**args)


def test_autoencoder_bad_arguments():
  with pytest.raises(ValueError, match="reconstruction_loss"):
    kerasvae.Autoencoder((28, 28, 1), 2, reconstruction_loss="l1")
  with pytest.raises(ValueError, match="noise_factor"):
    kerasvae.NoisyAutoencoder((28, 28, 1), 2, noise_factor=-0.1)
  with pytest.raises(ValueError, match=r"Expected noise_scale to be one of \['total', "
                     r"'per_dimension'\]. Received: noise_scale='per_dim'"):
    kerasvae.NoisyAutoencoder((28, 28, 1), 2, noise_scale="per_dim")


@pytest.mark.parametrize("shape,architecture,filters", [
    ((28, 28, 1), "mlp", (32, 64)), ((28, 28, 1), "conv", (32, 64)),
    ((64, 64, 1), "conv", (32, 32, 64, 64)), ((64, 64, 3), "conv", (32, 32, 64, 64)),
    ((64, 64, 3), "mlp", (32,)),
])
def test_networks_take_the_image_shapes(shape, architecture, filters):
  enc = networks.make_encoder(architecture, shape, 10, filters=filters)
  dec = networks.make_decoder(architecture, shape, 5, filters=filters)
  assert enc(np.zeros((2,) + shape, "float32")).shape == (2, 10)
  assert dec(np.zeros((2, 5), "float32")).shape == (2,) + shape


def _read_mnist(mnist_dir, n):
  with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
    data = np.frombuffer(f.read(), np.uint8, offset=16)
  return (data.reshape(-1, 28, 28, 1)[:n] / 255.0).astype("float32")


@pytest.mark.parametrize("kind,kwargs", [
    ("vae", dict(prior="gaussian")), ("vae", dict(prior={"name": "gmm", "num_components": 5})),
    ("vae", dict(prior={"name": "vamp", "num_components": 20})),
    ("autoencoder", {}), ("noisy_autoencoder", {}),
])
def test_short_training_on_mnist_lowers_the_loss(mnist_dir, kind, kwargs):
  x = _read_mnist(mnist_dir, 2000)
  keras.utils.set_random_seed(0)
  model = kerasvae.MODELS[kind]((28, 28, 1), 8, hidden_units=(128,), **kwargs)
  before = float(tf.reduce_mean(model.loss_terms(x[:500])["loss"]))
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(x, epochs=2, batch_size=100, verbose=0)
  after = float(tf.reduce_mean(model.loss_terms(x[:500])["loss"]))
  assert after < 0.6 * before, (before, after)
  if kind == "vae":
    assert after < 260.0  # nats per digit, from the ~544 of an untrained decoder


def test_training_on_generated_data_lowers_the_loss():
  # Runs on a clone without ../shared: bars of random positions.
  rng = np.random.default_rng(0)
  x = np.zeros((512, 28, 28, 1), "float32")
  for i, col in enumerate(rng.integers(2, 26, size=512)):
    x[i, :, col - 2:col + 2] = 1.0
  keras.utils.set_random_seed(0)
  model = kerasvae.VAE((28, 28, 1), 4, hidden_units=(64,))
  before = float(tf.reduce_mean(model.loss_terms(x)["loss"]))
  model.compile(optimizer=keras.optimizers.Adam(2e-3))
  model.fit(x, epochs=15, batch_size=64, verbose=0)
  after = float(tf.reduce_mean(model.loss_terms(x)["loss"]))
  assert after < 0.3 * before, (before, after)


def test_top_level_exports_have_docstrings():
  for name in ("VAE", "Autoencoder", "NoisyAutoencoder", "StandardGaussianPrior",
               "GaussianMixturePrior", "VampPrior", "BernoulliLikelihood"):
    obj = getattr(kerasvae, name)
    assert obj.__doc__ and len(obj.__doc__) > 40, name
