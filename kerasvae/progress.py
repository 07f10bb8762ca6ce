"""Progress of long work (ingest, training epochs, IWAE, disentanglement metrics, studies).

On a terminal a step shows Keras' own progress bar (`keras.utils.Progbar`: `12/40 ━━━━━━
1:23 2s/step`, with its ETA); under `CI` or when stdout is not a terminal (a log file, a
pipe, a test) nothing is drawn per batch: the step prints the one line that says what it
is doing, so a log shows where the time went without a line per batch.

  bar = progress.Progress("evaluate: IWAE bound (K=5000, 1000 examples)", total=10,
                          unit_name="batch")
  for batch in batches:
    ...
    bar.advance(1)
  bar.close()
"""

import os
import sys
import time


def interactive(stream=None):
  """True when a progress bar may redraw itself: `stream` (stdout) is a terminal and `CI` is
  unset (CI services set `CI=true`; their logs are terminals that keep every redraw)."""
  if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
    return False
  stream = sys.stdout if stream is None else stream
  isatty = getattr(stream, "isatty", None)
  try:
    return bool(isatty and isatty())
  except ValueError:  # a closed stream
    return False


def format_seconds(seconds):
  """`42s`, `3:07`, `1:02:03`: how Keras' progress bar writes durations."""
  seconds = max(0, int(round(seconds)))
  if seconds >= 3600:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
  if seconds >= 60:
    return f"{seconds // 60}:{seconds % 60:02d}"
  return f"{seconds}s"


class Progress:
  """A step counter with an ETA on a terminal; one line (the label) otherwise.

  Args:
    label: what the work is, printed once when it starts (`evaluate: MIG (10000 images)`).
    total: units of work (batches, images, epochs), or None when unknown.
    unit_name: the unit the bar counts (`step`, `image`, `batch`).
    enabled: False prints nothing at all.
    stateful_metrics: metric names shown as given, not averaged (as for `Progbar`).
  """

  def __init__(self, label, total=None, unit_name="step", enabled=True, stateful_metrics=None):
    self.label = label
    self.total = total
    self.done = 0
    self.started = time.monotonic()
    self._bar = None
    if not enabled:
      return
    if label:
      print(label, flush=True)
    if interactive():
      import keras  # pylint: disable=import-outside-toplevel
      self._bar = keras.utils.Progbar(total, unit_name=unit_name,
                                      stateful_metrics=stateful_metrics)

  @property
  def drawing(self):
    """Whether a bar is drawn (a terminal), so callers may skip computing its values."""
    return self._bar is not None

  def advance(self, units=1, values=None):
    """Counts `units` more units of finished work; `values`: [(name, value)] to show."""
    self.update(self.done + units, values)

  def update(self, done, values=None):
    """Sets the finished work to `done` units."""
    self.done = done
    if self._bar is not None:
      self._bar.update(done, values, finalize=False)

  def close(self, values=None):
    """Ends the bar (its last redraw shows the total time)."""
    if self._bar is not None:
      self._bar.update(self.done, values, finalize=True)
      self._bar = None

  @property
  def seconds(self):
    return time.monotonic() - self.started

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False
