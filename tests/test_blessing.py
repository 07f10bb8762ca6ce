"""Blessing thresholds: every bundled config has ones that fit its model kinds; an autoencoder
passes on reconstruction, a collapsed VAE is refused."""

from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from kerasvae import cli
from kerasvae import config as config_lib
from kerasvae import kinds
from kerasvae.config import ConfigError
from kerasvae.steps import configs
from kerasvae.steps import evaluate
from kerasvae.steps import train as train_step
from kerasvae.studies import core
from tests.pipeline_helpers import tiny_config

# What an autoencoder can never be judged on (no posterior: no ELBO, KL or IWAE bound).
AUTOENCODER_LACKS = kinds.get("autoencoder").model_class().not_applicable_metrics
PIPELINE_CONFIGS = sorted(configs.CONFIG_DIR.glob("*.yaml"))
STUDY_CONFIGS = sorted(core.STUDY_CONFIG_DIR.glob("*.yaml"))


def _trial_configs(path):
  if path.parent.name == "studies":
    _, _, _, trials = core.load_study_config(path, overrides=(), quick=False,
                                             output=Path("/nonexistent"))
    return [trial.config for trial in trials]
  return [configs.load_pipeline_config(path)]


@pytest.mark.parametrize("path", PIPELINE_CONFIGS + STUDY_CONFIGS, ids=lambda p: p.stem)
def test_every_bundled_config_has_thresholds_that_fit_its_model_kinds(path):
  for config in _trial_configs(path):
    thresholds = config.evaluate.thresholds
    assert thresholds.get("active_units", {}).get("lower_bound", 0) >= 1, path
    assert "upper_bound" in thresholds.get("reconstruction", {}), path  # what an AE is judged on
    if config.model.kind == "vae":
      assert "lower_bound" in thresholds.get("elbo", {}), path
    # A collapsed model: no active unit, the mean image for every input (calibrated dSprites -560,
    # MNIST -212 nats): refused whatever its kind.
    collapsed = {"active_units": 0, "elbo": -212.0, "kl": 0.0, "reconstruction": 212.0}
    not_applicable = kinds.get(config.model.kind).model_class().not_applicable_metrics
    assert not evaluate.check_thresholds(collapsed, thresholds, not_applicable)["blessed"]


def test_thresholds_on_what_the_model_kind_lacks_are_skipped_and_nothing_else():
  thresholds = {"elbo": {"lower_bound": -150.0}, "reconstruction": {"upper_bound": 150.0}}
  autoencoder = evaluate.check_thresholds({"reconstruction": 90.0}, thresholds,
                                          AUTOENCODER_LACKS)
  assert autoencoder["blessed"]
  assert [c["metric"] for c in autoencoder["checks"] if "skipped" in c] == ["elbo"]
  # The same metrics from a VAE (nothing is "not applicable"): the missing ELBO fails.
  assert not evaluate.check_thresholds({"reconstruction": 90.0}, thresholds)["blessed"]
  # A misspelt metric is never skipped.
  assert not evaluate.check_thresholds({"reconstruction": 90.0}, {"reconstruction_": {
      "upper_bound": 1e9}}, AUTOENCODER_LACKS)["blessed"]


def test_per_factor_disentanglement_scores_may_be_thresholds():
  config = config_lib.from_dict(configs.EvaluateConfig, {"thresholds": {
      "mig/shape": {"lower_bound": 0.1}, "dci_informativeness/pos_x": {"lower_bound": 0.5}}})
  metrics = {"mig/shape": 0.3, "dci_informativeness/pos_x": 0.4}
  checks = evaluate.check_thresholds(metrics, config.thresholds)["checks"]
  assert [(c["metric"], c["passed"]) for c in checks] == [("dci_informativeness/pos_x", False),
                                                          ("mig/shape", True)]
  for name in ("beta_vae_score/shape", "mig/", "mig_shape"):
    with pytest.raises(ConfigError, match=f"thresholds.{name}: not a metric the evaluate step "
                       r"writes\. .* or <metric>/<factor name> for mig, dci_completeness"):
      config_lib.from_dict(configs.EvaluateConfig, {"thresholds": {name: {"lower_bound": 0}}})


