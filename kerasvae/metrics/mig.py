"""The Mutual Information Gap (Chen et al., 2018).

For each varied factor `v_k`, the MIG is the gap between the two latent
dimensions that carry most information about it, normalised by its entropy:

    MIG = (1 / K) Σ_k  (I(z_{j_k}; v_k) - max_{j ≠ j_k} I(z_j; v_k)) / H(v_k),
    j_k = argmax_j I(z_j; v_k).

It is 1 when each factor is captured by exactly one dimension and 0 when the
best dimension has a rival (for example after a rotation) or none is
informative. As in `disentanglement_lib.evaluation.metrics.mig` [2], the
mutual information is the discrete (plug-in) estimate on a sample: each
posterior mean `z_j` is cut into `num_bins` equal-width bins over its sampled
range, and `I` and `H` are computed by `sklearn.metrics.mutual_info_score`
in nats. With few samples the plug-in estimate is biased upwards by about
`(num_bins - 1)(|v_k| - 1) / (2N)`, so uninformative codes score slightly
above 0. A factor with more than `num_bins` classes cannot reach a gap of 1.

References:
  [1]: Chen et al. Isolating Sources of Disentanglement in Variational
       Autoencoders. NeurIPS 2018.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised
       Learning of Disentangled Representations. ICML 2019.
"""

import numpy as np
from sklearn import metrics as sklearn_metrics

from kerasvae.metrics import ground_truth


def compute_mig(ground_truth_data, representation_function, random_state, *, num_train=10000,
                num_bins=20, batch_size=256):
  """Computes the MIG of a representation on `num_train` random observations.

  Args:
    ground_truth_data: an object following the ground-truth data protocol of
      `kerasvae.metrics.ground_truth`. Only the varied factors (listed in
      `latent_factor_indices`, size > 1) are scored.
    representation_function: maps observations `[n, ...]` to posterior means
      `[n, D]` as a numpy array.
    random_state: a `np.random.RandomState` or an int seed.
    num_train: number of observations the information is estimated from.
    num_bins: number of equal-width bins each latent dimension is cut into.
    batch_size: most observations passed to `representation_function` in one
      call (bounds memory).

  Returns:
    The dict of `mig_from_codes` (keys `mig`, `mig_per_factor`,
    `mutual_information`, `factor_entropy`) plus `factor_names`, naming the
    entries of the per-factor lists.
  """
  ground_truth.check_positive(num_train=num_train, num_bins=num_bins, batch_size=batch_size)
  return ground_truth.score_sampled_codes(
      ground_truth_data, representation_function, random_state,
      lambda codes, factors: mig_from_codes(codes, factors, num_bins=num_bins),
      num_train=num_train, batch_size=batch_size)


def mig_from_codes(codes, factors, *, num_bins=20):
  """The MIG of codes `[N, D]` against discrete factors `[N, K]`.

  Args:
    codes: continuous codes (posterior means), `[N, D]`.
    factors: discrete factor values, `[N, K]`.
    num_bins: number of equal-width bins each code dimension is cut into.

  Returns:
    A dict with `mig` (the mean over factors), `mig_per_factor` (`[K]`, the
    normalised gap of each factor), `mutual_information` (`[D][K]`, nats) and
    `factor_entropy` (`[K]`, nats). With a single code dimension the second
    best information is taken as 0.

  Raises:
    ValueError: if the shapes disagree or a factor is constant in the sample
      (its entropy is 0 and its gap undefined).
  """
  codes, factors = ground_truth.check_codes_and_factors(codes, factors)
  mutual_information = discrete_mutual_information(histogram_discretize(codes, num_bins),
                                                   factors)  # [D, K]
  entropy = discrete_entropy(factors)  # [K]
  if np.any(entropy <= 0):
    raise ValueError("Expected every factor to vary in the sample. Received: constant factors "
                     f"at {np.flatnonzero(entropy <= 0).tolist()}; increase num_train")
  gap = ground_truth.top_two_gap(mutual_information) / entropy  # [K]
  return {
      "mig": float(np.mean(gap)),
      "mig_per_factor": gap.tolist(),
      "mutual_information": mutual_information.tolist(),
      "factor_entropy": entropy.tolist(),
  }


def histogram_discretize(codes, num_bins):
  """Bins each column of `codes [N, D]` into `num_bins` equal-width bins over its range.

  Returns:
    int64 bin indices in `[1, num_bins]`, `[N, D]`. The maximum falls in the
    last bin, as `np.histogram` counts it there. A constant column is one bin.
  """
  codes = np.asarray(codes)
  binned = np.zeros(codes.shape, dtype=np.int64)
  for j in range(codes.shape[1]):
    edges = np.histogram_bin_edges(codes[:, j], bins=num_bins)  # [num_bins + 1]
    binned[:, j] = np.digitize(codes[:, j], edges[:-1])
  return binned


def discrete_mutual_information(discrete_codes, factors):
  """Plug-in mutual information `I(z_j; v_k)` in nats between columns: `[D, K]`."""
  return np.array([[sklearn_metrics.mutual_info_score(factors[:, k], discrete_codes[:, j])
                    for k in range(factors.shape[1])]
                   for j in range(discrete_codes.shape[1])], dtype=np.float64).reshape(
                       discrete_codes.shape[1], factors.shape[1])


def discrete_entropy(factors):
  """Plug-in entropy `H(v_k) = I(v_k; v_k)` in nats of each column of `factors [N, K]`: `[K]`."""
  return np.array([sklearn_metrics.mutual_info_score(factors[:, k], factors[:, k])
                   for k in range(factors.shape[1])], dtype=np.float64)
