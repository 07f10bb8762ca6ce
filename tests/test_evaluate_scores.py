"""The evaluate step's disentanglement scores: which it computes, how they reach metrics.json."""

import types

import pytest
import tensorflow as tf

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae.metrics import ground_truth
from kerasvae.steps import configs
from kerasvae.steps import evaluate


class FactorModel:  # a stand-in: the codes are the factors themselves
  def encode_mean(self, x):
    return tf.reshape(tf.cast(x, tf.float32), [-1, 2])


def test_per_factor_lists_become_scalars_named_by_factor():
  config = configs.EvaluateConfig(disentanglement_train_points=40,
                                  disentanglement_eval_points=20)
  data = ground_truth.FactorGrid((3, 4), factor_names=("shape", "scale"))
  out = evaluate.disentanglement_metrics(FactorModel(), data, config, show_progress=False)
  for metric in configs.PER_FACTOR_METRICS:
    assert [out[f"{metric}/{name}"] for name in ("shape", "scale")] == out[f"{metric}_per_factor"]
  # Codes equal to the factors: each factor in one code, predicted from it perfectly.
  assert out["dci_disentanglement"] > 0.99 and out["dci_completeness"] > 0.99
  assert out["dci_informativeness"] == 1.0
  numbers = [k for k, v in out.items() if isinstance(v, (int, float))]
  assert all(configs.is_threshold_metric(k) for k in numbers), numbers


def test_dci_can_be_left_out_and_keeps_the_evaluation_fingerprint():
  config = configs.EvaluateConfig(disentanglement_train_points=20,
                                  disentanglement_eval_points=10, dci=False)
  out = evaluate.disentanglement_metrics(FactorModel(), ground_truth.FactorGrid((3, 4)), config,
                                         show_progress=False)
  assert "sap" in out and "sap/factor_0" in out and "mig/factor_1" in out
  assert not [key for key in out if key.startswith("dci")]
  # The default (DCI on) fingerprints as evaluations from before the switch did.
  train_meta = {"fingerprint": "f", "digests": {}}
  fingerprint = lambda c: evaluate.evaluate_fingerprint(  # noqa: E731
      types.SimpleNamespace(evaluate=c), train_meta)
  assert fingerprint(configs.EvaluateConfig()) != fingerprint(configs.EvaluateConfig(dci=False))
  assert fingerprint(configs.EvaluateConfig()) == artifacts.fingerprint(
      {"evaluate": {k: v for k, v in config_lib.to_dict(configs.EvaluateConfig()).items()
                    if k not in ("change_thresholds", "dci")},
       "train": "f", "model": None})


def test_a_newer_served_model_changes_the_evaluation_fingerprint_whatever_dci_is():
  # With change thresholds the evaluation compares against the served version: a newer one
  # must re-run it, with DCI on (the default) as with DCI off.
  train_meta = {"fingerprint": "f", "digests": {}}
  thresholds = {"elbo": 5.0}
  for dci in (True, False):
    config = types.SimpleNamespace(
        evaluate=configs.EvaluateConfig(dci=dci, change_thresholds=thresholds))
    prints = {evaluate.evaluate_fingerprint(config, train_meta, served)
              for served in (None, ("saved_models/vae/1", 1), ("saved_models/vae/2", 2))}
    assert len(prints) == 3, dci


class NoisyFactorModel:  # the two factors in latents 0 and 2, latent 1 scale-free noise
  def encode_mean(self, x):
    x = tf.reshape(tf.cast(x, tf.float32), [-1, 2])
    noise = tf.math.sin(37.0 * x[:, :1] + 11.0 * x[:, 1:]) * 1e-3  # tiny, but binned like any
    return tf.concat([x[:, :1], noise, x[:, 1:]], axis=1)


def test_scores_on_active_latents_leave_the_inactive_out():
  """Each score also on the active latents alone, under `<score>_active` (issue 36); with every
  latent active the two forms are equal; without any, NaN."""
  config = configs.EvaluateConfig(disentanglement_train_points=40,
                                  disentanglement_eval_points=20, dci=False)
  data = ground_truth.FactorGrid((3, 4), factor_names=("shape", "scale"))
  assert evaluate.active_latents([0.5, 0.0, 2.0], 0.1) == [0, 2]
  assert evaluate.active_key("mig_per_factor") == "mig_active_per_factor"
  assert evaluate.active_key("mig/shape") == "mig_active/shape"
  out = evaluate.disentanglement_metrics(NoisyFactorModel(), data, config, show_progress=False,
                                         active=[0, 2])
  assert len(out["mutual_information"]) == 3 and len(out["mutual_information_active"]) == 2
  # The noise latent, binned, holds information about the factors (the plug-in estimate is
  # scale-free); on the active latents it is gone and each factor has one latent.
  assert max(out["mutual_information"][1]) > 0.1
  assert out["mig_active"] >= out["mig"] and out["mig_active/shape"] == pytest.approx(
      out["mig_active_per_factor"][0])
  for score in ("beta_vae_score", "factor_vae_score", "sap"):
    assert f"{score}_active" in out
  same = evaluate.disentanglement_metrics(FactorModel(), data, config, show_progress=False)
  assert same["mig_active"] == same["mig"] and same["sap_active"] == same["sap"]
  none = evaluate.disentanglement_metrics(FactorModel(), data, config, show_progress=False,
                                          active=[])
  # No active latent: a code that carries nothing, at chance or 0 (two factors: 1/2).
  assert none["mig_active"] == 0.0 and none["beta_vae_score_active"] == 0.5
  assert none["sap_active/shape"] == 0.0 and none["mig_active_per_factor"] == [0.0, 0.0]
  assert all(configs.is_threshold_metric(k) for k, v in out.items()
             if isinstance(v, (int, float)))
