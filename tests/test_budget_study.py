"""`kerasvae study budget`: one training per seed, continued budget by budget, and its report."""

import json
from pathlib import Path

import numpy as np
import pytest

from kerasvae import studies
from kerasvae.config import ConfigError
from kerasvae.studies import budget
from kerasvae.studies import core


def _history(run_dir):
  return json.loads((Path(run_dir) / "train" / "history.json").read_text())


def test_budget_quick_continues_each_seed_s_training(tmp_path, keep_quick_findings):
  output = tmp_path / "budget"
  path = studies.run_study("budget", quick=True, output=output)
  results = json.loads((output / "results.json").read_text())
  trials = results["trials"]
  assert [t["name"] for t in trials] == ["0.1 M", "0.3 M", "1 M", "3 M"]
  assert [t["epochs_run"] for t in trials] == [3, 9, 29, 88]
  # The longer budgets continued the shorter ones: their histories start with the same epochs
  # (the same losses, not a new training from another initialisation).
  histories = [_history(t["run_dir"]) for t in trials]
  for shorter, longer in zip(histories, histories[1:]):
    assert [r["epoch"] for r in longer] == list(range(1, len(longer) + 1))
    assert longer[:len(shorter)] == shorter
  # Each budget's kept checkpoint is the one the next continued from.
  for t in trials:
    assert (Path(t["run_dir"]) / "train" / "checkpoints").is_dir()
  text = Path(path).read_text()
  assert "encoded from" in text and "stops shrinking" not in text  # one seed: no spread
  names = {p.name for p in (output / "figures").iterdir()}
  assert {"budget_curves.png", "factor_information.png", "reconstructions_by_budget.png",
          "information_seed_0.png"} <= names
  for caption in ("budget_curves", "factor_information", "reconstructions_by_budget"):
    assert f"figures/{caption}.png" in text


def _trials(tmp_path, *sets):
  path = core.STUDY_CONFIG_DIR / "budget.yaml"
  return core.load_study_config(path, overrides=list(sets), quick=True, output=tmp_path)[3]


def test_budget_refuses_settings_a_continued_training_cannot_follow(tmp_path):
  budget.check_budget(_trials(tmp_path))
  for item, words in (("train.lr_schedule=cosine", "lr_schedule=cosine"),
                      ("train.early_stopping_patience=2", "early_stopping_patience=2"),
                      ("train.keep_final_checkpoint=false", "keep_final_checkpoint=false")):
    with pytest.raises(ConfigError, match=words):
      budget.check_budget(_trials(tmp_path, item))
  trials = _trials(tmp_path)
  trials[2].config.train.epochs = 5  # fewer than the 9 before it
  with pytest.raises(ConfigError, match="train.epochs=5 in '1 M' after 9 in '0.3 M'"):
    budget.check_budget(trials)
  trials = _trials(tmp_path)
  trials[1].config.model.latent_dim = 4
  with pytest.raises(ConfigError, match="other model settings between '0.1 M' and '0.3 M'"):
    budget.check_budget(trials)


def test_encoded_from_needs_every_seed_from_that_budget_on():
  budgets = [1, 2, 3, 4]
  share = budget.ENCODED_SHARE
  assert budget.encoded_from(budgets, [[0.0, 0.1], [share, 0.5], [0.4, 0.3], [0.9, 0.8]]) == 2
  # A seed falling back below the threshold later undoes the earlier budget.
  assert budget.encoded_from(budgets, [[0.5, 0.5], [0.5, 0.1], [0.5, 0.5], [0.5, 0.5]]) == 3
  assert budget.encoded_from(budgets, [[0.5, 0.5]] * 3 + [[0.5, 0.1]]) is None


def test_spread_settles_at_the_first_budget_whose_next_spread_is_not_smaller():
  assert budget.spread_settles([1, 2, 3, 4], [0.3, 0.2, 0.2, 0.1]) == 2
  assert budget.spread_settles([1, 2, 3, 4], [0.3, 0.2, 0.1, 0.05]) is None
  assert budget.spread_settles([1, 2], [0.1, np.nan]) == 1


def test_best_shares_divides_the_best_latent_by_the_factor_entropy():
  trial = core.Trial("t", {}, metrics={"mutual_information": [[0.2, 1.0], [0.6, 0.1]],
                                       "factor_entropy": [1.2, 2.0]})
  np.testing.assert_allclose(budget.best_shares(trial), [0.5, 0.5])
  assert budget.best_shares(core.Trial("t", {})) is None
