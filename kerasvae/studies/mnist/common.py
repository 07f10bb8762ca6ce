"""What the MNIST-family studies share: the sample-quality and ELBO columns and their text,
the study's held-out images, and small table and wording helpers."""

import numpy as np
import tensorflow as tf

from kerasvae import viz
from kerasvae.data import reader
from kerasvae.studies import core
from kerasvae.studies import report
from kerasvae.studies.report import fmt

SAMPLE_COLUMNS = (("frechet_distance", "FD ↓", 1), ("classifier_confidence", "confidence ↑", 3),
                  ("class_entropy_bits", "class entropy (bits)", 2),
                  ("grey_fraction", "grey pixels", 3))
ELBO_COLUMNS = (("elbo", "ELBO", 2), ("reconstruction", "reconstruction", 2), ("kl", "KL", 2),
                ("iwae_log_likelihood", "IWAE log p(x)", 2), ("active_units", "active units", 0))


def _sample_column_text(words):
  """What each sample-quality column means, named for the data (`report.DataWords`)."""
  w = words
  return {
      "frechet_distance":
          f"*FD* is a Fréchet distance between generated and held-out {w.nouns} in the "
          "64-dimensional feature space of a small convolutional classifier trained once for "
          f"this study on the training {w.nouns} (an FID analogue for "
          f"{w.name or 'this data'}; lower is closer to real data; it penalises both blur and a "
          "lack of variety).",
      "classifier_confidence":
          "*confidence* is that classifier's mean top probability on generated images (do they "
          f"look like some {w.kind}?).",
      "class_entropy_bits":
          "*class entropy* is the entropy of the histogram of predicted classes over the "
          f"samples: 3.32 bits when the ten {w.classes} are equally frequent, lower when some "
          f"{w.classes} are missing (diversity).",
      "grey_fraction":
          "*grey pixels* is the fraction of pixels strictly between 0.2 and 0.8 (blur: a sharp "
          f"{w.noun} is mostly black and white).",
  }


def sample_quality_text(words, n, columns=SAMPLE_COLUMNS):
  """The paragraph explaining the sample-quality `columns` of a table, and only those.

  Args:
    words: how to name the data (`report.DataWords`, `context.data_words`).
    n: the number of samples scored.
    columns: the table's sample-quality columns.
  """
  text = _sample_column_text(words)
  return ("**Sample quality.** " + " ".join(text[key] for key, _, _ in columns)
          + f" Samples are the decoder's mean images of {n} random latent points; the row *real "
          f"{words.nouns}* scores {n} real training {words.nouns} the same way, the floor each "
          "number can reach.")


def _decode_fn(model):
  return lambda z: model.decode_mean(tf.constant(z, tf.float32)).numpy()  # noqa: E731


def _grid(images, ncols, scale=2):
  return viz.image_grid(viz.upscale(np.asarray(images), scale), ncols=ncols)


def _cells(metrics, columns):
  return [fmt(metrics.get(key), digits) if digits else fmt(metrics.get(key))
          for key, _, digits in columns]


def _classifier_note(context):
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  meta = artifacts.read_json(context.output / "classifier.json")
  nouns = context.data_words.nouns
  return (f" The classifier was trained for {context.settings.classifier_epochs} epochs on "
          f"{meta['train_examples']:,} training {nouns} and classifies "
          f"{100 * meta['eval_accuracy']:.1f}% of the held-out {nouns} correctly; it is saved as "
          f"`{core.CLASSIFIER_FILE}`.")


def _eval_images(context, n):
  """The first n held-out images as the models see them (one fixed binarisation) and labels."""
  data = reader.load_split(context.examples_dir, "eval", limit=n)
  return data["image"], data.get("label")


def _argbest(values, higher=True):
  values = np.asarray(values, dtype=np.float64)
  return int(np.nanargmax(values) if higher else np.nanargmin(values))


_trend = report.trend


def _series(names, values, digits=2):
  return ", ".join(f"{v:.{digits}f} ({n})" for n, v in zip(names, values))


def _with_reference(context, trials, columns):
  """Table rows of the sample columns with a final 'real digits' (or 'real images') row."""
  reference = core.real_data_reference(context)
  return reference, [f"real {context.data_words.nouns}"] + _cells(reference, columns)
