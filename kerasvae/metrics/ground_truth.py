"""Ground-truth data: the protocol the disentanglement metrics read, and their shared helpers.

The disentanglement metrics ([1], [2], [3]) need a data set whose images were
generated from known, independent factors of variation (dSprites, 3D Shapes,
...) and the posterior mean of an encoder. This module is the only place that
touches either: it samples factors, renders them to observations and encodes
them in bounded batches. The metric modules receive the resulting arrays and do
only arithmetic on them.

A ground-truth data set is any object with:

  * `factor_sizes`: tuple of ints, the number of classes of each factor,
    e.g. `(1, 3, 6, 40, 32, 32)` for dSprites.
  * `factor_names`: tuple of strings, one per factor.
  * `latent_factor_indices`: indices of the factors that vary, e.g.
    `[1, 2, 3, 4, 5]`. Factors of size 1 are ignored by the metrics even if
    they are listed.
  * `sample_factors(num, random_state) -> int array [num, F]`: class indices
    of all `F` factors, each drawn uniformly.
  * `sample_observations_from_factors(factors, random_state) -> float32
    array [num, ...]`: one observation per row of `factors`.

`FactorGrid` is a small in-memory implementation for tests and examples. The protocol,
`FactorGrid` and `as_random_state` live in `kerasvae.data.factors` (a data source builds its
ground truth with them, and data sits below the metrics); they are importable from here too.

A representation function maps observations `[num, ...]` to the posterior
means `[num, D]` as a numpy array.

References:
  [1]: Higgins et al. beta-VAE: Learning Basic Visual Concepts with a
       Constrained Variational Framework. ICLR 2017.
  [2]: Kim & Mnih. Disentangling by Factorising. ICML 2018.
  [3]: Chen et al. Isolating Sources of Disentanglement in Variational
       Autoencoders. NeurIPS 2018.
"""

import contextlib
import numbers
import warnings

import numpy as np

from kerasvae.data.factors import FactorGrid  # noqa: F401  # pylint: disable=unused-import
from kerasvae.data.factors import GroundTruthData  # noqa: F401  # pylint: disable=unused-import
from kerasvae.data.factors import as_random_state


def varied_factor_indices(ground_truth_data):
  """Indices of the factors the metrics score: listed in `latent_factor_indices` with size > 1.

  Args:
    ground_truth_data: an object following the ground-truth data protocol.

  Returns:
    int64 array `[K]` of factor indices, in the order of `latent_factor_indices`.

  Raises:
    TypeError: if `ground_truth_data` lacks part of the protocol.
    ValueError: if fewer than two factors vary, or an index is out of range.
  """
  missing = [name for name in ("factor_sizes", "latent_factor_indices", "sample_factors",
                               "sample_observations_from_factors")
             if not hasattr(ground_truth_data, name)]
  if missing:
    raise TypeError("Expected ground-truth data with factor_sizes, latent_factor_indices, "
                    "sample_factors and sample_observations_from_factors. "
                    f"Received: ground_truth_data={type(ground_truth_data).__name__} "
                    f"without {', '.join(missing)}")
  sizes = tuple(int(s) for s in ground_truth_data.factor_sizes)
  indices = [int(i) for i in ground_truth_data.latent_factor_indices]
  if any(i < 0 or i >= len(sizes) for i in indices):
    raise ValueError(f"Expected latent factor indices in [0, {len(sizes)}). "
                     f"Received: latent_factor_indices={indices}")
  varied = [i for i in indices if sizes[i] > 1]
  # A score over a single factor is trivially perfect: say so instead of returning 1.0.
  if len(varied) < 2:
    raise ValueError("Expected at least two latent factors with more than one class. "
                     f"Received: factor_sizes={sizes}, latent_factor_indices={indices}")
  return np.asarray(varied, dtype=np.int64)


def factor_names_of(ground_truth_data, factor_indices):
  """Names of the given factors, or `factor_<i>` when the data set has no `factor_names`."""
  names = getattr(ground_truth_data, "factor_names", None)
  if names is None:
    return [f"factor_{i}" for i in factor_indices]
  return [str(names[i]) for i in factor_indices]


