"""A study as a Kubeflow sweep: the compiled spec of every bundled study, and a two-trial quick
sweep on KFP's local runner whose report has the local `kerasvae study`'s numbers."""

import builtins
import json
import math
import subprocess
import sys

import pytest
import yaml
from kfp import components

from kerasvae import cli
from kerasvae import kfp_pipeline
from kerasvae import studies
from kerasvae.steps import configs
from kerasvae.steps import kfp_adapter
from kerasvae.studies import core
from tests.pipeline_helpers import subprocess_env

def _study_of(stem):
  """The study a bundled config belongs to: `fashion-mnist-priors` (which extends `priors`) is
  `priors`'s, `disentanglement-small` (a config of its own) `disentanglement`'s."""
  name = core.root_study_name(core.STUDY_CONFIG_DIR / f"{stem}.yaml")
  return name if name in studies.STUDIES else name.split("-")[0]


# Studies that run their own loop (`Study.runner`: ood, whose trials read two data sets) or
# chain their trials (`Study.continues`: budget) do not compile as a sweep;
# `test_a_study_with_its_own_runner_or_a_chain_is_refused_as_a_sweep` covers them.
STUDY_CONFIGS = sorted(p.stem for p in core.STUDY_CONFIG_DIR.glob("*.yaml")
                       if studies.STUDIES[_study_of(p.stem)].runner is None
                       and not studies.STUDIES[_study_of(p.stem)].continues)
IMAGE = "registry.example.com/kerasvae:0.1.0"
PARAMETER = "{{{{$.inputs.parameters['pipelinechannel--{}']}}}}"


def test_a_study_with_its_own_runner_or_a_chain_is_refused_as_a_sweep(tmp_path):
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  with pytest.raises(ConfigError, match=r"Expected a study whose trials share one ingest to "
                                        r"compile as a sweep. Received: --study ood"):
    kfp_pipeline.compile_study("ood", tmp_path / "study.yaml")
  with pytest.raises(ConfigError, match=r"Expected a study whose trials train independently to "
                                        r"compile as a sweep. Received: --study budget"):
    kfp_pipeline.compile_study("budget", tmp_path / "study.yaml")
  assert not (tmp_path / "study.yaml").exists()


@pytest.mark.parametrize("stem", STUDY_CONFIGS)
def test_every_bundled_study_compiles_to_a_trial_loop_and_a_report_task(tmp_path, stem):
  name = _study_of(stem)
  path = kfp_pipeline.compile_study(name, tmp_path / "study.yaml", config=stem, image=IMAGE,
                                    accelerator_type="nvidia.com/gpu", accelerator_count=2,
                                    parallelism=3)
  spec = yaml.safe_load(path.read_text())
  components.load_component_from_file(str(path))  # KFP itself reads it back

  # The trials are the local study's: same names, same whole configs.
  plan = studies.plan_study(name, stem)
  loop = spec["root"]["dag"]["tasks"]["for-loop-2"]
  items = json.loads(loop["parameterIterator"]["items"]["raw"])
  assert [i["trial"] for i in items] == [t.name for t in plan.trials]
  for item, trial in zip(items, plan.trials):
    config = configs.load_config_parameter(item["config"])
    config.run.runs_dir = trial.config.run.runs_dir
    assert config == trial.config, trial.name
  assert loop["iteratorPolicy"] == {"parallelismLimit": 3}
  assert loop["dependentTasks"] == ["ingest"]

  # ingest once, then train -> evaluate per trial, then the report over every trial.
  tasks = spec["root"]["dag"]["tasks"]
  assert sorted(tasks) == ["for-loop-2", "ingest", "study-report"]
  body = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]
  assert sorted(body) == ["evaluate", "train"]
  assert body["evaluate"]["dependentTasks"] == ["train"]
  report = tasks["study-report"]
  assert report["dependentTasks"] == ["for-loop-2", "ingest"]
  collected = {k: v["taskOutputArtifact"] for k, v in report["inputs"]["artifacts"].items()}
  assert collected == {
      "examples": {"producerTask": "ingest", "outputArtifactKey": "examples"},
      "models": {"producerTask": "for-loop-2", "outputArtifactKey": "pipelinechannel--train-model"},
      "evaluations": {"producerTask": "for-loop-2",
                      "outputArtifactKey": "pipelinechannel--evaluate-evaluation"}}
  sweep = json.loads(report["inputs"]["parameters"]["sweep"]["runtimeValue"]["constant"])
  assert (sweep["study"], sweep["config"], sweep["bundled"]) == (name, f"{stem}.yaml", True)
  assert [t["config"] for t in sweep["trials"]] == [i["config"] for i in items]

  # Images and accelerators: the trials' as pipeline parameters, the rest the compiled image.
  params = spec["root"]["inputDefinitions"]["parameters"]
  assert {k: (v["parameterType"], v["defaultValue"]) for k, v in params.items()} == {
      "trial_image": ("STRING", IMAGE), "trial_accelerator_type": ("STRING", "nvidia.com/gpu"),
      "trial_accelerator_count": ("NUMBER_INTEGER", 2)}
  executors = spec["deploymentSpec"]["executors"]
  for step in ("train", "evaluate"):
    container = executors[f"exec-{step}"]["container"]
    assert container["image"] == PARAMETER.format("trial_image")
    assert container["resources"] == {"accelerator": {
        "resourceType": PARAMETER.format("trial_accelerator_type"),
        "resourceCount": PARAMETER.format("trial_accelerator_count")}}
  for step in ("ingest", "study-report"):
    assert executors[f"exec-{step}"]["container"]["image"] == IMAGE
    assert "resources" not in executors[f"exec-{step}"]["container"]
  # The loop receives every parameter its tasks' images and accelerators name.
  loop_inputs = spec["components"]["comp-for-loop-2"]["inputDefinitions"]["parameters"]
  assert {f"pipelinechannel--{k}" for k in params} <= set(loop_inputs)
  outputs = spec["components"]["comp-study-report"]["outputDefinitions"]["artifacts"]
  assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
      "study": "system.Artifact", "report": "system.HTML"}
  for executor in executors.values():
    assert "pip install" not in " ".join(executor["container"]["command"])


