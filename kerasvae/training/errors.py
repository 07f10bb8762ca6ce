"""What stops a training: an error it cannot go on after, and an interruption by a signal."""

import signal


class TrainingError(RuntimeError):
  """Training cannot go on (a non-finite loss, a bad strategy); the message says why."""


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM stopped training; the message says what was saved and how to resume.

  A KeyboardInterrupt, so that code which lets Ctrl-C through lets this through too.

  Attributes:
    signal_number: the signal (`signal.SIGINT`, `signal.SIGTERM`).
  """

  def __init__(self, message, signal_number=signal.SIGINT):
    super().__init__(message)
    self.signal_number = int(signal_number)
