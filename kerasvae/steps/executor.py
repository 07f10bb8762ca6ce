"""How a pipeline step runs: one executor owns what every step repeats.

A step (`Step`, declared in `kerasvae/steps/table.py`) is its inputs, its fingerprint table
and its body. `execute` runs any step the same way, as TFX's base executor caches any
component:

  1. upstream check: each input's finished artifact, read through its metadata (a missing one
     is a `StepError` saying which command makes it);
  2. fingerprint: the step's table (`kerasvae.fingerprints.Fingerprint`) over the config and
     the fingerprinted inputs' metadata;
  3. reuse: a finished output with the same fingerprint is reused, with the step's printed
     line, after checking its files against the digests the step recorded (a damaged one is
     refused by name, or redone where redoing is safe);
  4. damage check: each input's files against the digests its step recorded;
  5. the body, which writes the output. The executor writes the step's `metadata.json`
     (`StepRun.write_metadata`: fingerprint, config, inputs, outputs, versions, times) and
     publishes a directory atomically (`StepRun.publishing`) when the body says its output
     is complete; the body only says when.

Nothing here imports TensorFlow: a body is named `"module:function"` and imported when it runs.
"""

import contextlib
import dataclasses
import importlib
import logging
from pathlib import Path

from kerasvae import artifacts
from kerasvae.steps import common

logger = logging.getLogger(__name__)


def resolve(name):
  """The function a `"module:function"` string names."""
  module, _, function = name.partition(":")
  return getattr(importlib.import_module(module), function)


@dataclasses.dataclass(frozen=True)
class Damage:
  """How a damaged artifact is named: `The <what> <path> is damaged: <problem>. Redo the
  <step> step with `<redo>` (<note>).`"""
  what: str
  step: str
  redo: str
  note: str = None

  def check(self, directory, digests):
    common.check_artifact(directory, digests, self.what, self.step, self.redo, self.note)


EXAMPLES_DAMAGE = Damage("Examples artifact", "ingest", "kerasvae ingest",
                         "it rewrites a damaged Examples artifact")


@dataclasses.dataclass(frozen=True)
class Input:
  """An upstream artifact a step reads.

  Args:
    name: the input's name (`examples`, `train`, `evaluate`): the path `execute` is given and
      the key of its metadata in `StepRun.upstream` and in the fingerprint table's `given`.
    step: the step that writes it (an earlier step of the table).
    fingerprinted: its metadata enters the fingerprint, so it is read before the reuse
      check; otherwise it is read after (a reused output needs no input).
    damage: how its files are checked against their digests before the body runs; None when
      the body checks them itself (a trained model, as it loads it).
  """
  name: str
  step: str
  fingerprinted: bool = True
  damage: Damage = None

  def read(self, path):
    """The input's metadata; a `StepError` (or the reader's error) when it is not finished."""
    if self.step == "ingest":
      from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
      return reader.read_metadata(path)
    return common.require_step(path, self.step, f"kerasvae {self.step}")


@dataclasses.dataclass(frozen=True)
class Reuse:
  """How a finished output with the same fingerprint is reused.

  Args:
    line: the printed line, `{output}` the reused output.
    damage: how the output is checked against the digests in its metadata.
    redo_damaged: a damaged output is redone (redoing is safe: the same inputs give the same
      output) with this printed line (`{output}`, `{problem}`) instead of refused.
    output: `"module:function"` `(run, metadata) -> path or None` of the output (None: no
      reuse); default the step directory.
    recover: `"module:function"` `(run) -> result or None`: an output the step finished
      without its metadata (killed in between), found by its fingerprint.
  """
  line: str
  damage: Damage
  redo_damaged: str = None
  output: str = None
  recover: str = None


@dataclasses.dataclass(frozen=True)
class Step:
  """One step of the pipeline.

  Args:
    name: its name: the step directory's name and the command (`kerasvae <name>`).
    inputs: its `Input`s, in the order they are checked.
    fingerprint: its `kerasvae.fingerprints.Fingerprint`.
    body: `"module:function"` `(run) -> result`, the step's own work.
    settings: the config blocks its metadata records (`config`), by attribute name.
    reuse: its `Reuse`, or None when it is never reused (validate: new data is checked
      anew) or its body reuses its output itself (ingest: the shared Examples artifact, reused
      by its content fingerprint, which only reading the source gives).
    given: `"module:function"` `(run) -> {name: value}`: what else its fingerprint reads
      (evaluate: the served baseline version).
  """
  name: str
  inputs: tuple
  fingerprint: object
  body: str
  settings: tuple
  reuse: Reuse = None
  given: str = None

  def config_of(self, config):
    """The config its metadata records: one block, or a mapping of blocks."""
    if len(self.settings) == 1:
      return getattr(config, self.settings[0])
    return {name: getattr(config, name) for name in self.settings}


