"""The statistics of a set of images (StatisticsGen's part): what ingest records per split and
what `kerasvae validate` computes for new data, so that both are the same numbers.

In reader units (the pixel values the model sees: [0, 1] for scaled data): the count, pixel
mean, standard deviation, minimum and maximum, a 256-bin pixel histogram and the label
histogram. Uint8 pixels are counted exactly (bin i holds grey level i); other dtypes are
binned by value over `[0, white]`, values outside falling in the edge bins (the minimum and
maximum still tell how far out they lie).

  stats = ImageStatistics(scale=1 / 255)
  for chunk in chunks:
    stats.add(chunk["images"], chunk.get("labels"))
  stats.to_dict()   # what Split-<name>/statistics.json holds
"""

import numpy as np

NUM_BINS = 256
BLOCK = 1 << 20  # pixel values summed at a time: bounded memory for a large image


class ImageStatistics:
  """Accumulates the statistics of image chunks in bounded memory (a histogram and sums).

  Args:
    scale: multiplies a stored pixel value into reader units (1/255 for uint8 data scaled to
      [0, 1], 1 otherwise).
  """

  def __init__(self, scale):
    self.scale = scale
    self.count = 0
    self.uint8_histogram = np.zeros(NUM_BINS, np.int64)  # uint8 images: exact statistics
    self.value_histogram = np.zeros(NUM_BINS, np.int64)  # other dtypes, binned by value
    self.pixel_sum = 0.0
    self.pixel_sumsq = 0.0
    self.num_pixels = 0
    self.low = np.inf
    self.high = -np.inf
    self.labels = {}
    self.formats = {}  # how the source's files were decoded (image folders), counted
    self.dtype = None
    self.shape = None

  @property
  def white(self):
    """The top of the histogram's range in reader units: 1 for scaled data, else 255·scale."""
    return 255.0 * self.scale if self.scale != 1.0 else (
        1.0 if self.dtype not in (None, "uint8") else 255.0)

  def add(self, images, labels=None, formats=None):
    """Adds a chunk: images [n, H, W, C] (stored dtype), labels [n] or None, and how each
    image's file was decoded ([n] strings such as "png 16-bit grey", image folders) or None."""
    images = np.asarray(images)
    self.count += images.shape[0]
    self.dtype = self.dtype or str(images.dtype)
    self.shape = self.shape or [int(s) for s in images.shape[1:]]
    # In blocks of BLOCK values: bincount's int64 copy or a float64 copy of a whole large
    # image would be 8 bytes a pixel (a 9400 x 9400 PNG: 700 MB).
    flat = images.reshape(-1)
    for start in range(0, flat.size, BLOCK):
      block = flat[start:start + BLOCK]
      if images.dtype == np.uint8:
        self.uint8_histogram += np.bincount(block, minlength=NUM_BINS)
      else:
        values = block.astype(np.float64) * self.scale
        self.pixel_sum += float(values.sum())
        self.pixel_sumsq += float(np.square(values).sum())
        self.num_pixels += values.size
        bins = np.clip(np.floor(values / self.white * NUM_BINS), 0, NUM_BINS - 1).astype(np.int64)
        self.value_histogram += np.bincount(bins, minlength=NUM_BINS)
    if images.size:
      self.low = min(self.low, float(images.min()) * self.scale)
      self.high = max(self.high, float(images.max()) * self.scale)
    if labels is not None:
      for value, count in zip(*np.unique(np.asarray(labels), return_counts=True)):
        self.labels[int(value)] = self.labels.get(int(value), 0) + int(count)
    if formats is not None:
      for value, count in zip(*np.unique(np.asarray(formats), return_counts=True)):
        self.formats[str(value)] = self.formats.get(str(value), 0) + int(count)

  def to_dict(self):
    """{num_examples, pixel_mean, pixel_std, pixel_min, pixel_max, pixel_histogram (counts of
    NUM_BINS equal bins over [0, pixel_histogram_max]), pixel_histogram_max,
    label_histogram ({label: count} or None)}."""
    if self.uint8_histogram.any():
      values = np.arange(NUM_BINS, dtype=np.float64) * self.scale
      total = self.uint8_histogram.sum()
      mean = float((values * self.uint8_histogram).sum() / total)
      var = float((np.square(values - mean) * self.uint8_histogram).sum() / total)
      histogram = self.uint8_histogram
    elif self.num_pixels:
      mean = self.pixel_sum / self.num_pixels
      var = max(self.pixel_sumsq / self.num_pixels - mean * mean, 0.0)
      histogram = self.value_histogram
    else:
      mean, var, histogram = None, None, None
    return {
        "num_examples": self.count,
        "pixel_mean": mean,
        "pixel_std": None if var is None else float(np.sqrt(var)),
        "pixel_min": None if histogram is None else self.low,
        "pixel_max": None if histogram is None else self.high,
        "pixel_histogram": None if histogram is None else [int(c) for c in histogram],
        "pixel_histogram_max": self.white,
        "label_histogram": {str(k): v for k, v in sorted(self.labels.items())} or None,
        **({"image_formats": dict(sorted(self.formats.items()))} if self.formats else {}),
    }


def histogram_quantile(statistics, q):
  """The `q` quantile of the pixel values from a statistics dict's histogram (a bin's lower
  edge, in reader units: grey level i/255 of scaled uint8 data exactly)."""
  counts = np.asarray(statistics["pixel_histogram"], np.float64)
  cumulative = np.cumsum(counts) / counts.sum()
  index = int(np.searchsorted(cumulative, q, side="left"))
  step = statistics["pixel_histogram_max"] / (NUM_BINS - 1)
  return min(index, NUM_BINS - 1) * step


DRIFT_BINS = 16  # the histograms' bins merged for the drift comparison: few enough that a few
# thousand pixels give a divergence near 0 for data from the same distribution


def jensen_shannon(p, q, bins=DRIFT_BINS):
  """The Jensen–Shannon divergence (base 2, in [0, 1]) of two histograms (counts), their
  NUM_BINS bins merged into `bins` equal groups first."""
  p = np.asarray(p, np.float64).reshape(bins, -1).sum(1)
  q = np.asarray(q, np.float64).reshape(bins, -1).sum(1)
  p, q = p / p.sum(), q / q.sum()
  m = 0.5 * (p + q)

  def kl(a):
    mask = a > 0
    return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))
  return 0.5 * kl(p) + 0.5 * kl(q)


def label_frequencies(statistics):
  """{label: fraction} of a statistics dict, or None without labels."""
  histogram = statistics.get("label_histogram")
  if not histogram:
    return None
  total = sum(histogram.values())
  return {int(k): v / total for k, v in histogram.items()}
