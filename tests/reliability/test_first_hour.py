"""What a new user meets in the first hour (issue 30): settings that apply, progress. (The
warning of a config without thresholds and the strategy line: tests/test_protocol.py.)"""

import numpy as np

from kerasvae import summaries
from kerasvae.steps import configs


def test_hparams_list_only_the_settings_the_model_uses():
  mlp = summaries.flat_hparams(configs.load_pipeline_config(None, [
      "model.architecture=mlp", "model.vae.likelihood=bernoulli", "model.vae.prior=gaussian"]))
  assert "model.hidden_units" in mlp and "model.vae.kl_weight" in mlp
  for name in ("model.filters", "model.dense_units", "model.vae.gaussian_scale",
               "model.vae.learn_scale", "model.vae.num_components",
               "model.noisy_autoencoder.noise_factor",
               "model.noisy_autoencoder.reconstruction_loss",
               "train.lr_decay_rate", "train.lr_decay_epochs"):
    assert name not in mlp, name
  conv_ae = summaries.flat_hparams(configs.load_pipeline_config(None, [
      "model.architecture=conv", "model.kind=noisy_autoencoder", "train.lr_schedule=exponential"]))
  for name in ("model.filters", "model.dense_units", "model.noisy_autoencoder.noise_factor",
               "model.noisy_autoencoder.reconstruction_loss", "train.lr_decay_rate"):
    assert name in conv_ae, name
  for name in ("model.hidden_units", "model.vae.prior", "model.vae.kl_weight",
               "model.vae.likelihood"):
    assert name not in conv_ae, name


def test_iwae_log_likelihood_shows_progress_when_asked(capsys):
  from kerasvae import models  # pylint: disable=import-outside-toplevel
  vae = models.VAE((4, 4, 1), 2, hidden_units=(8,))
  images = np.random.default_rng(0).uniform(size=(3, 4, 4, 1)).astype("float32")
  quiet = vae.iwae_log_likelihood(images, num_samples=20, chunk_size=5, seed=1).numpy()
  assert capsys.readouterr().out == ""
  loud = vae.iwae_log_likelihood(images, num_samples=20, chunk_size=5, seed=1, verbose=1).numpy()
  assert "20/20" in capsys.readouterr().out
  np.testing.assert_array_equal(quiet, loud)
