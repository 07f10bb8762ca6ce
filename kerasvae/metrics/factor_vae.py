"""The FactorVAE disentanglement score (Kim & Mnih, 2018).

Each latent dimension `d` is first scaled by its empirical standard deviation
`s_d` over random observations; dimensions with `s_d` below a threshold have
collapsed to the prior and are dropped. One vote is then made by choosing a
factor `k`, drawing `L` factor vectors that all share the value of factor `k`,
encoding them with the posterior mean and taking the active dimension of least
normalised variance:

    d* = argmin_d  Var_l[z_d(x_l)] / s_d^2.

A majority-vote classifier maps each dimension to the factor that voted for
it most often, `c(d) = argmax_k V[k, d]`, where `V` counts the training votes.
The score is that classifier's accuracy on held-out votes,

    score = Σ_d V_eval[c(d), d] / Σ_{k,d} V_eval[k, d].

Unlike the β-VAE score, a rotation of a disentangled code spreads each factor
over several dimensions and lowers this score.

Defaults follow `disentanglement_lib.evaluation.metrics.factor_vae` [2]
(10,000 observations for `s_d`, batches of 64, 10,000 training and 5,000
evaluation votes, variances with `ddof=1`). Dimensions with `s_d < 0.05` are
pruned, as the paper describes [1] and as disentanglement_lib's study
configuration does (`config/unsupervised_study_v1/metric_configs/
factor_vae_metric.gin` binds `prune_dims.threshold = 0.05`); the default of its
`_prune_dims` in the code, 0, prunes only dimensions with `s_d = 0`.

References:
  [1]: Kim & Mnih. Disentangling by Factorising. ICML 2018.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised
       Learning of Disentangled Representations. ICML 2019.
"""

import numpy as np

from kerasvae.metrics import ground_truth


def compute_factor_vae_score(ground_truth_data, representation_function, random_state, *,
                             batch_size=64, num_train=10000, num_eval=5000,
                             num_variance_estimate=10000, prune_threshold=0.05,
                             representation_batch_size=1024):
  """Computes the FactorVAE score of a representation.

  Args:
    ground_truth_data: an object following the ground-truth data protocol of
      `kerasvae.metrics.ground_truth`. Only the varied factors (listed in
      `latent_factor_indices`, size > 1) are fixed.
    representation_function: maps observations `[n, ...]` to posterior means
      `[n, D]` as a numpy array.
    random_state: a `np.random.RandomState` or an int seed.
    batch_size: `L`, the number of observations sharing a factor per vote.
    num_train: number of votes the majority-vote classifier is built from.
    num_eval: number of held-out votes it is scored on.
    num_variance_estimate: number of random observations for `s_d`.
    prune_threshold: dimensions whose `s_d` is below this are dropped.
    representation_batch_size: most observations passed to
      `representation_function` in one call (bounds memory).

  Returns:
    A dict with `factor_vae_score` (held-out accuracy in [0, 1]; 0 when every
    dimension collapsed), `factor_vae_train_accuracy`, `num_active_dims`,
    `active_dims` (indices of the kept dimensions), `dimension_to_factor`
    (for each active dimension, the index into `factor_names` the classifier
    assigns it), `factor_names` and `num_factors`.
  """
  ground_truth.check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                              num_variance_estimate=num_variance_estimate,
                              representation_batch_size=representation_batch_size)
  if batch_size < 2:
    raise ValueError(f"Expected a batch of at least 2 to estimate a variance. "
                     f"Received: batch_size={batch_size}")
  if num_variance_estimate < 2:
    raise ValueError("Expected at least 2 observations to estimate a variance. "
                     f"Received: num_variance_estimate={num_variance_estimate}")
  random_state = ground_truth.as_random_state(random_state)
  varied = ground_truth.varied_factor_indices(ground_truth_data)
  codes, _ = ground_truth.sample_codes_and_factors(
      ground_truth_data, representation_function, num_variance_estimate, random_state,
      batch_size=representation_batch_size)  # [N, D]
  global_variances = np.var(codes, axis=0, ddof=1)  # [D]
  active_dims = np.flatnonzero(np.sqrt(global_variances) >= prune_threshold)  # [A]
  result = {
      "factor_vae_score": 0.0,
      "factor_vae_train_accuracy": 0.0,
      "num_active_dims": int(len(active_dims)),
      "active_dims": active_dims.tolist(),
      "dimension_to_factor": [],
      "factor_names": ground_truth.factor_names_of(ground_truth_data, varied),
      "num_factors": len(varied),
  }
  if not len(active_dims):
    return result
  train_votes = sample_factor_vae_votes(
      ground_truth_data, representation_function, num_train, random_state,
      global_variances=global_variances, active_dims=active_dims, batch_size=batch_size,
      representation_batch_size=representation_batch_size)  # [K, A]
  eval_votes = sample_factor_vae_votes(
      ground_truth_data, representation_function, num_eval, random_state,
      global_variances=global_variances, active_dims=active_dims, batch_size=batch_size,
      representation_batch_size=representation_batch_size)  # [K, A]
  classifier = majority_vote_classifier(train_votes)  # [A]
  result.update({
      "factor_vae_score": majority_vote_accuracy(eval_votes, classifier),
      "factor_vae_train_accuracy": majority_vote_accuracy(train_votes, classifier),
      "dimension_to_factor": classifier.tolist(),
  })
  return result


