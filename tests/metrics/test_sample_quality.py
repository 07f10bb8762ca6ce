"""Tests for the Fréchet distance and the classifier-feature sample-quality metric."""

import gzip

import numpy as np
import pytest

from kerasvae.metrics import sample_quality


def _independent_frechet_distance(mu1, sigma1, mu2, sigma2):
  """d² through symmetric eigendecompositions: tr((Σ1 Σ2)^½) = tr((Σ1^½ Σ2 Σ1^½)^½)."""
  def psd_sqrt(a):
    values, vectors = np.linalg.eigh(a)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
  root1 = psd_sqrt(sigma1)
  cross = np.trace(psd_sqrt(root1 @ sigma2 @ root1))
  return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross


def _random_covariance(random_state, dim, rank):
  a = random_state.normal(size=(dim, rank))
  return a @ a.T / rank


# Frechet distance ----------------------------------------------------------------------------

def test_frechet_distance_one_dimension_is_mean_and_std_gaps():
  # N(1, 4) vs N(-2, 9): (1 + 2)² + (2 - 3)² = 10.
  assert sample_quality.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(10.0)
  assert sample_quality.frechet_distance(1.0, 4.0, -2.0, 9.0) == pytest.approx(10.0)


def test_frechet_distance_diagonal_covariances():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
  var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.0])
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
  assert sample_quality.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == (
      pytest.approx(expected, rel=1e-9))


@pytest.mark.parametrize("rank", [8, 3])  # Full rank, and singular as with dead ReLU features.
def test_frechet_distance_full_covariances_match_eigendecomposition(rank):
  random_state = np.random.RandomState(rank)
  mu1, mu2 = random_state.normal(size=8), random_state.normal(size=8)
  sigma1 = _random_covariance(random_state, 8, rank)
  sigma2 = _random_covariance(random_state, 8, rank)
  distance = sample_quality.frechet_distance(mu1, sigma1, mu2, sigma2)
  assert distance == pytest.approx(_independent_frechet_distance(mu1, sigma1, mu2, sigma2),
                                   rel=1e-6)
  assert distance == pytest.approx(sample_quality.frechet_distance(mu2, sigma2, mu1, sigma1),
                                   rel=1e-6)
  assert abs(sample_quality.frechet_distance(mu1, sigma1, mu1, sigma1)) < 1e-6


def test_frechet_distance_rejects_bad_inputs():
  with pytest.raises(ValueError, match=r"Received: mu1.shape=\(2,\), sigma1.shape=\(3, 3\)"):
    sample_quality.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match="Expected positive semi-definite covariances"):
    sample_quality.frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))


def test_feature_statistics_are_mean_and_unbiased_covariance():
  features = np.random.RandomState(0).normal(size=(50, 3))
  mu, sigma = sample_quality.feature_statistics(features)
  centred = features - features.mean(axis=0)
  np.testing.assert_allclose(mu, features.sum(axis=0) / 50)
  np.testing.assert_allclose(sigma, centred.T @ centred / 49)


# Classifier on synthetic blobs (always runs) ------------------------------------------------

def make_blobs(num, random_state, size=16, num_classes=4):
  """Images with one Gaussian blob whose position is set by the class, plus pixel noise."""
  centres = np.array([[4, 4], [4, 11], [11, 4], [11, 11]], dtype=np.float64)[:num_classes]
  labels = random_state.randint(num_classes, size=num)
  centre = centres[labels] + random_state.uniform(-1.5, 1.5, size=(num, 2))  # [N, 2]
  rows, cols = np.mgrid[:size, :size]
  squared = ((rows[None] - centre[:, 0, None, None]) ** 2
             + (cols[None] - centre[:, 1, None, None]) ** 2)  # [N, size, size]
  images = np.exp(-squared / (2 * 1.5 ** 2)) + random_state.normal(0, 0.05, squared.shape)
  return np.clip(images, 0, 1)[..., None].astype(np.float32), labels


@pytest.fixture(scope="module")
def blobs():
  random_state = np.random.RandomState(0)
  train = make_blobs(1500, random_state)
  held_out = make_blobs(1000, random_state)
  other_held_out = make_blobs(1000, random_state)
  classifier = sample_quality.train_feature_classifier(*train, epochs=2, seed=0)
  return classifier, held_out, other_held_out


def test_blobs_identical_sets_score_zero(blobs):
  classifier, (images, _), _ = blobs
  result = sample_quality.compute_sample_quality(classifier, images, images)
  assert abs(result["frechet_distance"]) < 1e-6
  assert result["classifier_confidence"] == result["reference_classifier_confidence"]
  assert result["num_generated"] == result["num_reference"] == 1000


def test_blobs_noise_scores_far_worse_than_real(blobs):
  classifier, (images, _), (other_images, _) = blobs
  random_state = np.random.RandomState(1)
  real = sample_quality.compute_sample_quality(classifier, other_images, images,
                                               baseline_images=other_images)
  uniform = sample_quality.compute_sample_quality(
      classifier, random_state.uniform(size=images.shape), images)
  assert real["reference_frechet_distance"] == real["frechet_distance"]
  assert uniform["frechet_distance"] > 20 * real["frechet_distance"]
  assert real["classifier_confidence"] > 0.9


