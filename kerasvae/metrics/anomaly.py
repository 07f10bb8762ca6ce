"""Anomaly scores of a VAE and how well they separate in- from out-of-distribution data.

A density model's log p(x) is the obvious anomaly score and a known trap: a model trained on
Fashion-MNIST gives MNIST digits, and an all-black image, a *higher* likelihood than its own
test images [1], because log p(x) is dominated by how simple an image is (how many pixels are
background), not by whether it looks like the training data. Two corrections from the
literature remove most of that term:

  input complexity [2]:  S(x) = −log p(x) − L(x),
      L(x) the code length of x under a lossless compressor (here PNG at the highest
      compression level, of x quantised to 8 bits), in nats. −log p(x) is what the model
      needs to code x, L(x) what a generic compressor needs: S > 0 means the model codes x
      worse than PNG. A continuous density on [0, 1]^D codes an 8-bit image in about
      −log p(x) + D log 256 nats; that constant does not change any ranking and is left out.
  likelihood ratio [3]:  LR(x) = −(log p(x) − log p_0(x)),
      p_0 a background model of the same class trained on the training images with a fraction
      μ of their pixels replaced by uniform noise, which learns the population-level
      statistics (the background) but not the semantics.

Every score here is oriented so that a HIGHER score means MORE anomalous. The detection
metrics treat the out-of-distribution examples as the positive class.

References:
  [1]: Nalisnick, Matsukawa, Teh, Gorur & Lakshminarayanan. Do Deep Generative Models Know
       What They Don't Know? ICLR 2019.
  [2]: Serrà, Álvarez, Gómez, Slizovskaia, Núñez & Luque. Input Complexity and
       Out-of-distribution Detection with Likelihood-based Generative Models. ICLR 2020.
  [3]: Ren, Liu, Fertig, Snoek, Poplin, DePristo, Dillon & Lakshminarayanan. Likelihood Ratios
       for Out-of-Distribution Detection. NeurIPS 2019.
"""

import math

import numpy as np

NATS_PER_BYTE = 8.0 * math.log(2.0)
PNG_CHANNELS = (1, 2, 3, 4)  # what PNG stores: grey, grey + alpha, RGB, RGBA
PNG_COMPRESSION = 9  # zlib's highest level: the shortest PNG, so the best complexity estimate


