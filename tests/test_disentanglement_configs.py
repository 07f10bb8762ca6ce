"""The bundled disentanglement study configs: reference metric sizes, and the
disentanglement_lib-faithful configuration end to end in its quick mode."""

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