def represent(representation_function, observations, *, batch_size):
  """Applies `representation_function` to `observations` in batches of at most `batch_size`.

  Args:
    representation_function: maps observations `[n, ...]` to codes `[n, D]`.
    observations: array `[num, ...]`.
    batch_size: largest number of rows passed in one call.

  Returns:
    float64 codes `[num, D]`.

  Raises:
    ValueError: if the function returns the wrong number of rows, not a
      matrix, or non-finite values.
  """
  if batch_size < 1:
    raise ValueError(f"Expected a positive batch size. Received: batch_size={batch_size}")
  codes = []
  for start in range(0, len(observations), batch_size):
    batch = observations[start:start + batch_size]
    code = np.asarray(representation_function(batch), dtype=np.float64)  # [b, D]
    if code.ndim != 2 or code.shape[0] != len(batch):
      raise ValueError(f"Expected the representation function to return [{len(batch)}, D] "
                       f"for {len(batch)} observations. Received: shape={code.shape}")
    if not np.all(np.isfinite(code)):
      raise ValueError("Expected finite representations. Received: "
                       f"{int(np.sum(~np.isfinite(code)))} non-finite values")
    codes.append(code)
  return np.concatenate(codes, axis=0)  # [num, D]


def represent_factors(ground_truth_data, representation_function, factors, random_state, *,
                      batch_size):
  """Renders `factors` to observations and encodes them, `batch_size` rows at a time.

  Observations are made one batch at a time so that memory stays bounded by
  `batch_size` images whatever the number of factors.

  Args:
    ground_truth_data: an object following the ground-truth data protocol.
    representation_function: maps observations `[n, ...]` to codes `[n, D]`.
    factors: int class indices `[num, F]`.
    random_state: a `np.random.RandomState`, passed to the data set.
    batch_size: rows per call to the data set and to the representation.

  Returns:
    float64 codes `[num, D]`.
  """
  codes = []
  for start in range(0, len(factors), batch_size):
    observations = ground_truth_data.sample_observations_from_factors(
        factors[start:start + batch_size], random_state)  # [b, ...]
    codes.append(represent(representation_function, observations, batch_size=batch_size))
  return np.concatenate(codes, axis=0)  # [num, D]


