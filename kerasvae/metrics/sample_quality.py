"""Sample quality: a Fréchet distance in a small classifier's feature space, and its confidence.

The Fréchet Inception Distance [1] compares generated and real images through
the Gaussian statistics of their features in a pretrained network. For
small data sets such as MNIST an Inception network is both out of place and
unavailable offline, so here the features are the penultimate layer of a small
convolutional classifier trained on the labelled data itself, a common FID
analogue for MNIST (as in [2]). The Fréchet (2-Wasserstein) distance between
`N(μ_1, Σ_1)` and `N(μ_2, Σ_2)` is [3]

    d² = |μ_1 - μ_2|² + tr(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^{1/2}).

The classifier's mean confidence `(1/N) Σ_i max_c p(c | x_i)` on generated
images complements it (a simple form of the Inception Score's "each image is
recognisable" half [4]).

The distance depends on the classifier and on the sample sizes (it is biased
upwards for small samples), so compare numbers only from the same classifier
and the same sizes; `reference_frechet_distance` gives the floor that real
images reach under those conditions.

References:
  [1]: Heusel et al. GANs Trained by a Two Time-Scale Update Rule Converge to a
       Local Nash Equilibrium. NeurIPS 2017.
  [2]: Lucic et al. Are GANs Created Equal? A Large-Scale Study. NeurIPS 2018.
  [3]: Dowson & Landau. The Fréchet distance between multivariate normal
       distributions. Journal of Multivariate Analysis, 1982.
  [4]: Salimans et al. Improved Techniques for Training GANs. NeurIPS 2016.

Precision and recall (`precision_recall`, [5] below) split the Fréchet distance's single number
into realism (samples inside the real data's k-nearest-neighbour manifold) and coverage (real
data inside the samples' manifold), in the same feature space.
"""

import warnings

# Importing this module first imports `kerasvae`, which selects Keras' TensorFlow backend.
import keras
import numpy as np
import scipy.linalg