def test_features_are_the_penultimate_layer(blobs):
  # Independent check: the softmax of the last layer applied to the returned features gives the
  # returned probabilities.
  classifier, (images, _), _ = blobs
  features, probabilities = sample_quality.classifier_features(classifier, images[:20])
  kernel, bias = classifier.get_layer("probabilities").get_weights()
  logits = features @ kernel + bias
  expected = np.exp(logits - logits.max(axis=1, keepdims=True))
  expected /= expected.sum(axis=1, keepdims=True)
  assert features.shape == (20, 64)
  np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_classifier_round_trips_through_keras_file(blobs, tmp_path):
  classifier, (images, _), _ = blobs
  path = tmp_path / "classifier.keras"
  classifier.save(path)
  loaded = sample_quality.load_feature_classifier(path)
  np.testing.assert_allclose(sample_quality.classifier_features(loaded, images[:50])[0],
                             sample_quality.classifier_features(classifier, images[:50])[0],
                             rtol=1e-6, atol=1e-6)


def test_rejects_mismatched_images_and_labels(blobs):
  classifier, (images, labels), _ = blobs
  with pytest.raises(ValueError, match=r"Expected images of shape \[N, 16, 16, 1\].*"
                                       r"Received: images.shape=\(10, 28, 28, 1\)"):
    sample_quality.compute_sample_quality(classifier, np.zeros((10, 28, 28)), images)
  with pytest.raises(ValueError, match=r"Expected integer labels \[1000\]"):
    sample_quality.train_feature_classifier(images, labels[:10])
  with pytest.raises(ValueError, match=r"Received: labels in \[0, 3\]"):
    sample_quality.train_feature_classifier(images, labels, num_classes=3)


# Classifier on the shared MNIST test split (skips when absent) ------------------------------

def _read_idx(path):
  """A minimal IDX reader: magic (0, 0, type, ndim), ndim big-endian sizes, uint8 data."""
  with gzip.open(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def test_mnist_real_digits_score_far_better_than_noise(mnist_dir):
  images = _read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[..., None] / np.float32(255)
  labels = _read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
  assert images.shape == (10000, 28, 28, 1) and labels.shape == (10000,)
  # Shuffle: the first and second halves of the MNIST test split come from different writers.
  order = np.random.RandomState(0).permutation(len(images))
  images, labels = images[order], labels[order]
  classifier = sample_quality.train_feature_classifier(images[:4000], labels[:4000], epochs=2,
                                                       seed=0)
  held_out, other_held_out = images[4000:7000], images[7000:]
  random_state = np.random.RandomState(1)

  identical = sample_quality.compute_sample_quality(classifier, held_out, held_out)
  real = sample_quality.compute_sample_quality(classifier, held_out, other_held_out)
  uniform = sample_quality.compute_sample_quality(
      classifier, random_state.uniform(size=held_out.shape), other_held_out)
  gaussian = sample_quality.compute_sample_quality(
      classifier, np.clip(random_state.normal(0.5, 0.25, size=held_out.shape), 0, 1),
      other_held_out)
  print(f"MNIST: identical {identical}\nreal {real}\nuniform {uniform}\ngaussian {gaussian}")

  assert abs(identical["frechet_distance"]) < 1e-6
  assert real["frechet_distance"] < 2.0  # Observed: 0.20.
  assert uniform["frechet_distance"] > 100 * real["frechet_distance"]  # Observed: 367.
  assert gaussian["frechet_distance"] > 100 * real["frechet_distance"]
  assert real["classifier_confidence"] > 0.85  # Observed: 0.90.
  accuracy = np.mean(np.argmax(sample_quality.classifier_features(classifier, other_held_out)[1],
                               axis=1) == labels[7000:])
  assert accuracy > 0.85  # Observed: 0.91.


def test_precision_recall_known_answers():
  """Kynkäänniemi et al.'s k-NN precision and recall on point sets with known coverage."""
  rng = np.random.default_rng(0)
  real = rng.normal(size=(400, 5))
  same = sample_quality.precision_recall(real, real.copy())
  assert same == {"precision": 1.0, "recall": 1.0}
  far = sample_quality.precision_recall(real, rng.normal(size=(400, 5)) + 100.0)
  assert far == {"precision": 0.0, "recall": 0.0}
  # Samples from one half of the data: realistic (precision high) but half the variety missing.
  half = real[real[:, 0] > 0.5]
  out = sample_quality.precision_recall(real, half)
  assert out["precision"] == 1.0 and out["recall"] < 0.6


def test_knn_radii_by_brute_force():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(30, 3))
  d = np.square(x[:, None] - x[None]).sum(-1)
  expected = [sorted(np.delete(d[i], i))[2] for i in range(30)]
  np.testing.assert_allclose(sample_quality.knn_radii(x, k=3), expected, rtol=1e-9)
