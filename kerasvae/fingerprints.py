"""Fingerprint tables: what a step's fingerprint holds, and what it leaves out and why.

A step's fingerprint names everything that determines its output: a finished output with the
same fingerprint is reused, one with another is redone. Each step declares one `Fingerprint`
(`kerasvae/steps/table.py`): its `parts` are the entries of the fingerprinted mapping, each
with the reason it is there; its `left_out` names what is deliberately not in it, with the
reason. A change to a table changes the fingerprints of existing runs (they are pinned in
tests/test_step_fingerprints.py): settings added later are left out at their defaults.

Example:

  table = Fingerprint(
      parts=(Part("train", lambda given: given.config.train.epochs, "the number of epochs"),),
      left_out={"train.progress": "a display setting: the model is the same"})
  table.compute(config=config)  # artifacts.fingerprint({"train": 3})
"""

import dataclasses
import types

from kerasvae import artifacts

OMIT = object()  # a part's value that leaves it out of the fingerprinted mapping


@dataclasses.dataclass(frozen=True)
class Part:
  """One entry of a fingerprinted mapping.

  Args:
    name: its key; `outer.inner` is the key `inner` of the mapping part `outer` holds; `*`
      makes its value (a mapping) the whole fingerprinted mapping.
    value: `given -> value` (a namespace of what the step is given: `config`, the upstream
      steps' metadata by step name, ...); `OMIT` leaves the entry out.
    why: why it determines the output, and when it is left out.
  """
  name: str
  value: object
  why: str


@dataclasses.dataclass(frozen=True)
class Fingerprint:
  """A step's fingerprint table.

  Args:
    parts: the `Part`s of the fingerprinted mapping.
    left_out: `{what: why}` for what is deliberately not fingerprinted.
    by_body: the step's body computes it (from what only its work gives: ingest's content
      hash), not the executor before the body runs.
  """
  parts: tuple
  left_out: dict
  by_body: bool = False

  def __post_init__(self):
    if not self.parts or not all(isinstance(p, Part) and p.why for p in self.parts):
      raise ValueError(f"Expected a fingerprint table of Parts, each with its reason. "
                       f"Received: parts={self.parts!r}")
    if not all(why for why in self.left_out.values()):
      raise ValueError(f"Expected a reason for everything left out of a fingerprint. "
                       f"Received: left_out={self.left_out!r}")

  def identity(self, **given):
    """The fingerprinted mapping for `given` (`config=...`, upstream metadata by step name)."""
    given = types.SimpleNamespace(**given)
    identity = {}
    for part in self.parts:
      value = part.value(given)
      if value is OMIT:
        continue
      outer, dot, inner = part.name.partition(".")
      if part.name == "*":
        identity.update(value)
      elif dot:
        identity[outer][inner] = value
      else:
        identity[outer] = value
    return identity

  def compute(self, **given):
    """The fingerprint (a SHA-256 hex digest) of `identity(**given)`."""
    return artifacts.fingerprint(self.identity(**given))
