"""Disk use: one checkpoint kept while training, none once the model is saved, and what a
`--force` replaced (the previous model, the run's previous export) removed."""

import json

from kerasvae import cli
from kerasvae import serving
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import tiny_config
from tests.pipeline_helpers import tiny_trainer


def test_one_checkpoint_is_kept_by_default_and_the_setting_keeps_the_run(tmp_path):
  config = configs.TrainConfig(epochs=3, batch_size=8, progress=False, jit_compile="false",
                               checkpoint_min_seconds=0)
  assert config.keep_checkpoints == 1
  tiny_trainer(tmp_path, config).train()
  assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == ["ckpt-3.index"]
  # Disk use does not change the model: the same run (and its trained model) is found.
  path = tiny_config(tmp_path)
  assert common.run_directory(configs.load_pipeline_config(path, ["train.keep_checkpoints=3"])) \
      == common.run_directory(configs.load_pipeline_config(path))


def _leftovers(root):
  return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name)


def test_a_finished_run_keeps_no_checkpoints_and_force_removes_what_it_replaced(tmp_path,
                                                                               capsys):
  config_path = tiny_config(tmp_path, evaluate={"disentanglement": False, "iwae_samples": 0})
  run_dir = common.run_directory(configs.load_pipeline_config(config_path))
  model_dir = tmp_path / "saved_models" / "tiny"
  assert cli.main(["run", "--config", str(config_path)]) == 0
  train_dir = run_dir / "train"
  assert (train_dir / "model" / "model.keras").is_file()
  assert not (train_dir / "checkpoints").exists() and not (train_dir / "best").exists()
  assert serving.list_versions(model_dir) == [1]
  capsys.readouterr()
  assert cli.main(["run", "--config", str(config_path), "--force"]) == 0
  out = capsys.readouterr().out
  assert f"export: removed {model_dir / '1'}, this run's previous export, which version 2 " \
         "replaces" in out
  assert serving.list_versions(model_dir) == [2]
  # A retrained model (train --force) is exported by the next plain run, replacing version 2.
  assert cli.main(["train", "--config", str(config_path), "--force"]) == 0
  assert not (train_dir / "checkpoints").exists()
  assert cli.main(["run", "--config", str(config_path)]) == 0
  assert serving.list_versions(model_dir) == [3]
  export = json.loads((run_dir / "export" / "metadata.json").read_text())
  assert export["outputs"]["saved_model"] == str((model_dir / "3").resolve())
  assert _leftovers(tmp_path) == []
  assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "evaluate", "export", "ingest",
                                                      "train"]


def test_a_blessed_version_is_kept_when_an_unblessed_model_replaces_it(tmp_path, capsys):
  config_path = tiny_config(tmp_path, evaluate={"disentanglement": False, "iwae_samples": 0})
  model_dir = tmp_path / "saved_models" / "tiny"
  assert cli.main(["run", "--config", str(config_path)]) == 0
  # Same run, a threshold no model meets: evaluated again, not blessed, exported with --force.
  unblessed = ["--set", "evaluate.thresholds={elbo: {lower_bound: 0.0}}"]
  assert cli.main(["evaluate", "--config", str(config_path), *unblessed]) == 0
  capsys.readouterr()
  assert cli.main(["export", "--config", str(config_path), "--force", *unblessed]) == 0
  out = capsys.readouterr().out
  assert f"export: kept {model_dir / '1'}, this run's previous export: it was blessed and " \
         f"{model_dir / '2'} is not" in out
  assert serving.list_versions(model_dir) == [1, 2]