QUICKSTART_THRESHOLDS = yaml.safe_load(
    (configs.CONFIG_DIR / "quickstart.yaml").read_text())["evaluate"]["thresholds"]


def _run(tmp_path, model):
  config = tiny_config(tmp_path, model={"latent_dim": 4, "hidden_units": [64], **model},
                       train={"epochs": 60, "batch_size": 32, "learning_rate": 0.003,
                              "progress": False, "images_every_epochs": 60,
                              "eval_every_epochs": 60},
                       evaluate={"thresholds": QUICKSTART_THRESHOLDS, "iwae_samples": 0,
                                 "disentanglement": False})
  return cli.main(["run", "--config", str(config)])


def test_an_autoencoder_passes_the_quickstart_thresholds_and_is_exported(tmp_path, capsys):
  assert _run(tmp_path, {"kind": "autoencoder"}) == 0
  out = capsys.readouterr().out
  assert "blessed: True (not applicable to this model: elbo)" in out
  assert (tmp_path / "saved_models" / "tiny" / "1" / "saved_model.pb").is_file()


def test_a_collapsed_vae_is_refused_by_the_quickstart_thresholds(tmp_path, capsys):
  # β = 1000 drives every posterior onto the prior: no active unit, the mean image decoded.
  assert _run(tmp_path, {"kind": "vae", "vae": {"kl_weight": 1000.0}}) == 2
  err = capsys.readouterr().err
  assert "not blessed" in err and "active_units=0 (expected >= 1)" in err
  assert not (tmp_path / "saved_models" / "tiny").exists()


def test_traversals_show_the_latents_with_the_most_kl_first():
  dims, annotations = evaluate.informative_dims(
      {"kl_per_dim": [0.0, 3.5, 0.01, 7.25, 0.0, 1.0], "activity": [1] * 6}, 6, limit=3)
  assert dims == [3, 1, 5] and annotations == ["KL 7.25", "KL 3.50", "KL 1.00"]
  dims, annotations = evaluate.informative_dims({"activity": [0.5, 2.0, 0.1]}, 3)
  assert dims == [1, 0, 2] and annotations[0] == "var 2.00"  # an autoencoder: code variance
  assert evaluate.informative_dims({}, 12) == (list(range(10)), None)


class _FixedCodes:
  """A stand-in autoencoder whose codes vary across the batch along latents 2 (most) and 7."""
  latent_dim = 12
  has_posterior = False

  def encode_mean(self, x):
    t = tf.range(tf.cast(tf.shape(x)[0], tf.float32))[:, None]  # [N, 1]
    return t * tf.one_hot(2, 12) + 0.5 * t * tf.one_hot(7, 12)  # [N, 12]


class _FixedPosterior(_FixedCodes):
  """A stand-in VAE: latent 11's posterior far from the prior (KL 4.5), latent 5's a little (0.5)."""
  has_posterior = True

  def posterior_params(self, x):
    mean = tf.zeros([tf.shape(x)[0], 1]) + tf.constant([0.0] * 5 + [1.0] + [0.0] * 5 + [3.0])
    return mean, tf.zeros_like(mean)  # [N, 12] each


def test_training_traversals_show_the_most_informative_latents_first():
  images = tf.zeros([8, 4, 4, 1])
  assert train_step.traversal_dims(_FixedPosterior(), images).numpy().tolist() == [
      11, 5, 0, 1, 2, 3, 4, 6, 7, 8]  # then the unused ones, lower index first
  assert train_step.traversal_dims(_FixedCodes(), images, limit=3).numpy().tolist() == [2, 7, 0]


def test_the_summary_line_names_each_failed_check_and_its_bound():
  blessing = evaluate.check_thresholds({"elbo": -281.27, "active_units": 1},
                                       {"elbo": {"lower_bound": -200.0},
                                        "active_units": {"lower_bound": 1, "upper_bound": 50},
                                        "kl": {"upper_bound": 90}})
  assert evaluate.blessing_phrase(blessing) == (
      "blessed: False (failed: elbo -281.3, expected ≥ -200 (evaluate.thresholds); "
      "kl missing, expected ≤ 90 (evaluate.thresholds))")
  blessing = evaluate.check_thresholds({"elbo": -90.0}, {"elbo": {"lower_bound": -200.0}})
  assert evaluate.blessing_phrase(blessing) == "blessed: True"
