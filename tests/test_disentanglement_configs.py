"""The bundled disentanglement study configs: reference metric sizes, and the
disentanglement_lib-faithful configuration end to end in its quick mode."""

import json

import pytest

from kerasvae.studies import core

DISENTANGLEMENT_CONFIGS = sorted(core.STUDY_CONFIG_DIR.glob("disentanglement*.yaml"))


@pytest.mark.parametrize("path", DISENTANGLEMENT_CONFIGS, ids=lambda p: p.stem)
def test_full_studies_score_at_the_reference_sizes(path, tmp_path):
  # disentanglement_lib's unsupervised study: β-VAE and FactorVAE scores on 10,000 training and
  # 5,000 evaluation points, MIG on 10,000 codes (our MIG uses the training-point count).
  for trial in core.load_study_config(path, output=tmp_path)[3]:
    evaluate = trial.config.evaluate
    assert (evaluate.disentanglement_train_points, evaluate.disentanglement_eval_points) == (
        10000, 5000), trial.name
  for trial in core.load_study_config(path, quick=True, output=tmp_path)[3]:
    assert trial.config.evaluate.disentanglement_train_points <= 100  # quick modes stay small


def test_faithful_config_is_disentanglement_libs_and_its_quick_mode_runs(tmp_path):
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  path = core.resolve_study_config_path("disentanglement", "disentanglement-faithful")
  full = core.load_study_config(path, output=tmp_path)[3]
  assert [t.name for t in full] == [f"β={b} seed {s}" for b in (1, 4) for s in (0, 1, 2)]
  for trial in full:
    model, train = trial.config.model, trial.config.train
    assert (model.architecture, list(model.filters), model.dense_units, model.latent_dim,
            model.vae.likelihood) == ("conv", [32, 32, 64, 64], 256, 10, "bernoulli")
    assert (train.learning_rate, train.batch_size, train.epochs * train.steps_per_epoch) == (
        1e-4, 64, 300000)
    assert trial.config.ingest.data.dsprites.num_examples is None  # the full grid
  assert [t.config.model.vae.kl_weight for t in full] == [1.0] * 3 + [4.0] * 3
  # The quick mode trains the same network for a few steps and scores it.
  output = tmp_path / "faithful"
  report = studies.run_study("disentanglement", config="disentanglement-faithful", quick=True,
                             output=output)
  results = json.loads((output / "results.json").read_text())
  assert [t["name"] for t in results["trials"]] == ["β=1", "β=4"]
  for trial in results["trials"]:
    assert trial["steps_per_epoch"] == 3 and trial["epochs_run"] == 1
    assert {"beta_vae_score", "factor_vae_score", "mig"} <= set(trial["metrics"])
  assert "β = 4" in report.read_text()
