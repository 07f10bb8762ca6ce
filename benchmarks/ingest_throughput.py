"""Throughput of the ingest step (images/s), its peak memory by dataset size, and the reader.

Usage:
  python -m benchmarks.ingest_throughput [--mnist-dir ../shared/data/mnist]
      [--dsprites-examples 100000] [--memory-sizes 100000 1300000] [--memory-only]
      [--output /tmp/kerasvae-bench]

Ingest is timed end to end (source read, checks, serialisation, gzip TFRecord
writes, statistics), with TensorFlow already imported. The reader is timed
alone (no model) after one warm-up epoch fills its cache, with shuffling and
repetition on, as in training.

Peak memory: for each of `--memory-sizes`, an IDX gzip file of that many blank
28x28 images (1.3 million inflate to 1 GB from 1 MB of gzip) and its labels
is ingested with the default config in a fresh process, which reports its peak
resident set (VmHWM, reset through /proc/self/clear_refs after TensorFlow is
imported) and its resident set before the ingest. Streaming ingest keeps the
peak the same at every size; reading the whole array first makes it grow by
the decompressed size.
"""

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
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


def write_blank_idx(directory, num_images, side=28):
  """Writes `num_images` blank side x side images and labels (0..9) as IDX gzip, in blocks."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  images, labels = directory / "images-idx3-ubyte.gz", directory / "labels-idx1-ubyte.gz"
  block = 4096
  with gzip.open(images, "wb", compresslevel=9) as f:
    f.write(struct.pack(">BBBB3I", 0, 0, 0x08, 3, num_images, side, side))
    zeros = bytes(block * side * side)
    for start in range(0, num_images, block):
      f.write(zeros[:min(block, num_images - start) * side * side])
  with gzip.open(labels, "wb", compresslevel=9) as f:
    f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, num_images))
    digits = bytes(range(10)) * (block // 10 + 1)
    for start in range(0, num_images, block):
      f.write(digits[:min(block, num_images - start)])
  return images, labels


def ingest_in_this_process(images, labels, output_dir):
  """The child of `measure_ingest`: one ingest, then a JSON line of seconds, images, memory."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel,unused-import
  from benchmarks.train_throughput import (  # pylint: disable=import-outside-toplevel
      peak_memory_mb, reset_peak_memory)
  from kerasvae.config import from_dict  # pylint: disable=import-outside-toplevel
  from kerasvae.data.config import IngestConfig  # pylint: disable=import-outside-toplevel
  config = from_dict(IngestConfig, {"data": {"source": "idx", "idx": {
      "images": images, "labels": labels}}})
  reset_peak_memory()
  before = peak_memory_mb()  # just reset: the resident set now
  seconds, count = time_ingest(config, Path(output_dir))
  print(json.dumps({"seconds": seconds, "images": count, "rss_before_mb": before,
                    "peak_rss_mb": peak_memory_mb()}))


def measure_ingest(images, labels, output_dir):
  """Ingests in a fresh process; returns its seconds, images and memory (MB)."""
  repo = Path(__file__).resolve().parents[1]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
             PYTHONPATH=os.pathsep.join([str(repo)] + [p for p in os.environ.get(
                 "PYTHONPATH", "").split(os.pathsep) if p]))
  script = ("from benchmarks.ingest_throughput import ingest_in_this_process as f; "
            f"f({str(images)!r}, {str(labels)!r}, {str(output_dir)!r})")
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                        text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f"The ingest child failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_by_size(sizes, output):
  """Peak RSS and images/s of ingesting blank IDX gzip data of each size, one process each."""
  results = {}
  for size in sizes:
    folder = output / f"blank-{size}"
    images, labels = write_blank_idx(folder / "source", size)
    measured = measure_ingest(images, labels, folder / "examples")
    results[size] = measured
    print(f"ingest {size:,} blank 28x28 IDX gzip images ({images.stat().st_size / 2**20:.2f} MiB "
          f"gzip, {size * 784 / 2**20:,.0f} MiB inflated): {measured['seconds']:.1f} s = "
          f"{measured['images'] / measured['seconds']:,.0f} images/s; peak RSS "
          f"{measured['peak_rss_mb']:,.0f} MB (before the ingest {measured['rss_before_mb']:,.0f} "
          f"MB, so +{measured['peak_rss_mb'] - measured['rss_before_mb']:,.0f} MB)", flush=True)
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = Path(__file__).resolve().parents[1]
  parser.add_argument("--mnist-dir", default=str(repo.parent / "shared" / "data" / "mnist"))
  parser.add_argument("--dsprites-examples", type=int, default=100000)
  parser.add_argument("--output", default=None, help="Directory for the artifacts (default: a temp dir).")
  parser.add_argument("--seconds", type=float, default=5.0, help="Seconds per reader measurement.")
  parser.add_argument("--memory-sizes", type=int, nargs="*", default=[100000, 1300000],
                      help="Numbers of blank images whose ingest's peak RSS is measured.")
  parser.add_argument("--memory-only", action="store_true",
                      help="Only the peak-memory measurements.")
  args = parser.parse_args(argv)

  import tensorflow as tf  # pylint: disable=import-outside-toplevel,unused-import
  from benchmarks.train_throughput import (  # pylint: disable=import-outside-toplevel
      load_average, machine_description)
  from kerasvae.config import from_dict  # pylint: disable=import-outside-toplevel
  from kerasvae.data.config import IngestConfig  # pylint: disable=import-outside-toplevel

  output = Path(args.output or tempfile.mkdtemp(prefix="kerasvae-bench-"))
  print(f"{machine_description()}; {load_average()}", flush=True)
  results = {}
  if args.memory_sizes:
    for size, measured in memory_by_size(args.memory_sizes, output).items():
      results[f"ingest {size} blank images (peak RSS MB)"] = measured["peak_rss_mb"]
      results[f"ingest {size} blank images (images/s)"] = measured["images"] / measured["seconds"]
    print(load_average(), flush=True)
  if args.memory_only:
    print(f"artifacts in {output}")
    return results
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