def _close(a, b):
  return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-9)


# The subprocess runner ignores images and accelerators, and says so.
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:.*have no effect in the current local runner:UserWarning")
def test_a_quick_sweep_on_kfp_local_reports_the_local_studys_numbers(tmp_path, capsys):
  """β = 1 and β = 4 of `disentanglement-full-mlp --quick`: the sweep's report task and the
  local study give the same metrics for the same seeds.

  Without XLA: an XLA-compiled training draws its noise from a process-wide XLA seed, so a
  local study's second trial (after another XLA compilation in the same process) trains
  differently from the same trial in a fresh process, which every sweep task is.
  """
  study = ["disentanglement", "--config", "disentanglement-full-mlp", "--quick",
           "--set", 'train.jit_compile="false"']
  local = subprocess.Popen([sys.executable, "-m", "kerasvae.cli", "study", *study, "--output",
                            str(tmp_path / "local")], cwd=tmp_path, env=subprocess_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  print_before = builtins.print
  try:
    assert cli.main(["pipeline", "run-local", "--study", *study, "--parallelism", "2",
                     "--pipeline-root", str(tmp_path / "kfp_root")]) == 0
    local_out, _ = local.communicate(timeout=900)
  finally:
    local.kill()
  assert local.returncode == 0, local_out[-3000:]
  # kfp.local's indenting print, swapped by two tasks at once, is not left behind.
  assert builtins.print is print_before
  out = capsys.readouterr().out
  assert "\npipeline: ran on kfp.local: ingest once, the ParallelFor of 2 trials" in out
  assert "compiled but not exercised by kfp.local: the images and accelerators" in out

  [run_dir] = [p for p in (tmp_path / "kfp_root").iterdir() if p.is_dir()]
  swept = json.loads((run_dir / "study-report" / "study" / "results.json").read_text())
  expected = json.loads((tmp_path / "local" / "results.json").read_text())
  assert swept["sweep"] is True and expected["sweep"] is False
  assert swept["split_counts"] == expected["split_counts"]
  assert [t["name"] for t in swept["trials"]] == [t["name"] for t in expected["trials"]] == \
      ["β=1", "β=4"]
  for got, want in zip(swept["trials"], expected["trials"]):
    assert (got["seed"], got["epochs_run"], got["overrides"]) == \
        (want["seed"], want["epochs_run"], want["overrides"])
    got, want = (kfp_adapter.scalar_metrics(t["metrics"]) for t in (got, want))
    assert {"elbo", "kl", "beta_vae_score", "mig", "mutual_information_xz"} <= set(want)
    assert set(got) == set(want)
    differ = {k: (got[k], v) for k, v in want.items() if not _close(got[k], v)}
    assert not differ, differ
  assert [f["path"] for f in swept["figures"]] == [f["path"] for f in expected["figures"]]
  report = (run_dir / "study-report" / "study" / "report.md").read_text()
  assert "measured in each trial's own tasks of a Kubeflow sweep" in report
  page = (run_dir / "study-report" / "report").read_text()
  assert page.count("data:image/png;base64,") == len(swept["figures"]) and "<table>" in page


def test_study_flags_are_refused_without_a_study_and_a_sweep_takes_no_run_time_set(tmp_path,
                                                                                    capsys):
  assert cli.main(["pipeline", "compile", "--quick", "--output", str(tmp_path / "p.yaml")]) == 2
  assert "Expected --quick and --parallelism with --study only" in capsys.readouterr().err
  path = tmp_path / "study.yaml"
  assert cli.main(["pipeline", "compile", "--study", "beta", "--quick", "--output", str(path),
                   "--set", "train.epochs=2"]) == 0
  assert kfp_pipeline.is_study_spec(path)
  spec = yaml.safe_load(path.read_text())
  items = json.loads(spec["root"]["dag"]["tasks"]["for-loop-2"]["parameterIterator"]["items"]["raw"])
  assert {configs.load_config_parameter(i["config"]).train.epochs for i in items} == {2}
  assert len(items) == len(studies.plan_study("beta", quick=True).trials)
  assert cli.main(["pipeline", "run-local", "--package", str(path), "--set", "train.epochs=3",
                   "--pipeline-root", str(tmp_path / "root")]) == 2
  assert "compile again with --set" in capsys.readouterr().err
  assert not (tmp_path / "root").exists()