class StepRun:
  """One run of a step: what the executor knows and what the body is given.

  Attributes:
    step: the `Step`.
    config: the `PipelineConfig`.
    directory: the step directory.
    paths: `{input name: path}` of the upstream artifacts.
    upstream: `{input name: metadata}` of those read so far.
    force: redo the step even when a finished output could be reused.
    given: what the command (`execute`'s `given`) and the step's `given` hook add.
    fingerprint: the step's fingerprint (ingest: set by its body).
    timer: the step's `common.Timer`.
  """

  def __init__(self, step, config, directory, paths, force):
    self.step = step
    self.config = config
    self.directory = Path(directory)
    self.paths = {name: Path(path) for name, path in paths.items()}
    self.upstream = {}
    self.force = force
    self.fingerprint = None
    self.given = {}
    self.timer = common.Timer()

  def metadata(self, inputs, outputs, timer=None, **extra):
    """The step's `metadata.json` content (`common.step_metadata`)."""
    timer = timer or self.timer
    return common.step_metadata(self.step.name, self.fingerprint,
                                self.step.config_of(self.config), inputs=inputs,
                                outputs=outputs, started=timer.started, seconds=timer.seconds,
                                **extra)

  def write_metadata(self, directory, inputs, outputs, timer=None, **extra):
    """Writes the step's `metadata.json` into `directory`: the output is complete."""
    artifacts.write_metadata(Path(directory) / artifacts.METADATA_FILE,
                             self.metadata(inputs, outputs, timer=timer, **extra))

  @contextlib.contextmanager
  def publishing(self):
    """A temporary directory that replaces the step directory, atomically, when the block
    ends without an error (`artifacts.atomic_directory`)."""
    with artifacts.atomic_directory(self.directory, overwrite=True) as tmp:
      yield tmp


def _reused(run):
  """The reused output of a finished run of the step with the same fingerprint, or None."""
  reuse = run.step.reuse
  if run.force or not common.reusable(run.directory, run.fingerprint):
    return None
  meta = artifacts.read_json(run.directory / artifacts.METADATA_FILE,
                             redo=f"kerasvae {run.step.name} --force")
  output = resolve(reuse.output)(run, meta) if reuse.output else run.directory
  if output is None:
    return None
  if reuse.redo_damaged:
    problem = artifacts.find_damage(output, meta.get("digests") or {})
    if problem is not None:
      print(reuse.redo_damaged.format(output=output, problem=problem), flush=True)
      return None
  else:
    reuse.damage.check(output, meta.get("digests"))
  logger.info("Reusing the %s output in %s", run.step.name, output)
  print(reuse.line.format(output=output))
  return output


def execute(step, config, directory, paths=None, force=False, given=None):
  """Runs `step` for `config` into `directory` (see the module docstring).

  Args:
    step: a `Step`.
    config: the `PipelineConfig`.
    directory: the step directory.
    paths: `{input name: path}` of its inputs.
    force: redo it even when a finished output could be reused.
    given: `{name: value}` the command gives the step besides the config (validate: the new
      data), in `StepRun.given` and its fingerprint's `given`.

  Returns:
    What the body returns, or the reused output.
  """
  run = StepRun(step, config, directory, paths or {}, force)
  run.given = dict(given or {})
  fingerprinted = [i for i in step.inputs if i.fingerprinted]
  for item in fingerprinted:
    run.upstream[item.name] = item.read(run.paths[item.name])
  if not step.fingerprint.by_body:
    if step.given:
      run.given.update(resolve(step.given)(run))
    run.fingerprint = step.fingerprint.compute(config=config, **run.upstream, **run.given)
  if step.reuse is not None:
    reused = _reused(run)
    if reused is not None:
      return reused
    if not force and step.reuse.recover:
      recovered = resolve(step.reuse.recover)(run)
      if recovered is not None:
        return recovered
  for item in step.inputs:
    if not item.fingerprinted:
      run.upstream[item.name] = item.read(run.paths[item.name])
    if item.damage is not None:
      item.damage.check(run.paths[item.name], run.upstream[item.name].get("digests"))
  run.timer = common.Timer()
  return resolve(step.body)(run)
