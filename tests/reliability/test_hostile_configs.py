"""Hostile configs: alias bombs, recursive and deep values, and values of the wrong type.

Each is refused while the config is read, with a one-line error naming the file or `--set`
item (exit 2), in seconds and bounded memory, before any folder is made.
"""

import dataclasses
import resource
import subprocess
import sys
import time
import typing

import pytest

from tests import pipeline_helpers
from tests.reliability.test_bad_inputs import assert_named_error
from tests.reliability.test_bad_inputs import tree


def billion_laughs(levels=9, width=10):
  """A flow-style YAML value of `width ** levels` strings ("lol") in nested aliases, 500 bytes."""
  names = [f"l{i}" for i in range(levels)]
  parts = [f"&{names[0]} [" + ", ".join(["lol"] * width) + "]"]
  parts += [f"&{name} [" + ", ".join([f"*{previous}"] * width) + "]"
            for previous, name in zip(names, names[1:])]
  return "[" + ", ".join(parts) + "]"


BOMB_PLACES = {
    "evaluate-thresholds": "evaluate:\n  thresholds:\n    elbo: {bomb}\n",
    "run-name": "run:\n  name: {bomb}\n",
    "model-hidden-units": "model:\n  hidden_units: {bomb}\n",
}


def _limit_memory():
  limit = 2 << 30  # address space: python, yaml and numpy need a few hundred MB
  resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("place", sorted(BOMB_PLACES))
def test_billion_laughs_config_is_refused_in_seconds_and_bounded_memory(place, tmp_path):
  """10^9 values if expanded (the issue's case grew past 1.7 GB in 240 s): refused by the
  loader with the file, the bound and the line; a fresh `kerasvae run` under a 2 GB
  address-space limit, which an expansion or a megabyte error line would break."""
  bomb = billion_laughs()
  assert len(bomb) < 600
  (tmp_path / "bomb.yaml").write_text(BOMB_PLACES[place].format(bomb=bomb))
  started = time.monotonic()
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "run", "--config", "bomb.yaml"],
                        cwd=tmp_path, env=pipeline_helpers.subprocess_env(),
                        capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
  seconds = time.monotonic() - started
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(proc.stderr) < 1000, proc.stderr[:1000]
  assert proc.stderr.startswith("kerasvae run: error: bomb.yaml: expected at most 10000 values, "
                                "counting every alias expanded. Received: "), proc.stderr
  assert "(a YAML alias bomb?)" in proc.stderr
  assert seconds < 30, seconds  # about 1 s on an idle machine; the bound is for a loaded one
  assert tree(tmp_path) == {"bomb.yaml"}


# (id, --set item, pattern): hostile values on the command line, refused the same way.
HOSTILE_SET_CASES = [
    ("alias-bomb", "run.name=" + billion_laughs(),
     r"--set run\.name=\.\.\.: expected at most 10000 values, counting every alias expanded\. "
     r"Received: \d+ or more in the value at line 1, column \d+ \(a YAML alias bomb\?\)$"),
    ("recursive-alias", "evaluate.thresholds=&a {elbo: *a}",
     r"--set evaluate\.thresholds=\.\.\.: expected no alias inside its own anchor "
     r"\(a recursive value\)\. Received: \*a at line 1, column 11$"),
    ("deep-nesting", "model.hidden_units=" + "[" * 5000 + "]" * 5000,
     r"--set model\.hidden_units=\.\.\.: expected values nested at most 32 deep\. "
     r"Received: more at line 1, column 33$"),
    ("huge-integer", "train.epochs=" + "9" * 5000,
     r"--set train\.epochs=\.\.\.: expected an integer of at most 4300 digits\. "
     r"Received: 5000 characters at line 1, column 1$"),
]


@pytest.mark.parametrize("item,pattern", [c[1:] for c in HOSTILE_SET_CASES],
                         ids=[c[0] for c in HOSTILE_SET_CASES])
def test_hostile_set_values_are_refused_in_one_line(item, pattern, tmp_path, monkeypatch,
                                                     capsys):
  err = assert_named_error(["run", "--set", item], tmp_path, monkeypatch, capsys, pattern)
  assert len(err) < 1000 and err.count("\n") == 1


def test_error_messages_show_a_bounded_repr():
  """The repr in errors stays short for a value that is huge when walked: 10^9 shared items
  (what an alias bomb loads as), a megabyte string, an integer past Python's digit limit."""
  from kerasvae.config import show  # pylint: disable=import-outside-toplevel
  value = ["lol"] * 10
  for _ in range(8):
    value = [value] * 10
  started = time.monotonic()
  for hostile in (value, "x" * (1 << 20), 10 ** 5000, {str(i): [value] for i in range(1000)}):
    assert len(show(hostile)) <= 300
  assert time.monotonic() - started < 1
  assert show([1, "a", {"b": None}]) == "[1, 'a', {'b': None}]"


def _leaf_fields(cls, prefix=""):
  """(dotted key, type) of every field of a config dataclass, nested blocks included."""
  hints = typing.get_type_hints(cls)
  for f in dataclasses.fields(cls):
    yield prefix + f.name, hints[f.name]
    if dataclasses.is_dataclass(hints[f.name]):
      yield from _leaf_fields(hints[f.name], f"{prefix}{f.name}.")


WRONG_TYPES = ["{a: 1}", "[1]", "[[1]]", "5", "1.5", "abc", "true", "null", "{a: [1]}"]


def test_every_config_value_of_a_wrong_type_is_a_named_config_error():
  """Every field of the pipeline config, given each kind of YAML value: accepted, or a
  ConfigError naming the field and blaming the --set item; never another exception."""
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  refused = 0
  for key, _ in _leaf_fields(configs.PipelineConfig):
    for text in WRONG_TYPES:
      try:
        configs.load_pipeline_config(None, [f"{key}={text}"])
      except ConfigError as e:
        refused += 1
        assert key.split(".")[-1] in str(e) and f"--set {key}={text}" in str(e), str(e)
  assert refused > 300


@pytest.mark.parametrize("item,expected", [
    ("evaluate.thresholds=5", "config.evaluate.thresholds: expected a mapping. Received: 5"),
    ("evaluate.thresholds=[elbo]",
     "config.evaluate.thresholds: expected a mapping. Received: ['elbo']"),
    ("evaluate.thresholds.elbo=-100",
     "config.evaluate.thresholds.elbo: expected a mapping. Received: -100"),
    ("evaluate.thresholds.elbo.lower_bound=high",
     "config.evaluate.thresholds.elbo.lower_bound: expected a finite number. Received: 'high'"),
    ("model.hidden_units=400", "config.model.hidden_units: expected a list. Received: 400"),
    ("ingest.data.dsprites.shapes=square",
     "config.ingest.data.dsprites.shapes: expected a list. Received: 'square'"),
    ("run=fast", "config.run: expected a mapping of keys to values. Received: 'fast'"),
])
def test_wrong_type_names_the_field_and_the_expected_type(item, expected, tmp_path, monkeypatch,
                                                          capsys):
  err = assert_named_error(["config", "--set", item], tmp_path, monkeypatch, capsys, ".")
  assert err == f"kerasvae config: error: {expected} (from --set {item})\n"