def sample_factor_vae_votes(ground_truth_data, representation_function, num_votes, random_state,
                            *, global_variances, active_dims, batch_size,
                            representation_batch_size):
  """Samples `num_votes` votes and counts them: int64 `V[k, a]` `[K, A]`.

  `k` indexes the varied factors (`varied_factor_indices`) and `a` the active
  dimensions. Several votes are encoded per call, up to
  `representation_batch_size` rows.
  """
  varied = ground_truth.varied_factor_indices(ground_truth_data)
  votes = np.zeros((len(varied), len(active_dims)), dtype=np.int64)  # [K, A]
  votes_per_chunk = max(1, representation_batch_size // batch_size)
  for start in range(0, num_votes, votes_per_chunk):
    num = min(votes_per_chunk, num_votes - start)
    factor = random_state.randint(len(varied), size=num)  # [P]
    factors = np.asarray(ground_truth_data.sample_factors(num * batch_size, random_state))
    factors = factors.reshape(num, batch_size, -1).copy()  # [P, L, F]
    rows = np.arange(num)
    factors[rows, :, varied[factor]] = factors[rows, :1, varied[factor]]
    codes = ground_truth.represent_factors(
        ground_truth_data, representation_function, factors.reshape(num * batch_size, -1),
        random_state, batch_size=representation_batch_size).reshape(num, batch_size, -1)
    dimension = least_variance_dimension(codes, global_variances, active_dims)  # [P]
    np.add.at(votes, (factor, dimension), 1)
  return votes


def least_variance_dimension(codes, global_variances, active_dims):
  """For each batch, the active dimension of least normalised variance.

  Args:
    codes: `[P, L, D]`, `P` batches of `L` codes.
    global_variances: `s_d^2`, `[D]`.
    active_dims: int indices of the kept dimensions, `[A]`.

  Returns:
    int64 `[P]`: positions in `active_dims` (not dimension indices) of
    `argmin_a Var_l[z_a] / s_a^2`; ties go to the first.
  """
  local_variances = np.var(codes[..., active_dims], axis=1, ddof=1)  # [P, A]
  return np.argmin(local_variances / global_variances[active_dims], axis=-1)


def majority_vote_classifier(votes):
  """Maps each dimension to the factor with most votes: `c(a) = argmax_k V[k, a]`, `[A]`.

  Ties go to the lowest factor index, as do dimensions without votes (which
  then add nothing to the accuracy).
  """
  return np.argmax(votes, axis=0)


def majority_vote_accuracy(votes, classifier):
  """Fraction of votes `V [K, A]` whose factor is the one `classifier [A]` assigns their dimension."""
  total = np.sum(votes)
  if total == 0:
    raise ValueError("Expected at least one vote. Received: votes with sum 0")
  return float(np.sum(votes[classifier, np.arange(votes.shape[1])]) / total)
