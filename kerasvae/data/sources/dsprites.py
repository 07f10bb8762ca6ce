"""The `dsprites` source: the built-in dSprites generator, the ground truth of the
disentanglement metrics (`DSpritesSource.ground_truth`)."""

import dataclasses
from typing import Optional

import numpy as np

from kerasvae.artifacts import fingerprint
from kerasvae.config import ConfigError, field, show
from kerasvae.data import dsprites as dsprites_lib
from kerasvae.data.factors import FactorGrid
from kerasvae.data.sources.base import CHUNK_SIZE, Source


@dataclasses.dataclass
class DSpritesConfig:
  """The built-in dSprites generator (`kerasvae.data.dsprites.DSprites`).

  Each factor can be restricted to a list of class indices (e.g.
  `shapes: [square, heart]`, `pos_x: [0, 1, 2, 3]`); `num_examples` images are
  then drawn without replacement from the restricted grid with `seed`, and
  written in the grid's original order.
  """
  num_examples: Optional[int] = field(
      20000, range=(1, None), help="Images drawn from the grid; null: the whole (restricted) grid.")
  seed: int = field(0, help="Seed of the random subset.")
  shapes: Optional[list[str]] = field(None, help="Subset of square, ellipse, heart; null: all.")
  scales: Optional[list[int]] = field(None, range=(0, 5), help="Scale classes 0..5; null: all.")
  orientations: Optional[list[int]] = field(
      None, range=(0, 39), help="Orientation classes 0..39; null: all.")
  pos_x: Optional[list[int]] = field(None, range=(0, 31), help="posX classes 0..31; null: all.")
  pos_y: Optional[list[int]] = field(None, range=(0, 31), help="posY classes 0..31; null: all.")
  label: Optional[str] = field(
      "shape", choices=("shape",), help="Factor written as the integer label, or null.")

  def validate(self):
    for name in self.shapes or ():
      if name not in dsprites_lib.SHAPE_NAMES:
        raise ConfigError(f"shapes: expected names among {list(dsprites_lib.SHAPE_NAMES)}. "
                          f"Received: shapes={show(self.shapes)}")
    for name in ("shapes", "scales", "orientations", "pos_x", "pos_y"):
      values = getattr(self, name)
      if values is not None and not values:
        raise ConfigError(f"{name}: expected a non-empty list or null. Received: {name}=[]")


class DSpritesSource(Source):
  """A seeded subset of the built-in dSprites grid, in a seeded random order.

  Not the grid's order: a split larger than the reader's in-memory budget is shuffled through
  a buffer of 16,384 examples, a window of 2 % of the full grid in which, in grid order, every
  image has the same shape and scale; an epoch then visits the shapes one after another, and
  the model forgets each while it trains on the next.

  The index of the chosen examples is held (int64 [N, 6]: 35 MB for the whole grid of 737,280,
  the most there is); images are rendered a chunk at a time.
  """
  name = "dsprites"
  settings = DSpritesConfig
  block_in_every_config = True
  has_ground_truth = True

  @classmethod
  def ground_truth(cls, source_config):
    """The grid the data was drawn from: `DSprites`, or for dSprites restricted to some factor
    classes (`ingest.data.dsprites.scales: [5]`, ...) a `FactorGrid` of the same restricted
    grid the model was trained on, its factors indices into the allowed classes; a factor with
    a single class is not scored."""
    data = dsprites_lib.DSprites()
    c = source_config or {}
    allowed = dsprites_lib.allowed_classes(c.get("shapes"), c.get("scales"),
                                           c.get("orientations"), c.get("pos_x"), c.get("pos_y"))
    if all(len(a) == size for a, size in zip(allowed, data.factor_sizes)):
      return data

    def observe(local):  # [N, 6] indices into `allowed` -> float32 [N, 64, 64, 1] in {0, 1}
      full = np.stack([a[local[:, i]] for i, a in enumerate(allowed)], axis=1)
      return data.render(full).astype(np.float32)

    return FactorGrid([len(a) for a in allowed], observe, factor_names=data.factor_names)

  @classmethod
  def artifact_identity(cls):
    """The renderer's version: after a change of the renderer a run writes a new artifact
    instead of meeting the old one (which ingest would refuse to reuse, its content fingerprint
    differing)."""
    return {"dsprites_renderer": dsprites_lib.RENDERER_VERSION}

  def __init__(self, config):
    super().__init__(config)
    self.data = dsprites_lib.DSprites()
    self.factor_names = list(self.data.factor_names)
    self.label_names = list(self.data.shape_names) if config.label else None
    self.location = "dsprites"
    self.allowed = dsprites_lib.allowed_classes(config.shapes, config.scales,
                                                config.orientations, config.pos_x, config.pos_y)
    total = int(np.prod([len(a) for a in self.allowed]))
    if config.num_examples is not None and config.num_examples > total:
      raise ConfigError(f"dsprites.num_examples: expected at most {total}, the size of the "
                        f"(restricted) grid. Received: num_examples={config.num_examples}")
    self.total = total

  def content_hash(self):
    return fingerprint({"renderer": dsprites_lib.RENDERER_VERSION, "order": "permuted"})

  def classes(self):
    """int64 [N, 6] classes of the chosen subset, in a random order fixed by the seed."""
    c = self.config
    rng = np.random.RandomState(c.seed)
    if c.num_examples is not None and c.num_examples < self.total:
      sub = rng.choice(self.total, c.num_examples, replace=False)  # already in random order
    else:
      sub = rng.permutation(self.total)
    local = np.unravel_index(sub, [len(a) for a in self.allowed])
    return np.stack([a[i] for a, i in zip(self.allowed, local)], axis=1).astype(np.int64)

  def chunks(self, use_source_splits=False):
    classes = self.classes()  # [N, 6]
    for start in range(0, classes.shape[0], CHUNK_SIZE):
      part = classes[start:start + CHUNK_SIZE]
      chunk = {"images": self.data.render(part) * np.uint8(255),
               "keys": self.data.index_of(part),
               "factors": self.data.factor_values(part).astype(np.float32),
               "factor_classes": part}
      if self.config.label:
        chunk["labels"] = part[:, 1].copy()
      yield None, chunk
