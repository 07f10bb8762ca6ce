"""Throughput of the ingest step (images/s) and of the tf.data reader (batches/s).

Usage:
  python -m benchmarks.ingest_throughput [--mnist-dir ../shared/data/mnist]
      [--dsprites-examples 100000] [--output /tmp/kerasvae-bench]

Ingest is timed end to end (source read, checks, serialisation, gzip TFRecord
writes, statistics), with TensorFlow already imported. The reader is timed
alone (no model) after one warm-up epoch fills its cache, with shuffling and
repetition on, as in training.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def time_ingest(config, output_dir):
  """Returns (seconds, images) of a fresh ingest."""
  from kerasvae.data.ingest import ingest  # pylint: disable=import-outside-toplevel
  from kerasvae.data.reader import read_metadata  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  ingest(config, output_dir, force=True)
  seconds = time.perf_counter() - start
  images = sum(s["num_examples"] for s in read_metadata(output_dir)["splits"].values())
  return seconds, images


def reader_batches_per_second(artifact_dir, batch_size, seconds=5.0):
  """Batches/s of the training reader alone, as `kerasvae train` builds it, after a warm-up epoch."""
  from benchmarks.train_throughput import reader_rate  # pylint: disable=import-outside-toplevel
  return reader_rate(artifact_dir, batch_size, seconds) / batch_size


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = Path(__file__).resolve().parents[1]
  parser.add_argument("--mnist-dir", default=str(repo.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--dsprites-examples", type=int, default=100000)
  parser.add_argument("--output", default=None, help="Directory for the artifacts (default: a temp dir).")
  parser.add_argument("--seconds", type=float, default=5.0, help="Seconds per reader measurement.")
  args = parser.parse_args(argv)

  import tensorflow as tf  # pylint: disable=import-outside-toplevel,unused-import
  from kerasvae.config import from_dict  # pylint: disable=import-outside-toplevel
  from kerasvae.data.config import IngestConfig  # pylint: disable=import-outside-toplevel

  output = Path(args.output or tempfile.mkdtemp(prefix="kerasvae-bench-"))
  results = {}
  mnist = Path(args.mnist_dir)
  if (mnist / "t10k-images-idx3-ubyte.gz").is_file():
    config = from_dict(IngestConfig, {"data": {"source": "idx", "idx": {
        "images": str(mnist / "t10k-images-idx3-ubyte.gz"),
        "labels": str(mnist / "t10k-labels-idx1-ubyte.gz")}}})
    seconds, images = time_ingest(config, output / "mnist")
    results["ingest MNIST t10k (images/s)"] = images / seconds
    print(f"ingest MNIST: {images} images in {seconds:.2f} s = {images / seconds:,.0f} images/s")
    for batch_size in (128, 1024):
      rate = reader_batches_per_second(output / "mnist", batch_size, args.seconds)
      results[f"reader MNIST batch {batch_size} (batches/s)"] = rate
      print(f"reader MNIST batch {batch_size}: {rate:,.0f} batches/s "
            f"({rate * batch_size:,.0f} images/s)")
  else:
    print(f"MNIST not found at {mnist}; skipping the MNIST numbers.")

  config = from_dict(IngestConfig, {"data": {"source": "dsprites", "dsprites": {
      "num_examples": args.dsprites_examples, "seed": 0}}})
  seconds, images = time_ingest(config, output / "dsprites")
  results["ingest dSprites (images/s)"] = images / seconds
  print(f"ingest dSprites: {images} images in {seconds:.2f} s = {images / seconds:,.0f} images/s")
  for batch_size in (128, 1024):
    rate = reader_batches_per_second(output / "dsprites", batch_size, args.seconds)
    results[f"reader dSprites batch {batch_size} (batches/s)"] = rate
    print(f"reader dSprites batch {batch_size}: {rate:,.0f} batches/s "
          f"({rate * batch_size:,.0f} images/s)")
  print(f"artifacts in {output}")
  return results


if __name__ == "__main__":
  main()
