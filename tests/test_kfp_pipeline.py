"""The pipeline on Kubeflow Pipelines: the compiled v2 spec, and a run on KFP's own local runner."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp import components

from kerasvae import artifacts
from kerasvae import cli
from kerasvae.steps import configs
from kerasvae.steps import export as export_step
from kerasvae.steps import kfp_adapter
from kerasvae import kfp_pipeline
from tests.pipeline_helpers import subprocess_env
from tests.pipeline_helpers import tiny_config

BUNDLED = sorted(p.stem for p in configs.CONFIG_DIR.glob("*.yaml"))
STEPS = ("ingest", "train", "evaluate", "export", "infer")
CONDITION = "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
# The quickstart cut to seconds: 1,000 images, one epoch, small evaluation samples; the
# thresholds are loosened so that one epoch's model is blessed and the export branch runs.
QUICK = ["ingest.data.dsprites.num_examples=1000", "train.epochs=1", "train.progress=false",
         "train.projector_examples=50", "evaluate.iwae_samples=10", "evaluate.iwae_examples=100",
         "evaluate.disentanglement_train_points=100", "evaluate.disentanglement_eval_points=50",
         "evaluate.thresholds.elbo.lower_bound=-100000",
         "evaluate.thresholds.reconstruction.upper_bound=100000", "infer.num_samples=10"]


def _task_inputs(task):
  """{input: producer} of a task spec: 'task.output' or '<parent>.name'."""
  out = {}
  for kind in ("artifacts", "parameters"):
    for name, spec in task.get("inputs", {}).get(kind, {}).items():
      if "taskOutputArtifact" in spec:
        source = spec["taskOutputArtifact"]
        out[name] = f"{source['producerTask']}.{source['outputArtifactKey']}"
      elif "taskOutputParameter" in spec:
        source = spec["taskOutputParameter"]
        out[name] = f"{source['producerTask']}.{source['outputParameterKey']}"
      elif "componentInputArtifact" in spec:
        out[name] = f"<parent>.{spec['componentInputArtifact']}"
      elif "componentInputParameter" in spec:
        out[name] = f"<parent>.{spec['componentInputParameter']}"
  return out


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_config_compiles_to_the_five_step_spec(tmp_path, name):
  path = kfp_pipeline.compile_pipeline(name, tmp_path / "pipeline.yaml")
  spec = yaml.safe_load(path.read_text())
  components.load_component_from_file(str(path))  # KFP itself reads it back

  executors = spec["deploymentSpec"]["executors"]
  assert sorted(executors) == sorted(f"exec-{s}" for s in STEPS)
  for step in STEPS:
    container = executors[f"exec-{step}"]["container"]
    command = " ".join(container["command"] + container["args"])
    assert "kfp.dsl.executor_main" in command and "kfp_adapter." + step in command
    assert "pip install" not in command  # nothing is installed when a component starts
  assert executors["exec-ingest"]["container"]["image"] == kfp_pipeline.DEFAULT_IMAGE
  train = executors["exec-train"]["container"]
  assert train["image"] == "{{$.inputs.parameters['pipelinechannel--train_image']}}"
  assert train["resources"]["accelerator"] == {
      "resourceType": "{{$.inputs.parameters['pipelinechannel--train_accelerator_type']}}",
      "resourceCount": "{{$.inputs.parameters['pipelinechannel--train_accelerator_count']}}"}

  # The DAG: ingest -> train -> evaluate -> (blessed or forced) export -> infer.
  tasks = spec["root"]["dag"]["tasks"]
  assert sorted(tasks) == ["condition-1", "evaluate", "ingest", "train"]
  assert "dependentTasks" not in tasks["ingest"]
  assert tasks["train"]["dependentTasks"] == ["ingest"]
  assert sorted(tasks["evaluate"]["dependentTasks"]) == ["ingest", "train"]
  assert _task_inputs(tasks["train"])["examples"] == "ingest.examples"
  assert _task_inputs(tasks["evaluate"])["model"] == "train.model"
  condition = tasks["condition-1"]
  assert condition["triggerPolicy"]["condition"] == CONDITION
  assert _task_inputs(condition)["pipelinechannel--evaluate-Output"] == "evaluate.Output"
  assert _task_inputs(condition)["pipelinechannel--evaluate-evaluation"] == "evaluate.evaluation"
  branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
  assert list(branch) == ["export", "infer"]
  assert _task_inputs(branch["infer"])["saved_model"] == "export.saved_model"
  assert _task_inputs(branch["infer"])["examples"] == "<parent>.pipelinechannel--ingest-examples"
  assert _task_inputs(branch["export"])["evaluation"] == \
      "<parent>.pipelinechannel--evaluate-evaluation"
  assert _task_inputs(branch["export"])["model"] == "<parent>.pipelinechannel--train-model"
  outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]
  assert outputs["parameters"]["Output"]["parameterType"] == "BOOLEAN"
  assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs["artifacts"].items()} == {
      "metrics": "system.Metrics", "evaluation": "system.Artifact", "summary": "system.HTML"}
  assert spec["components"]["comp-export"]["outputDefinitions"]["artifacts"]["saved_model"][
      "artifactType"]["schemaTitle"] == "system.Model"

  # The parameters, with the config file as the config's default (on one line).
  params = spec["root"]["inputDefinitions"]["parameters"]
  assert {k: v["parameterType"] for k, v in params.items()} == {
      "config": "STRING", "overrides": "LIST", "force_export": "BOOLEAN",
      "train_image": "STRING", "train_accelerator_type": "STRING",
      "train_accelerator_count": "NUMBER_INTEGER"}
  assert "\n" not in params["config"]["defaultValue"]
  assert yaml.safe_load(params["config"]["defaultValue"]) == yaml.safe_load(
      (configs.CONFIG_DIR / f"{name}.yaml").read_text())
  assert params["overrides"]["defaultValue"] == []
  assert params["force_export"]["defaultValue"] is False
  assert params["train_accelerator_type"]["defaultValue"] == ""  # CPU only
  # The config parameter is the same config `kerasvae run --config NAME` uses.
  assert configs.load_config_parameter(params["config"]["defaultValue"]) == \
      configs.load_pipeline_config(name)


def test_compile_sets_image_accelerators_and_overrides_and_checks_the_config(tmp_path):
  path = kfp_pipeline.compile_pipeline(
      "mnist_vae", tmp_path / "gpu.yaml", overrides=["train.epochs=3"],
      image="registry.example.com/kerasvae:0.1.0", accelerator_type="nvidia.com/gpu",
      accelerator_count=2)
  spec = yaml.safe_load(path.read_text())
  params = spec["root"]["inputDefinitions"]["parameters"]
  assert params["overrides"]["defaultValue"] == ["train.epochs=3"]
  assert params["train_image"]["defaultValue"] == "registry.example.com/kerasvae:0.1.0"
  assert params["train_accelerator_type"]["defaultValue"] == "nvidia.com/gpu"
  assert params["train_accelerator_count"]["defaultValue"] == 2
  # KFP's header comment said `int [Default: 2.0]` (every number a protobuf double).
  header = path.read_text().split("\n")[:12]
  assert "#    train_accelerator_count: int [Default: 2]" in header, header
  assert spec["deploymentSpec"]["executors"]["exec-evaluate"]["container"]["image"] == \
      "registry.example.com/kerasvae:0.1.0"
  with pytest.raises(Exception, match="latent_dims"):
    kfp_pipeline.compile_pipeline("quickstart", tmp_path / "bad.yaml",
                                  overrides=["model.latent_dims=3"])
  assert not (tmp_path / "bad.yaml").exists()


def test_compiled_spec_gets_the_umask_mode_and_killed_compiles_leave_nothing(tmp_path):
  """The spec is readable by all under umask 022 (mkstemp's would be 0600); a temporary left
  by a killed compile (a dead process's name) goes at the next compile into that folder."""
  proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  stale = tmp_path / artifacts.temporary_name("pipeline.yaml").replace(
      f"-{os.getpid()}-", f"-{int(proc.stdout)}-")
  stale.write_text("half a spec")
  old = os.umask(0o022)
  try:
    path = kfp_pipeline.compile_pipeline("quickstart", tmp_path / "pipeline.yaml")
  finally:
    os.umask(old)
  assert path.stat().st_mode & 0o777 == 0o644
  assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_config_parameter_takes_yaml_text_or_a_bundled_name():
  text = "{model: {latent_dim: 3}, train: {epochs: 2}}"
  config = configs.load_config_parameter(text, ["train.epochs=4"])
  assert (config.model.latent_dim, config.train.epochs) == (3, 4)
  assert configs.load_config_parameter("mnist_vae") == configs.load_pipeline_config("mnist_vae")
  with pytest.raises(Exception, match="latent_dims"):
    configs.load_config_parameter("model: {latent_dims: 3}")
  with pytest.raises(Exception, match="bundled config name"):
    configs.load_config_parameter("no_such_config")


def test_scalar_metrics_flattens_every_number():
  assert kfp_adapter.scalar_metrics(
      {"elbo": -90.5, "active_units": 3, "kl_per_dim": [0.5, 1.5], "activity": [2.0],
       "mutual_information": [[1.0, 2.0]], "blessed": True, "name": "x"}) == {
           "elbo": -90.5, "active_units": 3.0, "kl_per_dim/z0": 0.5, "kl_per_dim/z1": 1.5,
           "activity/0": 2.0, "mutual_information/0/0": 1.0, "mutual_information/0/1": 2.0}


def test_core_package_never_imports_kfp_and_pipeline_without_kfp_fails_at_once(tmp_path):
  check = ("import sys, kerasvae; from kerasvae import cli; assert cli.main(['config']) == 0; "
           "assert 'kfp' not in sys.modules, 'kfp was imported'")
  proc = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=subprocess_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  blocked = ("import sys; sys.modules['kfp'] = None; from kerasvae import cli; "
             "code = cli.main(['pipeline', 'compile', '--output', 'p.yaml']); "
             "assert 'tensorflow' not in sys.modules; sys.exit(code)")
  proc = subprocess.run([sys.executable, "-c", blocked], cwd=tmp_path, env=subprocess_env(),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr
  assert "pip install 'kerasvae[kfp]'" in proc.stderr
  assert not (tmp_path / "p.yaml").exists()


def _close(a, b):
  return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-9)


# The subprocess runner ignores images and accelerators, and says so.
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner:UserWarning")
def test_compiled_quickstart_runs_on_the_kfp_local_runner_like_the_cli(tmp_path, monkeypatch):
  # The same config and seed through the CLI, in parallel with the KFP run.
  cli_run = subprocess.Popen(
      [sys.executable, "-m", "kerasvae.cli", "run", "--config", "quickstart",
       *(f"--set={s}" for s in QUICK + [f"run.runs_dir={tmp_path / 'runs'}",
                                        f"export.base_dir={tmp_path / 'saved_models'}"])],
      cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)
  try:
    package = tmp_path / "pipeline.yaml"
    # The served model the change threshold compares with is this test's own (none): a
    # relative export.base_dir would find the checkout's saved_models/, where the README's
    # `kerasvae run` (CI's first command) exported a better model.
    assert cli.main(["pipeline", "compile", "--config", "quickstart", "--output", str(package),
                     *(f"--set={s}" for s in QUICK),
                     f"--set=export.base_dir={tmp_path / 'saved_models'}"]) == 0
    # The runner starts each component as `python3 -m kfp.dsl.executor_main` in this
    # environment; a download attempt would fail on these settings.
    for key, value in subprocess_env(PIP_NO_INDEX="1", HTTPS_PROXY="http://127.0.0.1:9",
                                     HTTP_PROXY="http://127.0.0.1:9").items():
      monkeypatch.setenv(key, value)
    assert cli.main(["pipeline", "run-local", "--package", str(package),
                     "--pipeline-root", str(tmp_path / "kfp_root")]) == 0
    [run_dir] = (tmp_path / "kfp_root").iterdir()
    cli_out, _ = cli_run.communicate(timeout=600)
  finally:
    cli_run.kill()
  assert cli_run.returncode == 0, cli_out

  def outputs(task):
    return json.loads((run_dir / task / "executor_output.json").read_text())

  examples = run_dir / "ingest" / "examples"
  assert (examples / "metadata.json").is_file() and (examples / "schema.pbtxt").is_file()
  model = run_dir / "train" / "model"
  assert (model / "model" / "model.keras").is_file() and (model / "history.json").is_file()
  assert not (model / "checkpoints").exists()
  evaluate = outputs("evaluate")
  assert evaluate["parameterValues"]["Output"] is True
  evaluation = run_dir / "evaluate" / "evaluation"
  for png in ("samples", "reconstructions", "traversals", "latents"):
    assert (evaluation / f"{png}.png").stat().st_size > 1000
  summary = (run_dir / "evaluate" / "summary").read_text()
  assert "Evaluation: blessed" in summary and summary.count("data:image/png;base64,") >= 4

  # Every scalar of metrics.json is a KFP metric, equal to the CLI run's within 1e-3.
  logged = evaluate["artifacts"]["metrics"]["artifacts"][0]["metadata"]
  cli_metrics = json.loads(next((tmp_path / "runs").glob("quickstart-*/evaluate/metrics.json"))
                           .read_text())
  expected = kfp_adapter.scalar_metrics(cli_metrics)
  assert {"elbo", "iwae_log_likelihood", "kl_per_dim/z0", "beta_vae_score", "mig"} <= set(expected)
  assert set(logged) == set(expected)
  differ = {k: (logged[k], v) for k, v in expected.items() if not _close(logged[k], v)}
  assert not differ, differ
  assert _close(json.loads((evaluation / "metrics.json").read_text())["elbo"], cli_metrics["elbo"])

  # The infer task scored the test split through the export (a BulkInferrer): one example per
  # test image, its summary logged as KFP metrics.
  scores = run_dir / "infer" / "scores"
  summary = json.loads((scores / "summary.json").read_text())
  test_count = json.loads((examples / "metadata.json").read_text())["splits"]["test"][
      "num_examples"]
  assert summary["num_examples"] == test_count and (scores / "scores-00000.tfrecord.gz").is_file()
  logged_infer = outputs("infer")["artifacts"]["metrics"]["artifacts"][0]["metadata"]
  assert logged_infer["share_above_threshold"] == pytest.approx(summary["share_above_threshold"])

  # The SavedModel has the six serving signatures, in a process that never saw kerasvae.
  saved_model = run_dir / "export" / "saved_model"
  assert outputs("export")["artifacts"]["saved_model"]["artifacts"][0]["metadata"]["signatures"] \
      == ["anomaly_score", "decode", "encode", "log_likelihood", "sample", "serving_default"]
  load = ("import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
          "print(','.join(sorted(m.signatures))); "
          "print(m.signatures['encode'](images=tf.zeros([2, 64, 64, 1]))['latent_mean'].shape); "
          "assert not any(k.startswith('kerasvae') for k in sys.modules)")
  proc = subprocess.run([sys.executable, "-c", load, str(saved_model)], cwd=tmp_path,
                        env=subprocess_env(PYTHONPATH=""), capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.split() == [
      "anomaly_score,decode,encode,log_likelihood,sample,serving_default", "(2,", "6)"]


class _Artifact:
  """What the adapter uses of a KFP artifact object: `path`, `metadata`, `log_metric`."""

  def __init__(self, path):
    self.path, self.metadata, self.logged = str(path), {}, {}

  def log_metric(self, name, value):
    self.logged[name] = value


def test_unblessed_model_is_not_exportable_unless_forced_and_export_refuses_it(tmp_path):
  # The branch the local-runner test never takes: evaluate returns False, so the pipeline's
  # condition skips export; an export forced at run time marks the SavedModel as forced.
  config = tiny_config(tmp_path, evaluate={"thresholds": {"elbo": {"lower_bound": 0.0}},
                                           "disentanglement": False, "iwae_samples": 0},
                       train={"epochs": 1, "batch_size": 64}).read_text()
  examples, model = _Artifact(tmp_path / "examples"), _Artifact(tmp_path / "model")
  kfp_adapter.ingest(config, [], examples)
  kfp_adapter.train(config, [], examples, model)

  def evaluate(force_export, name, overrides=()):
    outputs = [_Artifact(tmp_path / name / o) for o in ("metrics", "evaluation", "summary")]
    return kfp_adapter.evaluate(config, list(overrides), force_export, examples, model,
                                *outputs), *outputs

  exportable, metrics, evaluation, summary = evaluate(False, "evaluate")
  assert exportable is False
  assert evaluation.metadata == {"blessed": False, "exportable": False}
  assert metrics.logged["elbo"] < 0.0  # the failed check, logged as a metric all the same
  page = Path(summary.path).read_text()
  assert "Evaluation: NOT blessed; the model will not be exported" in page and "FAILED" in page
  assert evaluate(True, "forced")[0] is True
  assert evaluate(False, "unrequired", ["export.require_blessing=false"])[0] is True

  with pytest.raises(export_step.ExportRefused, match="not blessed"):
    kfp_adapter.export(config, [], False, model, evaluation, _Artifact(tmp_path / "refused"))
  assert not (tmp_path / "refused").exists()
  saved_model = _Artifact(tmp_path / "saved_model")
  kfp_adapter.export(config, [], True, model, evaluation, saved_model)
  assert (Path(saved_model.path) / "saved_model.pb").is_file()
  assert saved_model.metadata["blessed"] is False and saved_model.metadata["forced"] is True


def test_export_outcome_says_in_one_line_why_a_local_run_exported_nothing(tmp_path):
  run_dir = tmp_path / "run"
  evaluation = run_dir / "evaluate" / "evaluation"
  evaluation.mkdir(parents=True)
  (evaluation / "blessing.json").write_text(json.dumps({"blessed": False, "checks": [
      {"metric": "elbo", "value": -205.32167212677, "lower_bound": -150.0, "passed": False},
      {"metric": "active_units", "value": 3, "lower_bound": 1, "passed": True}]}))
  line = kfp_pipeline.export_outcome(run_dir)
  assert line == ("pipeline: export SKIPPED: the model is not blessed (elbo=-205.32 (expected >= "
                  "-150.0)); rerun with --force-export or --set export.require_blessing=false "
                  "to export it")
  saved = run_dir / "export" / "saved_model"
  saved.mkdir(parents=True)
  (saved / "saved_model.pb").write_bytes(b"")
  assert kfp_pipeline.export_outcome(run_dir) == f"pipeline: exported the SavedModel {saved}"


def test_the_kubeflow_runner_compiles_its_settings_and_submits_to_the_host(tmp_path, monkeypatch,
                                                                           capsys):
  """`pipelines/kubeflow_runner.py`, the file a user edits: its image, config and accelerators
  reach the spec; `--host` hands the spec to `kfp.Client` (a stand-in here: no cluster)."""
  import kfp  # pylint: disable=import-outside-toplevel
  from pipelines import kubeflow_runner  # pylint: disable=import-outside-toplevel
  submitted = []

  class Client:
    def __init__(self, host):
      self.host = host

    def create_run_from_pipeline_package(self, package, arguments, experiment_name):
      submitted.append((self.host, package, arguments, experiment_name))
      return type("Run", (), {"run_id": "run-1"})()

  monkeypatch.setattr(kfp, "Client", Client)
  monkeypatch.setattr(kubeflow_runner, "IMAGE", "registry.example.com/team/kerasvae:0.1.0")
  output = tmp_path / "spec.yaml"
  assert kubeflow_runner.main(["--output", str(output), "--host", "http://kfp.example"]) == 0
  spec = yaml.safe_load(output.read_text())
  params = spec["root"]["inputDefinitions"]["parameters"]
  assert params["train_image"]["defaultValue"] == "registry.example.com/team/kerasvae:0.1.0"
  assert params["train_accelerator_type"]["defaultValue"] == kubeflow_runner.ACCELERATOR_TYPE
  assert yaml.safe_load(params["config"]["defaultValue"]) == yaml.safe_load(
      (configs.CONFIG_DIR / f"{kubeflow_runner.CONFIG}.yaml").read_text())
  assert submitted == [("http://kfp.example", str(output), {}, kubeflow_runner.EXPERIMENT)]
  assert "submitted run run-1" in capsys.readouterr().out
  # STUDY set: the study's sweep, its trials on the runner's accelerator.
  monkeypatch.setattr(kubeflow_runner, "STUDY", "priors")
  monkeypatch.setattr(kubeflow_runner, "CONFIG", None)
  assert kubeflow_runner.main(["--output", str(tmp_path / "study.yaml")]) == 0
  spec = yaml.safe_load((tmp_path / "study.yaml").read_text())
  assert spec["pipelineInfo"]["name"] == "kerasvae-study-priors"
  assert spec["root"]["inputDefinitions"]["parameters"]["trial_accelerator_type"][
      "defaultValue"] == kubeflow_runner.ACCELERATOR_TYPE
  assert len(submitted) == 1  # no --host: compiled only
