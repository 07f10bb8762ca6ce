"""The pipeline end to end: CLI, configs, artifacts, reuse, TensorBoard, blessing, export."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasvae import cli
from kerasvae.config import ConfigError
from kerasvae.steps import common
from kerasvae.steps import configs
from tests.pipeline_helpers import tiny_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """One tiny `kerasvae run`, shared by the tests that read its artifacts."""
  tmp_path = tmp_path_factory.mktemp("run")
  config_path = tiny_config(tmp_path)
  assert cli.main(["run", "--config", str(config_path)]) == 0
  config = configs.load_pipeline_config(config_path)
  return tmp_path, config_path, common.run_directory(config)


def test_run_writes_every_step_artifact(finished_run):
  tmp_path, _, run_dir = finished_run
  for step in ("ingest", "train", "evaluate", "export"):
    meta = json.loads((run_dir / step / "metadata.json").read_text())
    assert meta["step"] == step
    assert {"inputs", "outputs", "config", "versions", "started", "finished"} <= set(meta)
  examples = Path(json.loads((run_dir / "ingest" / "metadata.json").read_text())
                  ["outputs"]["examples"])
  assert (examples / "Split-train").is_dir() and (examples / "schema.pbtxt").is_file()
  assert (run_dir / "train" / "model" / "model.keras").is_file()
  metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
  for key in ("elbo", "reconstruction", "kl", "iwae_log_likelihood", "active_units",
              "kl_per_dim", "beta_vae_score", "factor_vae_score", "mig"):
    assert key in metrics, key
  # The ELBO is reconstruction + KL, and the IWAE bound (K=10) is at least as tight (± noise).
  np.testing.assert_allclose(metrics["elbo"], -(metrics["reconstruction"] + metrics["kl"]),
                             rtol=1e-6)
  assert len(metrics["kl_per_dim"]) == 2
  for png in ("samples", "reconstructions", "traversals", "manifold", "latents"):
    assert (run_dir / "evaluate" / f"{png}.png").stat().st_size > 1000, png
  assert (tmp_path / "saved_models" / "tiny" / "1" / "saved_model.pb").is_file()
  assert "tiny" in (tmp_path / "saved_models" / "models.config").read_text()


def test_second_run_reuses_every_step(finished_run, capsys):
  tmp_path, config_path, run_dir = finished_run
  mtime = (run_dir / "train" / "metadata.json").stat().st_mtime
  assert cli.main(["run", "--config", str(config_path)]) == 0
  out = capsys.readouterr().out
  assert "train: reusing" in out and "evaluate: reusing" in out and "export: reusing" in out
  assert (run_dir / "train" / "metadata.json").stat().st_mtime == mtime
  assert sorted(p.name for p in (tmp_path / "saved_models" / "tiny").iterdir()) == ["1"]


def test_another_config_gets_another_run_directory(finished_run):
  _, config_path, run_dir = finished_run
  other = configs.load_pipeline_config(config_path, ["model.latent_dim=3"])
  assert common.run_directory(other) != run_dir
  same = configs.load_pipeline_config(config_path, ["train.progress=true"])
  assert common.run_directory(same) == run_dir


def _events(log_dir):
  tags = {}
  for path in Path(log_dir).rglob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name
        tags.setdefault(value.tag, set()).add(plugin)
  return tags


def test_tensorboard_events_carry_scalars_images_hparams_and_projector(finished_run):
  _, _, run_dir = finished_run
  logs = run_dir / "train" / "logs"
  train_tags = _events(logs / "train")
  for tag in ("loss", "reconstruction", "kl", "weighted_kl", "elbo", "learning_rate",
              "kl_weight"):
    assert tag in train_tags, tag
  eval_tags = _events(logs / "eval")
  for tag in ("elbo", "reconstruction", "kl", "active_units", "kl_per_dim/z0", "kl_per_dim/z1",
              "reconstructions", "samples", "traversals"):
    assert tag in eval_tags, tag
  assert "images" in eval_tags["samples"]
  root_tags = _events(logs)
  assert any("hparams" in plugins for plugins in root_tags.values())
  assert (logs / "projector" / "projector_config.pbtxt").is_file()
  assert len((logs / "projector" / "metadata.tsv").read_text().splitlines()) == 50
  evaluate_tags = _events(run_dir / "evaluate" / "logs")
  assert "evaluate/mig" in evaluate_tags and "evaluate/samples" in evaluate_tags


def test_unblessed_model_is_not_exported_unless_forced(tmp_path, capsys):
  config_path = tiny_config(tmp_path, evaluate={"thresholds": {"elbo": {"lower_bound": 0.0}},
                                                "disentanglement": False, "iwae_samples": 0},
                            train={"epochs": 1, "batch_size": 64, "progress": False})
  assert cli.main(["run", "--config", str(config_path)]) == 2
  err = capsys.readouterr().err
  assert "not blessed" in err and "elbo=" in err and ">= 0.0" in err
  assert not (tmp_path / "saved_models" / "tiny").exists()
  assert cli.main(["export", "--config", str(config_path), "--force"]) == 0
  assert (tmp_path / "saved_models" / "tiny" / "1").is_dir()


def test_unknown_config_key_is_rejected_with_the_valid_keys(tmp_path, capsys):
  config_path = tiny_config(tmp_path)
  assert cli.main(["train", "--config", str(config_path), "--set", "model.latent_dims=3"]) == 2
  err = capsys.readouterr().err
  assert "config.model: unknown key 'latent_dims'" in err and "latent_dim" in err
  assert "(from --set model.latent_dims=3)" in err and str(config_path) not in err  # blamed on --set


@pytest.mark.parametrize("override,message", [
    ("model.latent_dim=0", "config.model.latent_dim: expected a value in [1, 4096]"),
    ("model.prior=laplace", "config.model.prior: expected one of"),
    ("train.epochs=two", "config.train.epochs: expected an integer"),
    ("evaluate.thresholds={elbo: 3}", "thresholds.elbo"),
    ("ingest.data.source=hdf5", "config.ingest.data.source: expected one of"),
])
def test_bad_config_values_are_rejected_by_name(tmp_path, override, message):
  with pytest.raises(ConfigError) as info:
    configs.load_pipeline_config(tiny_config(tmp_path), [override])
  assert message in str(info.value)


def test_bundled_configs_load():
  names = sorted(p.stem for p in configs.CONFIG_DIR.glob("*.yaml"))
  assert {"quickstart", "mnist_vae", "mnist_priors", "dsprites_beta_vae"} <= set(names)
  for name in names:
    configs.load_pipeline_config(name)
  with pytest.raises(ConfigError, match="bundled config name"):
    configs.resolve_config_path("no_such_config")


def test_step_without_its_input_says_what_to_run(tmp_path, capsys):
  config_path = tiny_config(tmp_path)
  assert cli.main(["evaluate", "--config", str(config_path)]) == 2
  assert "kerasvae ingest" in capsys.readouterr().err
  cli.main(["ingest", "--config", str(config_path)])
  assert cli.main(["evaluate", "--config", str(config_path)]) == 2
  assert "Run `kerasvae train` first" in capsys.readouterr().err


def test_run_lock_refuses_a_second_writer(tmp_path):
  with common.run_lock(tmp_path / "run"):
    (tmp_path / "run" / ".lock").write_text("1")  # pid 1 is alive: another writer
    with pytest.raises(common.StepError, match="Another kerasvae process"):
      with common.run_lock(tmp_path / "run"):
        pass
  (tmp_path / "run" / ".lock").write_text("999999999")  # a dead writer's stale lock
  with common.run_lock(tmp_path / "run"):
    pass
