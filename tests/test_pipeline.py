"""The pipeline end to end: CLI, configs, artifacts, reuse, TensorBoard, blessing, export."""

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasvae import artifacts
from kerasvae import cli
from kerasvae.config import ConfigError
from kerasvae.data import reader
from kerasvae.steps import common
from kerasvae.steps import configs
from kerasvae.steps import train as train_step
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
    assert {"inputs", "outputs", "config", "versions", "machine", "started",
            "finished"} <= set(meta)
    assert meta["machine"]["cpu"] == artifacts.cpu_description()  # the CPU its times ran on
    assert meta["machine"]["cores"] >= meta["machine"]["usable_cores"] >= 1
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own answer
    assert meta["machine"]["onednn"] is bool(_pywrap_util_port.IsMklEnabled())
    assert meta["machine"].get("kernel_switches", {}) == {
        k: os.environ[k] for k in artifacts.KERNEL_SWITCHES if k in os.environ}
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
  # Thresholds may name every number evaluate writes (checked when the config loads).
  numbers = {k for k, v in metrics.items() if isinstance(v, (int, float))}
  assert {"dci_disentanglement", "dci_completeness", "dci_informativeness", "sap",
          "mig/shape", "sap/posY"} <= numbers
  assert all(configs.is_threshold_metric(k) for k in numbers), [
      k for k in numbers if not configs.is_threshold_metric(k)]
  for png in ("samples", "reconstructions", "traversals", "manifold", "latents"):
    assert (run_dir / "evaluate" / f"{png}.png").stat().st_size > 1000, png
  assert (tmp_path / "saved_models" / "tiny" / "1" / "saved_model.pb").is_file()
  assert "tiny" in (tmp_path / "saved_models" / "models.config").read_text()


def test_cpu_description_names_the_isa_onednn_dispatches_on():
  cpuinfo = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\n"
             "model name\t: AMD EPYC 7B12\nstepping\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\n"
             "processor\t: 1\nmodel name\t: ignored\n")
  assert artifacts.cpu_description(cpuinfo) == (
      "AMD EPYC 7B12 (family 23 model 49 stepping 0; avx2 fma; no avx512; no amx)")
  avx512 = cpuinfo.replace("bmi2", "avx512f avx512_bf16 avx512_vnni amx_tile sse4_2")
  assert artifacts.cpu_description(avx512).endswith(
      "(family 23 model 49 stepping 0; amx_tile avx2 avx512_bf16 avx512_vnni avx512f fma)")


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
  validation_tags = _events(logs / "validation")
  for tag in ("elbo", "reconstruction", "kl", "active_units", "kl_per_dim/z0", "kl_per_dim/z1",
              "reconstructions", "samples", "traversals", "evaluate/mig", "evaluate/samples"):
    assert tag in validation_tags, tag
  assert "images" in validation_tags["samples"]
  assert any("hparams" in plugins for plugins in validation_tags.values())
  # Two TensorBoard runs per pipeline run: no events anywhere else.
  assert sorted(p.parent.relative_to(run_dir).as_posix() for p in
                run_dir.rglob("events.out.tfevents.*")) == sorted(
                    ["train/logs/train"] + ["train/logs/validation"] * 3)
  assert (logs / "validation" / "projector_config.pbtxt").is_file()
  assert len((logs / "validation" / "metadata.tsv").read_text().splitlines()) == 51  # + header


def _get(url, body=None):
  request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=30) as response:
    data = response.read()
  return json.loads(data) if response.headers.get_content_type() == "application/json" else data


@pytest.fixture
def tensorboard_server(finished_run):
  """A real TensorBoard, in this process, on the README's `--logdir runs` (the runs folder).

  It reads the logs once, before serving (`--reload_task blocking`): the run is finished, and
  no reload thread is left behind; the server's daemon thread idles until the tests end.
  """
  from tensorboard import program  # pylint: disable=import-outside-toplevel
  _, _, run_dir = finished_run
  board = program.TensorBoard()
  board.configure(argv=[None, "--logdir", str(run_dir.parent), "--host", "127.0.0.1",
                        "--port", "0", "--load_fast", "false", "--reload_task", "blocking",
                        "--reload_interval", "0"])
  return board.launch().rstrip("/"), run_dir


