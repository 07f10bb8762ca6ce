"""Config files that PyYAML or the file system would let through silently (issue 41, cases 4
and 8): a key given twice at any depth, and --config naming a device or a FIFO."""

import os
import subprocess
import sys

import pytest

from tests import pipeline_helpers
from tests.reliability.test_bad_inputs import assert_named_error

DUPLICATE = ("expected each key once in a mapping (a second one would silently replace the "
             "first). Received: ")

# (id, YAML text, what the message names)
DUPLICATE_CASES = [
    ("top-level-block", "train:\n  epochs: 3\ntrain:\n  learning_rate: 0.5\n",
     "'train' at line 1, column 1 and again at line 3, column 1"),
    ("nested-value", "model:\n  kind: vae\n  vae:\n    kl_weight: 1\n    kl_weight: 4\n",
     "'kl_weight' at line 4, column 5 and again at line 5, column 5"),
    ("flow-mapping", "evaluate:\n  thresholds: {elbo: {min: -200}, elbo: {min: -100}}\n",
     "'elbo' at line 2, column 16 and again at line 2, column 35"),
    ("inside-a-list", "x:\n  - {a: 1, a: 2}\n", "'a' at line 2, column 6 and again at line 2, "
     "column 12"),
]


@pytest.mark.parametrize("text, named", [c[1:] for c in DUPLICATE_CASES],
                         ids=[c[0] for c in DUPLICATE_CASES])
def test_a_duplicate_key_at_any_depth_names_both_lines(tmp_path, monkeypatch, capsys, text,
                                                        named):
  """The issue's case 4: `train:` given twice, the last block won and the first vanished."""
  (tmp_path / "d.yaml").write_text(text)
  err = assert_named_error(["config", "--config", "d.yaml"], tmp_path, monkeypatch, capsys,
                           "^kerasvae config: error: ")
  assert err == f"kerasvae config: error: d.yaml: {DUPLICATE}{named}\n"


def test_a_duplicate_key_in_a_set_value_is_named(tmp_path, monkeypatch, capsys):
  err = assert_named_error(
      ["config", "--set", "evaluate.thresholds={elbo: {min: 1}, elbo: {max: 2}}"], tmp_path,
      monkeypatch, capsys, "^kerasvae config: error: ")
  assert err == (f"kerasvae config: error: --set evaluate.thresholds=...: {DUPLICATE}'elbo' at "
                 "line 1, column 2 and again at line 1, column 18\n")


def test_merge_keys_may_still_be_overridden(tmp_path, monkeypatch, capsys):
  """A key a merge (`<<: *base`) brings in is meant to be overridden: not a duplicate."""
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  from kerasvae import config as config_lib  # pylint: disable=import-outside-toplevel
  (tmp_path / "m.yaml").write_text("x: &base {epochs: 3, batch_size: 16}\n"
                                   "train:\n  <<: *base\n  epochs: 5\n")
  assert config_lib.load_yaml(tmp_path / "m.yaml")["train"] == {"epochs": 5, "batch_size": 16}
  monkeypatch.chdir(tmp_path)
  capsys.readouterr()
  assert cli.main(["config", "--set", "train={<<: {epochs: 3}, epochs: 5}"]) == 0
  assert "  epochs: 5\n" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["character-device", "fifo"])
def test_config_naming_a_device_or_a_fifo_says_what_is_there(tmp_path, kind):
  """The issue's case 8: `--config /dev/zero` or a FIFO said "nothing there". A fresh process:
  a FIFO opened for reading would block it for ever."""
  if kind == "fifo":
    path = tmp_path / "pipe"
    os.mkfifo(path)
    what = "a FIFO (named pipe)"
  else:
    path, what = "/dev/zero", "a character device"
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "config", "--config", str(path)],
                        cwd=tmp_path, env=pipeline_helpers.subprocess_env(), capture_output=True,
                        text=True, timeout=60)
  assert proc.returncode == 2
  assert proc.stderr == (f"kerasvae config: error: Expected a YAML config file at {path}. "
                         f"Received: {what} there.\n")
