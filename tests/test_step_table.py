"""The step table: every step declares its inputs and fingerprint, and every runner runs it."""

import inspect
import types

import pytest

from kerasvae import fingerprints
from kerasvae import pipeline
from kerasvae.steps import configs
from kerasvae.steps import executor
from kerasvae.steps import ingest
from kerasvae.steps import table

NAMES = [step.name for step in table.PIPELINE]


def test_every_step_has_a_fingerprint_table_and_inputs_from_earlier_steps():
  assert NAMES == ["ingest", "train", "evaluate", "export"]
  assert list(table.STEPS) == NAMES + ["validate"]  # validate: after the pipeline, on new data
  for position, step in enumerate(table.STEPS.values()):
    assert isinstance(step.fingerprint, fingerprints.Fingerprint), step.name
    assert step.fingerprint.parts and step.fingerprint.left_out, step.name
    for part in step.fingerprint.parts:
      assert part.why and part.name.partition(".")[0], (step.name, part)
    assert all(step.fingerprint.left_out.values()), step.name
    for item in step.inputs:
      assert item.step in list(table.STEPS)[:position], (step.name, item)
    assert callable(executor.resolve(step.body)), step.name
    for hook in (step.given, step.reuse and step.reuse.output, step.reuse and step.reuse.recover):
      assert hook is None or callable(executor.resolve(hook)), (step.name, hook)


def test_the_served_baseline_rule_is_a_row_of_the_evaluate_table():
  rows = {part.name: part for part in table.EVALUATE.fingerprint.parts}
  assert "whatever `evaluate.dci` is" in rows["evaluate.baseline"].why
  train_meta = {"fingerprint": "f", "digests": {}}
  for dci in (True, False):
    config = types.SimpleNamespace(
        evaluate=configs.EvaluateConfig(dci=dci, change_thresholds={"elbo": 5.0}))
    prints = {table.EVALUATE.fingerprint.compute(config=config, train=train_meta, served=served)
              for served in (None, ("saved_models/vae/1", 1), ("saved_models/vae/2", 2))}
    assert len(prints) == 3, dci


def test_a_fingerprint_table_needs_a_reason_for_each_row():
  with pytest.raises(ValueError, match="each with its reason"):
    fingerprints.Fingerprint(parts=(fingerprints.Part("x", lambda given: 1, ""),), left_out={})
  with pytest.raises(ValueError, match="a reason for everything left out"):
    fingerprints.Fingerprint(parts=(fingerprints.Part("x", lambda given: 1, "why"),),
                             left_out={"y": ""})


def _recording(monkeypatch):
  """Replaces executor.execute by one that records the steps it is given."""
  calls = []

  def execute(step, config, directory, paths=None, force=False):
    calls.append((step.name, sorted(paths or {})))
    return directory
  monkeypatch.setattr(executor, "execute", execute)
  return calls


def _config(tmp_path):
  config = configs.PipelineConfig()
  config.run.runs_dir = str(tmp_path / "runs")
  config.export.base_dir = str(tmp_path / "saved_models")
  return config


def test_run_pipeline_runs_the_table(tmp_path, monkeypatch):
  calls = _recording(monkeypatch)
  assert pipeline.STEPS == tuple(NAMES)
  pipeline.run_pipeline(_config(tmp_path))
  assert calls == [(step.name, sorted(i.name for i in step.inputs)) for step in table.PIPELINE]


def test_study_trials_run_the_table_but_export(tmp_path, monkeypatch):
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  calls = _recording(monkeypatch)
  monkeypatch.setattr(core, "read_trial_results", lambda *args: None)
  monkeypatch.setattr(ingest, "examples_of", lambda *args: tmp_path)  # nothing was ingested
  trial = types.SimpleNamespace(name="t", config=_config(tmp_path))
  core.run_trial(trial)
  core.run_trial(trial, force=True)
  assert [name for name, _ in calls] == [n for n in NAMES if n != "export"] * 2


def test_each_kubeflow_component_runs_its_step_of_the_table():
  from kerasvae.steps import kfp_adapter  # pylint: disable=import-outside-toplevel
  for name in NAMES:
    source = inspect.getsource(getattr(kfp_adapter, name))
    assert f'_execute("{name}"' in source, name
  assert "executor.execute(table.STEPS[name]" in inspect.getsource(kfp_adapter._execute)  # pylint: disable=protected-access
