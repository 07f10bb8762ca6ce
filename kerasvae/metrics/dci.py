"""Disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

A classifier per varied factor `v_k` predicts the factor's class from the
posterior mean `z` `[D]`; its feature importances form the column `R[:, k]` of
an importance matrix `R` `[D, K]` (code `i`, factor `k`). From `R`:

    P_ik = R_ik / Σ_k' R_ik'           (code i's importance spread over factors)
    D_i  = 1 - H_K(P_i.),  H_K(p) = -Σ_k p_k log_K p_k
    ρ_i  = Σ_k R_ik / Σ_ik' R_ik'      (code i's share of all importance)
    disentanglement = Σ_i ρ_i D_i

    P̃_ik = R_ik / Σ_i' R_i'k          (factor k's importance spread over codes)
    C_k  = 1 - H_D(P̃_.k)
    completeness = Σ_k ρ̃_k C_k,  ρ̃_k = Σ_i R_ik / Σ_i'k' R_i'k'

    informativeness = (1 / K) Σ_k accuracy of factor k's classifier on held-out points.

`D_i` is 1 when code `i` matters for one factor only and 0 when it matters
equally for all; `C_k` is 1 when one code carries factor `k` and 0 when every
code carries an equal part. A code of zero importance has `ρ_i = 0` and no
weight; its `D_i` is reported as 0 (a uniform `P_i.`). With one code, `H_1` of
a single outcome is 0 and every `C_k` is 1.

Follows `disentanglement_lib.evaluation.metrics.dci` [2]: the classifier of
each factor is scikit-learn's `GradientBoostingClassifier` with its defaults
(100 stages of depth-3 trees, one tree per class and stage), `R` its impurity
based `feature_importances_`, fit on 10,000 points and scored on 5,000 new ones;
informativeness is accuracy (not the paper's prediction error). The overall
completeness is weighted by each factor's share `ρ̃_k`, as there; the
classifiers' importances sum to 1 for each factor, so this is the plain mean of
`C_k` unless a classifier made no split at all (its factor then has weight 0).
disentanglement_lib adds 1e-11 to `R` before the entropies instead of treating
zero rows and `0 log 0` exactly; the two differ by about 1e-9.

References:
  [1]: Eastwood & Williams. A Framework for the Quantitative Evaluation of
       Disentangled Representations. ICLR 2018.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised
       Learning of Disentangled Representations. ICML 2019.
"""

import numpy as np
from sklearn import ensemble

from kerasvae.metrics import ground_truth


def compute_dci(ground_truth_data, representation_function, random_state, *, num_train=10000,
                num_eval=5000, batch_size=256):
  """Computes DCI of a representation: a classifier per factor on `num_train` random observations.

  Args:
    ground_truth_data: an object following the ground-truth data protocol of
      `kerasvae.metrics.ground_truth`. Only the varied factors (listed in
      `latent_factor_indices`, size > 1) are scored.
    representation_function: maps observations `[n, ...]` to posterior means
      `[n, D]` as a numpy array.
    random_state: a `np.random.RandomState` or an int seed; draws the
      training points, then the held-out points, then seeds the classifiers.
    num_train: number of observations the classifiers are fit on.
    num_eval: number of held-out observations they are scored on.
    batch_size: most observations passed to `representation_function` in one
      call (bounds memory).

  Returns:
    The dict of `dci_from_codes` plus `factor_names`, naming the entries of the
    per-factor lists.

  Example:

  >>> data = ground_truth.FactorGrid((3, 4))
  >>> result = compute_dci(data, lambda x: x, 0, num_train=200, num_eval=100)
  >>> round(result["dci_disentanglement"], 2), result["dci_informativeness"]
  (1.0, 1.0)
  """
  ground_truth.check_positive(num_train=num_train, num_eval=num_eval, batch_size=batch_size)
  return ground_truth.score_sampled_codes(
      ground_truth_data, representation_function, random_state, dci_from_codes, num_train=num_train,
      num_eval=num_eval, batch_size=batch_size)


def dci_from_codes(train_codes, train_factors, eval_codes, eval_factors, random_state):
  """DCI of codes against discrete factors, from a gradient-boosted classifier per factor.

  Args:
    train_codes: `[N, D]`.
    train_factors: int class indices `[N, K]`.
    eval_codes: `[M, D]`.
    eval_factors: int class indices `[M, K]`.
    random_state: a `np.random.RandomState` or an int seed for the classifiers.

  Returns:
    A dict with `dci_disentanglement`, `dci_completeness`,
    `dci_informativeness` (mean held-out accuracy) and
    `dci_informativeness_train` (mean training accuracy), each in [0, 1]; and
    per code `dci_disentanglement_per_code` (`D_i`, `[D]`) and
    `dci_code_importance` (`ρ_i`, `[D]`); per factor
    `dci_completeness_per_factor` (`C_k`, `[K]`) and
    `dci_informativeness_per_factor` (held-out accuracy, `[K]`); and
    `dci_importance_matrix` (`R`, `[D][K]`).
  """
  importance = gbt_importance(train_codes, train_factors, eval_codes, eval_factors, random_state)
  result = dci_from_importance(importance["importance_matrix"])
  result.update({
      "dci_informativeness": float(np.mean(importance["eval_accuracy"])),
      "dci_informativeness_train": float(np.mean(importance["train_accuracy"])),
      "dci_informativeness_per_factor": importance["eval_accuracy"].tolist(),
      "dci_importance_matrix": importance["importance_matrix"].tolist(),
  })
  return result