def test_tensorboard_server_shows_scalars_images_hparams_and_projector(tensorboard_server):
  url, run_dir = tensorboard_server
  name = run_dir.name
  train, validation = f"{name}/train/logs/train", f"{name}/train/logs/validation"
  assert _get(f"{url}/data/runs") == sorted([train, validation])  # no other folder is a run
  scalars = _get(f"{url}/data/plugin/scalars/tags")
  assert {"loss", "kl", "learning_rate"} <= set(scalars[train])
  assert {"elbo", "active_units", "evaluate/iwae_log_likelihood", "evaluate/mig"} <= set(
      scalars[validation])
  points = _get(f"{url}/data/plugin/scalars/scalars?run={urllib.parse.quote(validation)}"
                "&tag=evaluate/iwae_log_likelihood")
  metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
  assert [p[1] for p in points] == [2]  # at the last epoch
  np.testing.assert_allclose(points[0][2], metrics["iwae_log_likelihood"], rtol=1e-6)
  images = _get(f"{url}/data/plugin/images/tags")
  assert {"samples", "reconstructions", "traversals", "evaluate/samples",
          "evaluate/latents"} <= set(images[validation])
  # HParams: one session for the run, its config, and the key final metrics only.
  experiment = _get(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
  metric_tags = [m["name"]["tag"] for m in experiment["metricInfos"]]
  assert "evaluate/iwae_log_likelihood" in metric_tags and len(metric_tags) <= 12
  hparams = {h["name"]: h for h in experiment["hparamInfos"]}
  assert hparams["model.vae.prior"]["domainDiscrete"] == ["gaussian", "gmm", "vamp"]
  groups = _get(f"{url}/data/plugin/hparams/session_groups",
                {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"],
                 "startIndex": 0, "sliceSize": 10})
  assert [g["name"] for g in groups["sessionGroups"]] == [name]
  group = groups["sessionGroups"][0]
  assert group["hparams"]["model.latent_dim"] == 2
  values = {v["name"]["tag"]: v["value"] for v in group["metricValues"]}
  assert {"evaluate/iwae_log_likelihood", "evaluate/elbo", "evaluate/mig", "elbo"} <= set(values)
  np.testing.assert_allclose(values["evaluate/mig"], metrics["mig"], rtol=1e-6)
  # The projector: the eval latent means with their labels, in the validation run.
  assert _get(f"{url}/data/plugin/projector/runs") == [validation]
  info = _get(f"{url}/data/plugin/projector/info?run={urllib.parse.quote(validation)}")
  (embedding,) = info["embeddings"]
  assert embedding["tensorShape"] == [50, 2]
  tensor = np.frombuffer(_get(
      f"{url}/data/plugin/projector/tensor?run={urllib.parse.quote(validation)}"
      f"&name={urllib.parse.quote(embedding['tensorName'])}"), np.float32)
  # The served points are the latent means of the first 50 validation images.
  examples = json.loads((run_dir / "ingest" / "metadata.json").read_text())["outputs"]["examples"]
  images = reader.load_split(examples, "validation", limit=50)["image"]
  expected = train_step.load_model(run_dir / "train").encode_mean(tf.constant(images)).numpy()
  np.testing.assert_allclose(tensor.reshape(50, 2), expected, rtol=1e-5, atol=1e-6)
  tsv = _get(f"{url}/data/plugin/projector/metadata?run={urllib.parse.quote(validation)}"
             f"&name={urllib.parse.quote(embedding['tensorName'])}")
  assert len(tsv.decode().splitlines()) == 51
  sprite = _get(f"{url}/data/plugin/projector/sprite_image?run={urllib.parse.quote(validation)}"
                f"&name={urllib.parse.quote(embedding['tensorName'])}")
  assert sprite[:8] == b"\x89PNG\r\n\x1a\n"


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
    ("model.vae.prior=laplace", "config.model.vae.prior: expected one of"),
    ("model.noisy_autoencoder.noise_scale=per_dim",
     "config.model.noisy_autoencoder.noise_scale: expected one of ['total', "
     "'per_dimension']. Received: 'per_dim'"),
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
    with pytest.raises(common.StepError, match=rf"Another kerasvae process \(pid {os.getpid()}\)"):
      with common.run_lock(tmp_path / "run"):  # a second open file: a second writer
        pass
  (tmp_path / "run" / ".lock").write_text("1")  # a lock file nobody holds is no lock
  with common.run_lock(tmp_path / "run"):
    pass


def test_a_forced_retrain_is_evaluated_again_not_reused(tmp_path, capsys):
  config = tiny_config(tmp_path, evaluate={"iwae_samples": 0, "disentanglement": False})
  assert cli.main(["run", "--config", str(config)]) == 0
  assert cli.main(["train", "--config", str(config), "--force"]) == 0
  run_dir = common.run_directory(configs.load_pipeline_config(config))
  assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]  # the old model is gone
  capsys.readouterr()
  assert cli.main(["evaluate", "--config", str(config)]) == 0
  out = capsys.readouterr().out
  assert "evaluate: reusing" not in out and "blessed" in out
