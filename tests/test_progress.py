"""Progress of long steps: Keras' bar with an ETA on a terminal, one line per step otherwise."""

import contextlib
import io
import re

import numpy as np
import pytest
import tensorflow as tf

from kerasvae import progress
from kerasvae.metrics import ground_truth
from kerasvae.metrics import likelihood
from kerasvae.steps import configs
from kerasvae.steps import evaluate
from tests.pipeline_helpers import tiny_trainer


class FakeTerminal(io.StringIO):
  """What a terminal's stdout looks like to the code: a stream whose isatty() is True."""

  def isatty(self):
    return True


@pytest.fixture(params=["terminal", "pipe", "ci"])
def stdout(request, monkeypatch):
  """A stdout that is a terminal, a pipe, or a terminal under CI: (kind, stream), for
  `contextlib.redirect_stdout` in the test (pytest swaps sys.stdout back after fixtures)."""
  if request.param == "ci":
    monkeypatch.setenv("CI", "true")
  else:
    monkeypatch.delenv("CI", raising=False)
  return request.param, io.StringIO() if request.param == "pipe" else FakeTerminal()


def _counts(text):
  """The `done/total` counters a Keras bar drew, in order (ANSI codes removed)."""
  plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
  return [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) ━", plain)]


def test_progress_draws_a_bar_with_an_eta_only_on_a_terminal_outside_ci(stdout):
  kind, stream = stdout
  with contextlib.redirect_stdout(stream):
    bar = progress.Progress("evaluate: IWAE bound", total=4, unit_name="batch")
    drawing = bar.drawing
    if drawing:
      bar._bar.interval = 0  # pylint: disable=protected-access  # draw every update
    for _ in range(3):
      bar.advance(1)
    bar.close()
  text = stream.getvalue()
  assert text.startswith("evaluate: IWAE bound\n")
  if kind == "terminal":
    assert drawing
    assert _counts(text) == [(1, 4), (2, 4), (3, 4), (3, 4)]
    assert "\r" in text and "/batch" in text
    assert re.search(r"3/4 ━+.*\d+s", re.sub(r"\x1b\[[0-9;]*m", "", text))  # the ETA
  else:
    assert not drawing and text == "evaluate: IWAE bound\n"  # one line, nothing per batch


def test_training_epochs_show_a_bar_on_a_terminal_and_one_line_per_epoch_otherwise(
    stdout, tmp_path):
  kind, stream = stdout
  config = configs.TrainConfig(epochs=2, batch_size=8, progress=True, jit_compile="false",
                               steps_per_execution=1)
  trainer = tiny_trainer(tmp_path, config)
  with contextlib.redirect_stdout(stream):
    trainer.train()
  text = stream.getvalue()
  summaries = re.findall(r"^epoch (\d)/2: train/loss", text, re.M)
  assert summaries == ["1", "2"]
  if kind == "terminal":
    assert re.findall(r"^epoch \d/2$", text, re.M) == ["epoch 1/2", "epoch 2/2"]
    assert (2, 2) in _counts(text) and "loss:" in text
  else:
    assert text.count("\n") == 2 and "━" not in text  # a line per epoch, nothing per step


def test_iwae_reports_each_batch():
  class Model:  # a stand-in: the IWAE bound of every example is -1
    def iwae_log_likelihood(self, x, num_samples, seed):
      del num_samples, seed
      return tf.fill([len(x)], -1.0)

  done = []
  out = likelihood.iwae_metrics(Model(), np.zeros((250, 2, 2, 1), np.float32), num_samples=3,
                                batch_size=100, on_batch=done.append)
  assert done == [100, 200, 250] and out["iwae_log_likelihood"] == -1.0


@pytest.mark.parametrize("factor_sizes", [(3, 4), (30, 40, 20)])
def test_disentanglement_progress_counts_every_code(monkeypatch, factor_sizes):
  """Each score's bar ends at exactly the number of codes it announced; images are encoded once,
  the whole grid first when the scores draw it several times over (15,840 draws of 12
  combinations), else as they are drawn (of 24,000)."""
  stream = FakeTerminal()
  monkeypatch.delenv("CI", raising=False)

  class Model:  # codes: the factors plus noise that depends on the factors only
    def encode_mean(self, x):
      x = tf.reshape(tf.cast(x, tf.float32), [-1, len(factor_sizes)])
      return x + 0.1 * tf.sin(100.0 * x + tf.reverse(x, [1]))

  data = ground_truth.FactorGrid(factor_sizes)
  config = configs.EvaluateConfig(disentanglement_train_points=20,
                                  disentanglement_eval_points=10)
  with contextlib.redirect_stdout(stream):
    out = evaluate.disentanglement_metrics(Model(), data, config)
  assert {"beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "sap"} <= set(out)
  assert out["mig/factor_1"] == out["mig_per_factor"][1]  # each per-factor list as scalars
  assert out["dci_completeness/factor_0"] == out["dci_completeness_per_factor"][0]
  text = stream.getvalue()
  announced = [int(n.replace(",", "")) for n in re.findall(r"\(\d/5\), ([\d,]+) codes", text)]
  assert announced == [30 * 2 * 64, 10000 + 30 * 64, 20, 30, 30]
  finals = {}
  for done, total in _counts(text):
    finals[total] = done
  encoded_first = re.findall(r"encoding the ([\d,]+) images of the factor grid once \(the "
                             r"scores draw 15,840\)", text)
  encoded = [int(n.replace(",", "")) for n in re.findall(r"encoded so far: ([\d,]+)", text)]
  if factor_sizes == (3, 4):
    assert encoded_first == ["12"] and encoded == [12] * 5
    assert finals == {12: 12, **{total: total for total in announced}}
  else:
    assert not encoded_first and encoded[0] == 0 and 3840 * 0.8 < encoded[1] <= 3840
    assert encoded[1] < encoded[2] < encoded[1] + 11920  # some of FactorVAE's draws repeat
    assert encoded[3] < encoded[4] <= encoded[3] + 10  # DCI draws MIG's 20 codes, then 10 more
    assert finals == {total: total for total in announced}