def gbt_importance(train_codes, train_factors, eval_codes, eval_factors, random_state):
  """Fits a gradient-boosted classifier per factor; returns their importances and accuracies.

  Args:
    train_codes: `[N, D]`.
    train_factors: int class indices `[N, K]`.
    eval_codes: `[M, D]`.
    eval_factors: int class indices `[M, K]`.
    random_state: a `np.random.RandomState` or an int seed for the classifiers.

  Returns:
    A dict with `importance_matrix` (`[D, K]`, each column the classifier's
    `feature_importances_`: non-negative, summing to 1, or all 0 when it made
    no split), `train_accuracy` and `eval_accuracy` (`[K]`).

  Raises:
    ValueError: if the shapes disagree or a factor has a single class among
      the training points.
  """
  train_codes, train_factors, eval_codes, eval_factors = ground_truth.check_train_and_eval(
      train_codes, train_factors, eval_codes, eval_factors)
  random_state = ground_truth.as_random_state(random_state)
  num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
  importance = np.zeros((num_codes, num_factors), dtype=np.float64)  # [D, K]
  train_accuracy = np.zeros(num_factors)  # [K]
  eval_accuracy = np.zeros(num_factors)  # [K]
  for k in range(num_factors):
    ground_truth.check_several_classes(train_factors[:, k], k)
    model = ensemble.GradientBoostingClassifier(random_state=random_state)
    with ground_truth.classifying_factors():
      model.fit(train_codes, train_factors[:, k])
    importance[:, k] = model.feature_importances_
    train_accuracy[k] = np.mean(model.predict(train_codes) == train_factors[:, k])
    eval_accuracy[k] = np.mean(model.predict(eval_codes) == eval_factors[:, k])
  return {"importance_matrix": importance, "train_accuracy": train_accuracy,
          "eval_accuracy": eval_accuracy}


def dci_from_importance(importance_matrix):
  """Disentanglement and completeness of an importance matrix `R` `[D, K]`.

  Args:
    importance_matrix: non-negative `R_ik`, code `i`'s importance for factor
      `k`, `[D, K]` with `K >= 2`.

  Returns:
    A dict with `dci_disentanglement` (`Σ_i ρ_i D_i`), `dci_completeness`
    (`Σ_k ρ̃_k C_k`), `dci_disentanglement_per_code` (`D_i`, `[D]`),
    `dci_code_importance` (`ρ_i`, `[D]`) and `dci_completeness_per_factor`
    (`C_k`, `[K]`). All 0 when `R` is 0.

  Raises:
    ValueError: if `R` is not a finite non-negative matrix with at least two
      factors.
  """
  importance = np.asarray(importance_matrix, dtype=np.float64)  # [D, K]
  if importance.ndim != 2 or importance.shape[1] < 2 or importance.shape[0] < 1:
    raise ValueError("Expected an importance matrix [D, K] with D >= 1 and K >= 2. "
                     f"Received: shape={importance.shape}")
  if not np.all(np.isfinite(importance)) or np.any(importance < 0):
    raise ValueError("Expected finite non-negative importances. Received: "
                     f"min={np.min(importance)}, max={np.max(importance)}")
  total = np.sum(importance)
  per_code = 1.0 - normalised_entropy(importance, axis=1)  # [D]
  per_factor = 1.0 - normalised_entropy(importance, axis=0)  # [K]
  if total > 0:
    code_share = np.sum(importance, axis=1) / total  # ρ_i, [D]
    factor_share = np.sum(importance, axis=0) / total  # ρ̃_k, [K]
  else:  # nothing predicts anything: uniform weights over scores of 0
    code_share = np.full(importance.shape[0], 1.0 / importance.shape[0])
    factor_share = np.full(importance.shape[1], 1.0 / importance.shape[1])
  return {
      "dci_disentanglement": float(np.sum(code_share * per_code)),
      "dci_completeness": float(np.sum(factor_share * per_factor)),
      "dci_disentanglement_per_code": per_code.tolist(),
      "dci_code_importance": code_share.tolist(),
      "dci_completeness_per_factor": per_factor.tolist(),
  }


def normalised_entropy(weights, axis):
  """Entropy of `weights` normalised to a distribution along `axis`, in base `weights.shape[axis]`.

  `0 log 0 = 0`; a slice of zeros counts as uniform (entropy 1); a single
  outcome has entropy 0.

  Args:
    weights: non-negative array `[D, K]`.
    axis: the axis holding each distribution's outcomes.

  Returns:
    Entropies in [0, 1], one per slice along the other axis.
  """
  weights = np.asarray(weights, dtype=np.float64)
  size = weights.shape[axis]
  sums = np.sum(weights, axis=axis, keepdims=True)
  p = np.where(sums > 0, weights / np.where(sums > 0, sums, 1.0), 1.0 / size)
  if size == 1:
    return np.zeros(np.delete(weights.shape, axis))
  plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
  return -np.sum(plogp, axis=axis) / np.log(size)