class EncodedGrid:
  """Ground-truth data whose observations are grid indices, each combination encoded once.

  At disentanglement_lib's sizes the three scores draw 2.9 million dSprites
  images (β-VAE score 1.92 million, FactorVAE score 970,000, MIG 10,000) from a
  grid of 737,280 combinations: about 723,000 distinct ones, the rest repeats
  (the FactorVAE score's variance estimate and MIG, with the same seed, even
  draw the same 10,000). This wrapper renders and encodes each combination the
  first time it is drawn and looks its code up afterwards.

  It follows the ground-truth data protocol with the wrapped data set's
  factors and draws: `sample_factors` is the wrapped one, so a seed draws the
  same factors, and an "observation" is the combination's index into the
  factor grid (`np.ravel_multi_index`), int64 `[num]`. `represent` is the
  matching representation function: grid indices `[n]` to codes `[n, D]`.
  The metrics run unchanged on `(grid, grid.represent)`.

  Only for deterministic observations and representations: the wrapped data
  set's `sample_observations_from_factors` must ignore its random state (the
  dSprites renderer and `FactorGrid` do) and `representation_function` must be
  a function of the observation (a posterior mean, not a sample). The scores
  are then those of the wrapped data and representation function, exactly so
  when the function's output for an image does not depend on the other images
  of its batch (as TensorFlow's CPU kernels without XLA give here), otherwise
  up to float rounding.

  Args:
    ground_truth_data: an object following the ground-truth data protocol,
      with at most `MAX_COMBINATIONS` factor combinations.
    representation_function: maps observations `[n, ...]` to codes `[n, D]`.
    batch_size: most images rendered and passed to `representation_function`
      at once.

  Attributes:
    num_combinations: the size of the factor grid, `prod(factor_sizes)`.
    num_encoded: combinations rendered and encoded so far.

  Example:

  >>> grid = EncodedGrid(FactorGrid((1, 3, 6)), lambda x: 2 * x)
  >>> factors = grid.sample_factors(4, np.random.RandomState(0))  # [4, 3]
  >>> grid.represent(grid.sample_observations_from_factors(factors, None)).shape
  (4, 3)
  """

  MAX_COMBINATIONS = 2 ** 27  # a 1 GiB table of code positions

  def __init__(self, ground_truth_data, representation_function, *, batch_size=1024):
    varied_factor_indices(ground_truth_data)  # checks the protocol
    check_positive(batch_size=batch_size)
    self.factor_sizes = tuple(int(s) for s in ground_truth_data.factor_sizes)
    num_combinations = int(np.prod(self.factor_sizes, dtype=np.float64))
    if num_combinations > self.MAX_COMBINATIONS:
      raise ValueError(f"Expected at most {self.MAX_COMBINATIONS:,} factor combinations. "
                       f"Received: factor_sizes={self.factor_sizes} ({num_combinations:,})")
    self.num_combinations = num_combinations
    self.factor_names = tuple(factor_names_of(ground_truth_data, range(len(self.factor_sizes))))
    self.latent_factor_indices = [int(i) for i in ground_truth_data.latent_factor_indices]
    self._data = ground_truth_data
    self._representation_function = representation_function
    self._batch_size = batch_size
    self._position = np.full(num_combinations, -1, np.int64)  # [C] row of its code, -1: none yet
    self._codes = None  # [capacity, D] float64, the first num_encoded rows filled
    self.num_encoded = 0

  def sample_factors(self, num, random_state):
    """The wrapped data set's factors: int class indices `[num, F]`."""
    return self._data.sample_factors(num, random_state)

  def sample_observations_from_factors(self, factors, random_state):
    """The grid indices of `factors [num, F]`: int64 `[num]`; `random_state` is unused."""
    del random_state  # Images are rendered when first encoded, without one.
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(self.factor_sizes):
      raise ValueError(f"Expected factors of shape [num, {len(self.factor_sizes)}]. "
                       f"Received: factors.shape={factors.shape}")
    return np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)

  def represent(self, indices):
    """Codes `[n, D]` (float64) of grid indices `[n]`, encoding those not seen before."""
    indices = np.asarray(indices, dtype=np.int64)  # [n]
    new = np.unique(indices[self._position[indices] < 0])  # [m], sorted
    if new.size:
      factors = np.stack(np.unravel_index(new, self.factor_sizes), axis=1)  # [m, F]
      codes = represent_factors(self._data, self._representation_function, factors, None,
                                batch_size=self._batch_size)  # [m, D]
      self._store(new, codes)
    return self._codes[self._position[indices]]  # [n, D]

  def _store(self, indices, codes):
    end = self.num_encoded + len(codes)
    if self._codes is None:
      self._codes = np.empty((max(end, 4096), codes.shape[1]), np.float64)
    elif codes.shape[1] != self._codes.shape[1]:
      raise ValueError(f"Expected codes of {self._codes.shape[1]} dimensions, as before. "
                       f"Received: shape={codes.shape}")
    if end > len(self._codes):  # grow geometrically: amortised O(1) copies per code
      grown = np.empty((max(end, 2 * len(self._codes)), self._codes.shape[1]), np.float64)
      grown[:self.num_encoded] = self._codes[:self.num_encoded]
      self._codes = grown
    self._codes[self.num_encoded:end] = codes
    self._position[indices] = np.arange(self.num_encoded, end)
    self.num_encoded = end


def sample_codes_and_factors(ground_truth_data, representation_function, num_points,
                             random_state, *, batch_size):
  """Draws `num_points` random observations and returns their codes and varied factors.

  Args:
    ground_truth_data: an object following the ground-truth data protocol.
    representation_function: maps observations `[n, ...]` to codes `[n, D]`.
    num_points: number of observations.
    random_state: a `np.random.RandomState` or an int seed.
    batch_size: rows per call to the data set and to the representation.

  Returns:
    `(codes, factors)`: float64 codes `[num_points, D]` and the int class
    indices `[num_points, K]` of the `K` varied factors (see
    `varied_factor_indices`), in that order.
  """
  random_state = as_random_state(random_state)
  varied = varied_factor_indices(ground_truth_data)
  factors = np.asarray(ground_truth_data.sample_factors(num_points, random_state))  # [N, F]
  codes = represent_factors(ground_truth_data, representation_function, factors, random_state,
                            batch_size=batch_size)  # [N, D]
  return codes, factors[:, varied]



