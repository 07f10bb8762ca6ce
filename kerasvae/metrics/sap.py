"""The Separated Attribute Predictability (SAP) score (Kumar et al., 2018).

For every code dimension `z_i` and varied factor `v_k`, a classifier sees only
`z_i` and predicts the class of `v_k`; its accuracy on held-out points is the
score `S_ik`. The SAP score is the mean over factors of the gap between the two
code dimensions that predict the factor best:

    SAP = (1 / K) Σ_k (S_{(1)k} - S_{(2)k}),

where `S_{(1)k} ≥ S_{(2)k}` are the largest two entries of column `k`. It is
high when each factor is predictable from one dimension and not from any
other; 0 when two dimensions predict a factor equally well (a factor spread
over several dimensions, or none predictive).

Follows `disentanglement_lib.evaluation.metrics.sap_score` [2] for discrete
factors: the classifier is scikit-learn's `LinearSVC(C=0.01,
class_weight="balanced")` on the single code `z_i`, fit on 10,000 points and
scored on 5,000 new ones. On one feature a one-vs-rest linear classifier is a
set of thresholds: each class wins on at most one interval of `z_i`, and only
classes whose one-vs-rest line can rise above the others get one, so a factor
with many classes (dSprites' 40 orientations, 32 positions) is predicted far
from perfectly even by a code that holds it exactly, and SAP stays well below
1. disentanglement_lib's variant for continuous factors (the squared
correlation `S_ik`) is not implemented: the factors here are class indices.

References:
  [1]: Kumar, Sattigeri & Balakrishnan. Variational Inference of Disentangled
       Latent Concepts from Unlabeled Observations. ICLR 2018.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised
       Learning of Disentangled Representations. ICML 2019.
"""

import numpy as np
from sklearn import svm

from kerasvae.metrics import ground_truth


def compute_sap(ground_truth_data, representation_function, random_state, *, num_train=10000,
                num_eval=5000, batch_size=256):
  """Computes the SAP score of a representation.

  Args:
    ground_truth_data: an object following the ground-truth data protocol of
      `kerasvae.metrics.ground_truth`. Only the varied factors (listed in
      `latent_factor_indices`, size > 1) are scored.
    representation_function: maps observations `[n, ...]` to posterior means
      `[n, D]` as a numpy array.
    random_state: a `np.random.RandomState` or an int seed; draws the
      training points, then the held-out points, then seeds the classifiers.
    num_train: number of observations each classifier is fit on.
    num_eval: number of held-out observations it is scored on.
    batch_size: most observations passed to `representation_function` in one
      call (bounds memory).

  Returns:
    The dict of `sap_from_codes` plus `factor_names`, naming the entries of
    the per-factor lists.

  Example:

  >>> data = ground_truth.FactorGrid((2, 2))
  >>> result = compute_sap(data, lambda x: x, 0, num_train=200, num_eval=100)
  >>> np.diag(result["sap_score_matrix"])  # each factor from its own code; chance (1/2) else
  array([1., 1.])
  >>> round(result["sap"], 1)
  0.5
  """
  ground_truth.check_positive(num_train=num_train, num_eval=num_eval, batch_size=batch_size)
  return ground_truth.score_sampled_codes(
      ground_truth_data, representation_function, random_state, sap_from_codes, num_train=num_train,
      num_eval=num_eval, batch_size=batch_size)


def sap_from_codes(train_codes, train_factors, eval_codes, eval_factors, random_state):
  """The SAP score of codes against discrete factors.

  Args:
    train_codes: `[N, D]`.
    train_factors: int class indices `[N, K]`.
    eval_codes: `[M, D]`.
    eval_factors: int class indices `[M, K]`.
    random_state: a `np.random.RandomState` or an int seed for the classifiers.

  Returns:
    A dict with `sap` (the mean gap), `sap_per_factor` (`[K]`, each factor's
    gap) and `sap_score_matrix` (`S`, `[D][K]`, held-out accuracies). With a
    single code dimension the second best accuracy is taken as 0.
  """
  matrix = sap_score_matrix(train_codes, train_factors, eval_codes, eval_factors, random_state)
  gaps = ground_truth.top_two_gap(matrix)  # [K]
  return {
      "sap": float(np.mean(gaps)),
      "sap_per_factor": gaps.tolist(),
      "sap_score_matrix": matrix.tolist(),
  }


def sap_score_matrix(train_codes, train_factors, eval_codes, eval_factors, random_state):
  """`S_ik`: held-out accuracy of a linear classifier from code `z_i` alone to factor `v_k`.

  Args:
    train_codes: `[N, D]`.
    train_factors: int class indices `[N, K]`.
    eval_codes: `[M, D]`.
    eval_factors: int class indices `[M, K]`.
    random_state: a `np.random.RandomState` or an int seed for the classifiers.

  Returns:
    float64 `[D, K]` in [0, 1].

  Raises:
    ValueError: if the shapes disagree or a factor has a single class among
      the training points.
  """
  train_codes, train_factors, eval_codes, eval_factors = ground_truth.check_train_and_eval(
      train_codes, train_factors, eval_codes, eval_factors)
  random_state = ground_truth.as_random_state(random_state)
  num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
  matrix = np.zeros((num_codes, num_factors), dtype=np.float64)  # [D, K]
  for k in range(num_factors):
    ground_truth.check_several_classes(train_factors[:, k], k)
    for i in range(num_codes):
      classifier = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=random_state)
      with ground_truth.classifying_factors():
        classifier.fit(train_codes[:, i:i + 1], train_factors[:, k])  # one feature: [N, 1]
      matrix[i, k] = np.mean(classifier.predict(eval_codes[:, i:i + 1]) == eval_factors[:, k])
  return matrix