FEATURE_LAYER_NAME = "features"


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps=1e-6):
  """Squared Fréchet distance between two Gaussians `N(mu1, sigma1)` and `N(mu2, sigma2)`.

  `d² = |μ_1 - μ_2|² + tr(Σ_1) + tr(Σ_2) - 2 tr((Σ_1 Σ_2)^{1/2})`, computed in
  float64 as FID implementations do [1]: the matrix square root is
  `scipy.linalg.sqrtm`; if it is not finite (a near-singular product) `eps` is
  added to both diagonals and it is retried; the imaginary part that round-off
  leaves in it is dropped when it is negligible.

  Args:
    mu1: mean `[F]`.
    sigma1: covariance `[F, F]`.
    mu2: mean `[F]`.
    sigma2: covariance `[F, F]`.
    eps: diagonal offset used only when the plain square root fails.

  Returns:
    The squared distance as a float (what FID reports), `>= 0` up to round-off.

  Raises:
    ValueError: if the shapes disagree, or the square root has a large
      imaginary part (the covariances are not positive semi-definite).
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  dim = mu1.shape[0]
  if (mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim)
      or sigma2.shape != (dim, dim)):
    raise ValueError("Expected means [F] and covariances [F, F] of one size. Received: "
                     f"mu1.shape={mu1.shape}, sigma1.shape={sigma1.shape}, "
                     f"mu2.shape={mu2.shape}, sigma2.shape={sigma2.shape}")
  diff = mu1 - mu2  # [F]
  with warnings.catch_warnings():
    # Singular products are expected (dead ReLU features); the result is checked below.
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)  # [F, F]
    if not np.all(np.isfinite(covmean)):
      offset = np.eye(dim) * eps
      covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError("Expected positive semi-definite covariances. Received: a square root "
                       f"with imaginary part up to {np.max(np.abs(covmean.imag)):.3g}")
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def feature_statistics(features):
  """Mean `[F]` and unbiased covariance `[F, F]` of features `[N, F]`, in float64."""
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError("Expected at least two feature vectors [N, F]. "
                     f"Received: features.shape={features.shape}")
  return np.mean(features, axis=0), np.cov(features, rowvar=False).reshape(
      features.shape[1], features.shape[1])


def build_feature_classifier(input_shape, num_classes, *, feature_dim=64):
  """A small convolutional classifier whose penultimate layer gives the features.

  conv(16, 3x3) → max-pool → conv(32, 3x3) → max-pool → dense(`feature_dim`,
  ReLU, named `"features"`) → dense(`num_classes`, softmax).

  Args:
    input_shape: `(H, W, C)` of the images, `H, W >= 4`.
    num_classes: number of labels.
    feature_dim: width of the feature layer.

  Returns:
    An uncompiled functional `keras.Model` mapping images `[N, H, W, C]` to
    class probabilities `[N, num_classes]`.
  """
  input_shape = tuple(int(s) for s in input_shape)
  if len(input_shape) != 3 or min(input_shape[:2]) < 4 or input_shape[2] < 1:
    raise ValueError("Expected an image shape (H, W, C) with H, W >= 4. "
                     f"Received: input_shape={input_shape}")
  if num_classes < 2:
    raise ValueError(f"Expected at least 2 classes. Received: num_classes={num_classes}")
  if feature_dim < 1:
    raise ValueError(f"Expected a positive feature_dim. Received: feature_dim={feature_dim}")
  inputs = keras.Input(shape=input_shape, name="images")
  x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
  x = keras.layers.MaxPooling2D(2)(x)  # [N, H/2, W/2, 16]
  x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
  x = keras.layers.MaxPooling2D(2)(x)  # [N, H/4, W/4, 32]
  x = keras.layers.Flatten()(x)
  features = keras.layers.Dense(feature_dim, activation="relu", name=FEATURE_LAYER_NAME)(x)
  probabilities = keras.layers.Dense(num_classes, activation="softmax",
                                     name="probabilities")(features)
  return keras.Model(inputs, probabilities, name="feature_classifier")


def train_feature_classifier(images, labels, *, num_classes=None, epochs=2, batch_size=64,
                             feature_dim=64, learning_rate=1e-3, seed=0, verbose=0):
  """Trains `build_feature_classifier` on labelled images.

  A few thousand MNIST images and two epochs take seconds on a CPU and give a
  classifier that is accurate enough for its features to separate digits.
  Training sets Keras' global seeds (`keras.utils.set_random_seed(seed)`).

  Args:
    images: float images in [0, 1], `[N, H, W, C]` (or `[N, H, W]`, read as
      one channel).
    labels: int labels `[N]` in `[0, num_classes)`.
    num_classes: number of classes; defaults to `max(labels) + 1`.
    epochs: passes over the data.
    batch_size: examples per step.
    feature_dim: width of the feature layer.
    learning_rate: Adam's learning rate.
    seed: seed for the initial weights and the shuffling.
    verbose: passed to `fit`.

  Returns:
    The trained `keras.Model`; save it with `model.save("name.keras")` and load
    it with `load_feature_classifier`.
  """
  images = _as_images(images)
  labels = np.asarray(labels)
  if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"Expected integer labels [{len(images)}]. "
                     f"Received: labels.shape={labels.shape}, dtype={labels.dtype}")
  if num_classes is None:
    num_classes = int(labels.max()) + 1
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f"Expected labels in [0, {num_classes}). "
                     f"Received: labels in [{labels.min()}, {labels.max()}]")
  keras.utils.set_random_seed(seed)
  model = build_feature_classifier(images.shape[1:], num_classes, feature_dim=feature_dim)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  model.fit(images, labels, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose)
  return model


def load_feature_classifier(path):
  """Loads a classifier saved with `model.save(path)` and checks it has a feature layer."""
  model = keras.saving.load_model(path)
  _feature_layer(model)
  return model


def classifier_features(classifier, images, *, batch_size=256):
  """Feature-layer activations `[N, F]` and class probabilities `[N, C]` of `images`."""
  images = _as_images(images, classifier.input_shape[1:])
  extractor = keras.Model(classifier.input,
                          [_feature_layer(classifier).output, classifier.outputs[0]])
  # Plain calls rather than `predict`: a new extractor per call would retrace its tf.function.
  features, probabilities = [], []
  for start in range(0, len(images), batch_size):
    feature, probability = extractor(images[start:start + batch_size], training=False)
    features.append(keras.ops.convert_to_numpy(feature))  # [b, F]
    probabilities.append(keras.ops.convert_to_numpy(probability))  # [b, C]
  return (np.concatenate(features).astype(np.float64),
          np.concatenate(probabilities).astype(np.float64))


def compute_sample_quality(classifier, generated_images, reference_images, *,
                           baseline_images=None, batch_size=256):
  """Scores generated images against held-out real ones in a classifier's feature space.

  Args:
    classifier: a model from `train_feature_classifier` (or loaded with
      `load_feature_classifier`), trained on data other than
      `reference_images`.
    generated_images: `[N, H, W, C]` float images in [0, 1].
    reference_images: held-out real images `[M, H, W, C]`.
    baseline_images: optional other real images (e.g. a second held-out
      split). When given, their distance to `reference_images` is reported as
      the floor for this classifier and these sample sizes; pass as many as
      `generated_images` for a fair floor.
    batch_size: images per forward pass.

  Returns:
    A dict with `frechet_distance` (squared Fréchet distance between the
    feature Gaussians of generated and reference images), `classifier_confidence`
    (mean maximum class probability on generated images),
    `reference_classifier_confidence` (the same on reference images),
    `num_generated`, `num_reference`, `precision` and `recall` (`precision_recall` with
    k = 3 in the same feature space) and, with `baseline_images`,
    `reference_frechet_distance`.
  """
  generated_features, generated_probabilities = classifier_features(
      classifier, generated_images, batch_size=batch_size)  # [N, F], [N, C]
  reference_features, reference_probabilities = classifier_features(
      classifier, reference_images, batch_size=batch_size)  # [M, F], [M, C]
  reference_statistics = feature_statistics(reference_features)
  result = {
      "frechet_distance": frechet_distance(*feature_statistics(generated_features),
                                           *reference_statistics),
      "classifier_confidence": mean_confidence(generated_probabilities),
      "reference_classifier_confidence": mean_confidence(reference_probabilities),
      "num_generated": int(len(generated_features)),
      "num_reference": int(len(reference_features)),
      **precision_recall(reference_features, generated_features),
  }
  if baseline_images is not None:
    baseline_features, _ = classifier_features(classifier, baseline_images,
                                               batch_size=batch_size)
    result["reference_frechet_distance"] = frechet_distance(
        *feature_statistics(baseline_features), *reference_statistics)
  return result


def _squared_distances(a, b):
  """Squared Euclidean distances `[len(a), len(b)]` in float64 (clipped at 0)."""
  d = (np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T)
  return np.maximum(d, 0.0)


def knn_radii(features, k=3):
  """Squared distance of each feature vector `[N, F]` to its k-th nearest other one `[N]`."""
  d = _squared_distances(features, features)  # [N, N]
  np.fill_diagonal(d, np.inf)  # a point is not its own neighbour
  return np.partition(d, k - 1, axis=1)[:, k - 1]


def precision_recall(real_features, generated_features, k=3, batch_size=1000):
  """Improved precision and recall of generated samples (Kynkäänniemi et al. 2019 [5]).

  The real manifold is the union of balls around each real feature vector with
  radius its distance to its k-th nearest real neighbour; likewise for the
  generated one. *Precision* is the fraction of generated samples inside the real
  manifold (are samples realistic?), *recall* the fraction of real samples inside
  the generated manifold (is the data's variety covered?).

  Args:
    real_features: `[N, F]` features of real images.
    generated_features: `[M, F]` features of generated images.
    k: the neighbour that sets each ball's radius (the paper's k = 3).
    batch_size: rows of the distance matrix computed at once.

  Returns:
    `{"precision": float, "recall": float}`, each in [0, 1].

  [5]: Kynkäänniemi, Karras, Laine, Lehtinen & Aila. Improved Precision and Recall Metric
       for Assessing Generative Models. NeurIPS 2019.
  """
  real = np.asarray(real_features, np.float64)
  fake = np.asarray(generated_features, np.float64)
  if min(len(real), len(fake)) <= k:
    raise ValueError(f"Expected more than k={k} real and generated samples. Received: "
                     f"{len(real)} real, {len(fake)} generated")
  real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)

  def covered(points, centres, radii):  # fraction of points inside some centre's ball
    inside = 0
    for start in range(0, len(points), batch_size):
      d = _squared_distances(points[start:start + batch_size], centres)  # [b, len(centres)]
      inside += int(np.sum(np.any(d <= radii[None, :], axis=1)))
    return inside / len(points)

  return {"precision": covered(fake, real, real_radii),
          "recall": covered(real, fake, fake_radii)}


def mean_confidence(probabilities):
  """`(1/N) Σ_i max_c p(c | x_i)` of class probabilities `[N, C]`."""
  return float(np.mean(np.max(probabilities, axis=-1)))


def _feature_layer(model):
  try:
    return model.get_layer(FEATURE_LAYER_NAME)
  except ValueError as e:
    raise ValueError(f"Expected a classifier with a layer named '{FEATURE_LAYER_NAME}' (from "
                     f"train_feature_classifier). Received: model={model.name}") from e


def _as_images(images, expected_shape=None):
  """float32 `[N, H, W, C]`; `[N, H, W]` gains a channel axis."""
  images = np.asarray(images, dtype=np.float32)
  if images.ndim == 3:
    images = images[..., np.newaxis]  # [N, H, W, 1]
  if images.ndim != 4 or len(images) == 0:
    raise ValueError("Expected a non-empty batch of images [N, H, W, C]. "
                     f"Received: images.shape={images.shape}")
  if expected_shape is not None and tuple(images.shape[1:]) != tuple(expected_shape):
    raise ValueError(f"Expected images of shape [N, {', '.join(map(str, expected_shape))}] "
                     f"for this classifier. Received: images.shape={images.shape}")
  if not np.all(np.isfinite(images)):
    raise ValueError("Expected finite pixel values. Received: non-finite images")
  return images