def score_sampled_codes(ground_truth_data, representation_function, random_state, from_codes, *,
                        num_train, num_eval=None, batch_size):
  """Scores the codes of random observations: the body MIG, DCI and SAP share.

  Draws `num_train` observations (then, with `num_eval`, `num_eval` held-out
  ones, from the same random state), encodes them and passes the codes and
  varied factors to `from_codes`; the result names the factors.

  Args:
    ground_truth_data: an object following the ground-truth data protocol.
    representation_function: maps observations `[n, ...]` to codes `[n, D]`.
    random_state: a `np.random.RandomState` or an int seed; draws the points,
      then (with `num_eval`) seeds `from_codes`' classifiers.
    from_codes: the metric's arithmetic: `from_codes(codes [N, D], factors
      [N, K])` without `num_eval`; with it, `from_codes(train_codes,
      train_factors, eval_codes, eval_factors, random_state)`. Returns a dict.
    num_train: number of observations drawn first.
    num_eval: number of held-out observations drawn after them; None: none.
    batch_size: rows per call to the data set and to the representation.

  Returns:
    The dict of `from_codes` plus `factor_names`, naming the entries of its
    per-factor lists.
  """
  random_state = as_random_state(random_state)
  varied = varied_factor_indices(ground_truth_data)
  train = sample_codes_and_factors(ground_truth_data, representation_function, num_train,
                                   random_state, batch_size=batch_size)  # [N, D], [N, K]
  if num_eval is None:
    result = from_codes(*train)
  else:
    held_out = sample_codes_and_factors(ground_truth_data, representation_function, num_eval,
                                        random_state, batch_size=batch_size)  # [M, D], [M, K]
    result = from_codes(*train, *held_out, random_state)
  result["factor_names"] = factor_names_of(ground_truth_data, varied)
  return result

def check_positive(**values):
  """Raises ValueError naming the first argument that is not a positive integer."""
  for name, value in values.items():
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
      raise ValueError(f"Expected a positive integer. Received: {name}={value!r}")


def check_codes_and_factors(codes, factors):
  """Returns `codes [N, D]` and `factors [N, K]` as arrays; ValueError if the shapes disagree."""
  codes = np.asarray(codes)
  factors = np.asarray(factors)
  if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
    raise ValueError("Expected codes [N, D] and factors [N, K] with the same N. "
                     f"Received: codes.shape={codes.shape}, factors.shape={factors.shape}")
  return codes, factors


def check_train_and_eval(train_codes, train_factors, eval_codes, eval_factors):
  """`check_codes_and_factors` on both sets, which must also agree on `D` and `K`.

  Returns:
    The four arguments as arrays, in order.
  """
  train_codes, train_factors = check_codes_and_factors(train_codes, train_factors)
  eval_codes, eval_factors = check_codes_and_factors(eval_codes, eval_factors)
  if (eval_codes.shape[1], eval_factors.shape[1]) != (train_codes.shape[1],
                                                       train_factors.shape[1]):
    raise ValueError("Expected training and held-out points with the same D and K. Received: "
                     f"train_codes.shape={train_codes.shape}, "
                     f"train_factors.shape={train_factors.shape}, "
                     f"eval_codes.shape={eval_codes.shape}, "
                     f"eval_factors.shape={eval_factors.shape}")
  return train_codes, train_factors, eval_codes, eval_factors


@contextlib.contextmanager
def classifying_factors():
  """Silences scikit-learn's guess that many classes among few points are a regression target.

  The factors are class indices by the protocol; with small `num_train` (tests, quick runs)
  most of dSprites' 40 orientations appear once or twice and scikit-learn warns on each fit.
  """
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%",
                            category=UserWarning)
    yield


def check_several_classes(labels, factor):
  """Raises ValueError when `labels` of factor `factor` hold one class: nothing to classify."""
  classes = np.unique(labels)
  if len(classes) < 2:
    raise ValueError(f"Expected training points with at least two classes of factor {factor}. "
                     f"Received: classes={classes.tolist()}; increase num_train")


def top_two_gap(scores):
  """Each column's largest entry minus its second largest (0 when there is one row).

  Args:
    scores: `[D, K]`, e.g. the information or predictability of code `i` for
      factor `k`.

  Returns:
    float64 `[K]`.
  """
  scores = np.asarray(scores, dtype=np.float64)  # [D, K]
  top_two = -np.sort(-scores, axis=0)[:2]  # [2 or 1, K]
  second = top_two[1] if len(top_two) > 1 else np.zeros_like(top_two[0])
  return top_two[0] - second
