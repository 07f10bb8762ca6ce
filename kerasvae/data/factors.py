"""Ground-truth factor models: data sets whose images come from known, independent factors.

`GroundTruthData` is what the disentanglement metrics (`kerasvae.metrics.ground_truth`) read
from such a data set (dSprites, 3D Shapes, ...); `FactorGrid` is a small in-memory one, which a
data source also uses for a restricted grid (`kerasvae.data.sources.dsprites`); and
`as_random_state` turns a seed into the `np.random.RandomState` they sample with.
"""

import numbers
import typing

import numpy as np


@typing.runtime_checkable
class GroundTruthData(typing.Protocol):
  """What the disentanglement metrics need from a data set (`kerasvae.metrics.ground_truth`
  describes each member)."""

  factor_sizes: typing.Sequence[int]
  factor_names: typing.Sequence[str]
  latent_factor_indices: typing.Sequence[int]

  def sample_factors(self, num, random_state):
    """Returns int class indices `[num, F]`, each factor drawn uniformly."""

  def sample_observations_from_factors(self, factors, random_state):
    """Returns one float32 observation per row of `factors`: `[num, ...]`."""


class FactorGrid:
  """In-memory ground-truth data: every combination of factor classes, observed through a function.

  The factors are independent and uniform over their classes, as in dSprites.
  Observations are `observation_fn(factors)`, so a test can make the
  "images" anything from the factors themselves to a rendered picture.

  Args:
    factor_sizes: number of classes of each factor, e.g. `(1, 3, 6, 10)`.
    observation_fn: maps int factors `[num, F]` to observations `[num, ...]`.
      Defaults to each factor scaled to [0, 1], as float32 `[num, F]`.
    factor_names: one name per factor. Defaults to `factor_0`, `factor_1`, ...
    latent_factor_indices: the factors that vary. Defaults to every factor
      with more than one class.

  Example:

  >>> data = FactorGrid((1, 3, 6))
  >>> factors = data.sample_factors(4, np.random.RandomState(0))  # [4, 3]
  >>> data.sample_observations_from_factors(factors, None).shape
  (4, 3)
  """

  def __init__(self, factor_sizes, observation_fn=None, factor_names=None,
               latent_factor_indices=None):
    factor_sizes = tuple(int(s) for s in factor_sizes)
    if not factor_sizes or min(factor_sizes) < 1:
      raise ValueError("Expected a non-empty sequence of positive factor sizes. "
                       f"Received: factor_sizes={factor_sizes}")
    if factor_names is None:
      factor_names = tuple(f"factor_{i}" for i in range(len(factor_sizes)))
    factor_names = tuple(factor_names)
    if len(factor_names) != len(factor_sizes):
      raise ValueError(f"Expected one name per factor ({len(factor_sizes)}). "
                       f"Received: factor_names={factor_names}")
    if latent_factor_indices is None:
      latent_factor_indices = [i for i, s in enumerate(factor_sizes) if s > 1]
    latent_factor_indices = [int(i) for i in latent_factor_indices]
    if any(i < 0 or i >= len(factor_sizes) for i in latent_factor_indices):
      raise ValueError(f"Expected factor indices in [0, {len(factor_sizes)}). "
                       f"Received: latent_factor_indices={latent_factor_indices}")
    self.factor_sizes = factor_sizes
    self.factor_names = factor_names
    self.latent_factor_indices = latent_factor_indices
    self._observation_fn = observation_fn or self.scaled_factors

  def scaled_factors(self, factors):
    """Each factor's class index divided by its largest index: float32 `[num, F]` in [0, 1]."""
    scale = np.maximum(np.asarray(self.factor_sizes) - 1, 1)  # [F]
    return (np.asarray(factors) / scale).astype(np.float32)

  def sample_factors(self, num, random_state):
    """Returns int64 class indices `[num, F]`, each factor uniform over its classes."""
    random_state = as_random_state(random_state)
    return np.stack([random_state.randint(size, size=num) for size in self.factor_sizes],
                    axis=1).astype(np.int64)  # [num, F]

  def sample_observations_from_factors(self, factors, random_state):
    """Returns `observation_fn(factors)` as float32 `[num, ...]`; `random_state` is unused."""
    del random_state  # One observation per combination of factors.
    return np.asarray(self._observation_fn(np.asarray(factors)), dtype=np.float32)


def as_random_state(random_state):
  """Returns a `np.random.RandomState` from one or from an int seed."""
  if isinstance(random_state, np.random.RandomState):
    return random_state
  if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
    return np.random.RandomState(int(random_state))
  raise TypeError("Expected a numpy RandomState or an int seed. "
                  f"Received: random_state={random_state!r}")