def png_code_length(images):
  """L(x): the PNG size of each image quantised to 8 bits, in nats, as TensorFlow ops.

  Traceable (the `anomaly_score` serving signature runs it): values are clipped to [0, 1],
  rounded to 256 levels and encoded one image at a time with `tf.io.encode_png`.

  Args:
    images: [B, H, W, C] float32 in [0, 1], C in {1, 3, 4}.

  Returns:
    [B] float32, nats (8 ln 2 per byte, headers included: a constant of the image size).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)  # [B, H, W, C]
  sizes = tf.map_fn(lambda image: tf.strings.length(tf.io.encode_png(image, PNG_COMPRESSION)),
                    pixels, fn_output_signature=tf.int32)  # [B] bytes
  return tf.cast(sizes, tf.float32) * NATS_PER_BYTE


def png_code_length_numpy(images):
  """The PNG code length in nats with Pillow's encoder instead of TensorFlow's: a check of the
  magnitude (the two choose PNG's row filters differently, so sizes differ by a few percent)."""
  import io  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  out = []
  for image in np.asarray(images, np.float32):
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    out.append(len(buffer.getvalue()))
  return np.asarray(out, np.float64) * NATS_PER_BYTE


def with_complexity(outputs, images):
  """The IWAE outputs (`kerasvae.metrics.iwae.OUTPUTS`) of `images` plus `input_complexity`
  (L(x), `png_code_length`) and `anomaly_score` (`complexity_score`): what the `anomaly_score`
  serving signature, `kerasvae infer` and `kerasvae study ood` give. Tensors [B] each."""
  out = dict(outputs)
  out["input_complexity"] = png_code_length(images)  # [B]
  out["anomaly_score"] = complexity_score(out["log_likelihood"], out["input_complexity"])  # [B]
  return out


def score_images(model, images, num_samples, batch_size=500, seed=None):
  """`with_complexity` of `images` under `model` in batches, as NumPy: {name: [N] float64}.

  The IWAE draws come from `seed` (default: the serving signatures' fixed seed), so the numbers
  equal the exported `anomaly_score` signature's for the same K.
  """
  from kerasvae.metrics import iwae  # pylint: disable=import-outside-toplevel
  seed = iwae.DEFAULT_SEED if seed is None else seed
  parts = []
  for start in range(0, len(images), batch_size):
    batch = np.asarray(images[start:start + batch_size], np.float32)
    out = with_complexity(iwae.log_likelihood(model, batch, num_samples, seed=seed), batch)
    parts.append({k: np.asarray(v, np.float64) for k, v in out.items()})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def complexity_score(log_likelihood, code_length):
  """S(x) = −log p(x) − L(x) [2], nats; higher is more anomalous."""
  return -log_likelihood - code_length


def likelihood_ratio_score(log_likelihood, background_log_likelihood):
  """−(log p(x) − log p_0(x)) [3], nats; higher is more anomalous."""
  return -(log_likelihood - background_log_likelihood)


def mutate(images, rate, rng):
  """Ren et al.'s background-model inputs [3]: each pixel replaced, with probability `rate`, by a
  uniform draw from the 256 grey levels (in [0, 1]).

  Args:
    images: [N, H, W, C] float in [0, 1].
    rate: μ, the fraction of pixels replaced.
    rng: a `np.random.Generator`.
  """
  images = np.asarray(images, np.float32)
  replace = rng.random(images.shape) < rate
  noise = rng.integers(0, 256, images.shape).astype(np.float32) / 255.0
  return np.where(replace, noise, images)


# ------------------------------------------------------------------ detection metrics


def _labels_scores(in_scores, out_scores):
  in_scores = np.asarray(in_scores, np.float64).reshape(-1)
  out_scores = np.asarray(out_scores, np.float64).reshape(-1)
  if not len(in_scores) or not len(out_scores):
    raise ValueError("Expected at least one in- and one out-of-distribution score. Received: "
                     f"{len(in_scores)} and {len(out_scores)}")
  if not (np.isfinite(in_scores).all() and np.isfinite(out_scores).all()):
    raise ValueError("Expected finite scores. Received: NaN or infinity among them")
  labels = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
  return labels, np.concatenate([in_scores, out_scores])


def auroc(in_scores, out_scores):
  """The area under the ROC curve, out-of-distribution positive: the probability that a random
  OOD example scores above a random in-distribution one, ties counting one half (the
  Mann–Whitney U statistic over n_in · n_out)."""
  from scipy import stats  # pylint: disable=import-outside-toplevel
  labels, scores = _labels_scores(in_scores, out_scores)
  ranks = stats.rankdata(scores)  # average ranks for ties
  n_out = labels.sum()
  n_in = len(labels) - n_out
  return float((ranks[labels == 1].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def auprc(in_scores, out_scores):
  """Average precision with OOD as the positive class (scikit-learn's definition, step-wise)."""
  from sklearn import metrics  # pylint: disable=import-outside-toplevel
  labels, scores = _labels_scores(in_scores, out_scores)
  return float(metrics.average_precision_score(labels, scores))


def fpr_at_tpr(in_scores, out_scores, tpr=0.95):
  """The fraction of in-distribution examples flagged when the threshold flags `tpr` of the
  OOD ones (the threshold is the OOD scores' (1 − tpr) quantile, flagged: score ≥ it)."""
  in_scores = np.asarray(in_scores, np.float64)
  out_scores = np.asarray(out_scores, np.float64)
  _labels_scores(in_scores, out_scores)
  threshold = np.sort(out_scores)[int(math.floor((1.0 - tpr) * len(out_scores)))]
  return float(np.mean(in_scores >= threshold))


def roc_curve(in_scores, out_scores):
  """(false positive rates, true positive rates) of every threshold, for a figure."""
  from sklearn import metrics  # pylint: disable=import-outside-toplevel
  labels, scores = _labels_scores(in_scores, out_scores)
  fpr, tpr, _ = metrics.roc_curve(labels, scores)
  return fpr, tpr


def detection_metrics(in_scores, out_scores):
  """{"auroc", "auprc", "fpr_at_95_tpr"} of a score (higher = more anomalous)."""
  return {"auroc": auroc(in_scores, out_scores), "auprc": auprc(in_scores, out_scores),
          "fpr_at_95_tpr": fpr_at_tpr(in_scores, out_scores, 0.95)}


def threshold_at(scores, quantile):
  """The anomaly threshold fitted on in-distribution (validation) scores: their `quantile`, so
  about 1 − quantile of in-distribution examples score above it."""
  scores = np.asarray(scores, np.float64)
  if not len(scores):
    raise ValueError("Expected validation scores to fit the threshold on. Received: none")
  return float(np.quantile(scores, quantile))
