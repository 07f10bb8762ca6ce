"""The β-VAE disentanglement score (Higgins et al., 2017).

Each point of the score's data set is made by choosing a factor `k`, drawing
two batches of `L` factor vectors `v_1l`, `v_2l` that agree on factor `k` and
vary freely elsewhere, and encoding both with the posterior mean `z = E[q(z|x)]`:

    b = (1 / L) Σ_l |z(x_1l) - z(x_2l)|,     label k.

In a disentangled code the coordinate that carries factor `k` does not change
within a pair, so `b` is small there and a linear classifier recovers `k`. The
score is that classifier's accuracy on held-out points. As [2] notes, the score
is lenient: a linear classifier can undo a rotation of a disentangled code, so
rotated codes can still score high.

Follows `disentanglement_lib.evaluation.metrics.beta_vae` [2]: the classifier
is scikit-learn's `LogisticRegression` with default regularisation, fit on
unscaled features (with up to 1,000 solver iterations rather than 100, so that
it converges).

References:
  [1]: Higgins et al. beta-VAE: Learning Basic Visual Concepts with a
       Constrained Variational Framework. ICLR 2017.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised
       Learning of Disentangled Representations. ICML 2019.
"""

import numpy as np
from sklearn import linear_model

from kerasvae.metrics import ground_truth


def compute_beta_vae_score(ground_truth_data, representation_function, random_state, *,
                           batch_size=64, num_train=10000, num_eval=5000,
                           representation_batch_size=1024):
  """Computes the β-VAE score of a representation.

  Args:
    ground_truth_data: an object following the ground-truth data protocol of
      `kerasvae.metrics.ground_truth`. Only the varied factors (listed in
      `latent_factor_indices`, size > 1) are chosen as labels.
    representation_function: maps observations `[n, ...]` to posterior means
      `[n, D]` as a numpy array.
    random_state: a `np.random.RandomState` or an int seed.
    batch_size: `L`, the number of pairs averaged into one point.
    num_train: number of points the classifier is fit on.
    num_eval: number of held-out points it is scored on.
    representation_batch_size: most observations passed to
      `representation_function` in one call (bounds memory).

  Returns:
    A dict with `beta_vae_score` (accuracy on the held-out points, in [0, 1]),
    `beta_vae_train_accuracy`, `num_factors` (the number of classes, chance is
    `1 / num_factors` when the factors are chosen uniformly) and
    `factor_names` (the class names, in label order).

  Example:

  >>> data = ground_truth.FactorGrid((3, 4, 5))
  >>> result = compute_beta_vae_score(data, lambda x: x, 0, num_train=200, num_eval=100)
  >>> result["beta_vae_score"], result["num_factors"]
  (1.0, 3)
  """
  ground_truth.check_positive(batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                              representation_batch_size=representation_batch_size)
  random_state = ground_truth.as_random_state(random_state)
  varied = ground_truth.varied_factor_indices(ground_truth_data)
  train_features, train_labels = sample_beta_vae_points(
      ground_truth_data, representation_function, num_train, random_state,
      batch_size=batch_size, representation_batch_size=representation_batch_size)
  eval_features, eval_labels = sample_beta_vae_points(
      ground_truth_data, representation_function, num_eval, random_state,
      batch_size=batch_size, representation_batch_size=representation_batch_size)
  scores = linear_classifier_accuracy(train_features, train_labels, eval_features, eval_labels,
                                      random_state)
  return {
      "beta_vae_score": scores["eval_accuracy"],
      "beta_vae_train_accuracy": scores["train_accuracy"],
      "num_factors": len(varied),
      "factor_names": ground_truth.factor_names_of(ground_truth_data, varied),
  }


def sample_beta_vae_points(ground_truth_data, representation_function, num_points, random_state,
                           *, batch_size, representation_batch_size):
  """Samples the score's data set: features `b` `[num_points, D]` and labels `[num_points]`.

  Labels index the varied factors (`varied_factor_indices`), not all factors.
  Several points are encoded per call, up to `representation_batch_size` rows.
  """
  varied = ground_truth.varied_factor_indices(ground_truth_data)
  points_per_chunk = max(1, representation_batch_size // (2 * batch_size))
  features, labels = [], []
  for start in range(0, num_points, points_per_chunk):
    num = min(points_per_chunk, num_points - start)
    label = random_state.randint(len(varied), size=num)  # [P]
    factors1 = np.asarray(ground_truth_data.sample_factors(num * batch_size, random_state))
    factors2 = np.asarray(ground_truth_data.sample_factors(num * batch_size, random_state))
    factors1 = factors1.reshape(num, batch_size, -1)  # [P, L, F]
    factors2 = factors2.reshape(num, batch_size, -1).copy()  # [P, L, F]
    rows = np.arange(num)
    factors2[rows, :, varied[label]] = factors1[rows, :, varied[label]]
    factors = np.concatenate([factors1, factors2], axis=1).reshape(num * 2 * batch_size, -1)
    codes = ground_truth.represent_factors(
        ground_truth_data, representation_function, factors, random_state,
        batch_size=representation_batch_size).reshape(num, 2 * batch_size, -1)  # [P, 2L, D]
    features.append(beta_vae_features(codes[:, :batch_size], codes[:, batch_size:]))
    labels.append(label)
  return np.concatenate(features, axis=0), np.concatenate(labels, axis=0)


def beta_vae_features(codes1, codes2):
  """Returns `b = mean_l |z_1l - z_2l|`: `[P, D]` from two code batches `[P, L, D]`."""
  return np.mean(np.abs(codes1 - codes2), axis=-2)  # [P, D]


def linear_classifier_accuracy(train_features, train_labels, eval_features, eval_labels,
                               random_state):
  """Fits a logistic regression on the training points and scores it.

  Args:
    train_features: `[N, D]`.
    train_labels: int `[N]`.
    eval_features: `[M, D]`.
    eval_labels: int `[M]`.
    random_state: a `np.random.RandomState` or an int seed for the solver.

  Returns:
    A dict with `train_accuracy` and `eval_accuracy`, the fraction of points
    whose label the classifier predicts.
  """
  if len(np.unique(train_labels)) < 2:
    # Only possible with a tiny num_train; LogisticRegression cannot fit one class.
    raise ValueError("Expected training points from at least two factors. Received: "
                     f"labels={np.unique(train_labels).tolist()}; increase num_train")
  # More iterations than scikit-learn's 100: unscaled features (pixels, nats) often need them,
  # and the score should be that of the fitted classifier, not of a stopped solver.
  model = linear_model.LogisticRegression(random_state=ground_truth.as_random_state(random_state),
                                          max_iter=1000)
  model.fit(train_features, train_labels)
  return {
      "train_accuracy": float(np.mean(model.predict(train_features) == train_labels)),
      "eval_accuracy": float(np.mean(model.predict(eval_features) == eval_labels)),
  }
