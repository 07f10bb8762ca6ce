"""Ingest in bounded memory (issue 30): a declared size larger than the data is named before
anything is allocated, and a large source streams at a peak RSS that does not follow its size.

Each measurement runs in a fresh process: the peak resident set (VmHWM, reset after the imports)
is that process's own, and whether TensorFlow was imported shows how early an error came.
"""

import gzip
import json
import re
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from benchmarks import ingest_throughput
from kerasvae.artifacts import fingerprint, fingerprint_items
from tests import pipeline_helpers

SIDE = 28


def run_script(script, *args, timeout=300):
  """Runs `script` in a fresh Python; returns the JSON of its last output line."""
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                        capture_output=True, text=True, env=pipeline_helpers.subprocess_env(),
                        timeout=timeout, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def idx_header(type_code, dims):
  return struct.pack(">BBBB", 0, 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


# ------------------------------------------------------ a declared size larger than the data

INGEST_ERROR = """
    import json, sys, time
    from kerasvae.data.ingest import ingest
    from kerasvae.data.sources import DataError
    started = time.perf_counter()
    try:
      ingest({"data": {"source": "idx", "idx": json.loads(sys.argv[1])}}, sys.argv[2])
      message = None
    except DataError as e:
      message = str(e)
    print(json.dumps({"message": message, "seconds": time.perf_counter() - started,
                      "tensorflow": "tensorflow" in sys.modules}))
    """

BILLION = 10**9
DATA = np.random.RandomState(0).randint(0, 256, 1000).astype(np.uint8).tobytes()  # 1,000 bytes


def lying_files(root):
  """(id, idx block, pattern): headers that declare more data than their files hold."""
  lying = idx_header(0x08, (BILLION, SIDE, SIDE)) + DATA
  (root / "lying.gz").write_bytes(gzip.compress(lying))
  (root / "lying.idx").write_bytes(lying)
  (root / "ten.gz").write_bytes(gzip.compress(idx_header(0x08, (10, SIDE, SIDE))
                                              + bytes(10 * SIDE * SIDE)))
  (root / "short-labels.gz").write_bytes(gzip.compress(idx_header(0x08, (10,)) + b"\1\2\3"))
  declared = BILLION * SIDE * SIDE
  return [
      ("gzip", {"images": "lying.gz"},
       rf"lying\.gz: expected {declared} bytes of data for dims \[{BILLION}, 28, 28\]\. "
       r"Received: 1000 bytes \(truncated file\)"),
      ("raw", {"images": "lying.idx"},
       rf"lying\.idx: expected {declared} bytes of data for dims \[{BILLION}, 28, 28\]\. "
       r"Received: 1000 bytes \(truncated or padded file\)"),
      ("gzip-labels", {"images": "ten.gz", "labels": "short-labels.gz"},
       r"short-labels\.gz: expected 10 bytes of data for dims \[10\]\. Received: 3 bytes"),
  ]


@pytest.mark.parametrize("case", range(3), ids=["gzip", "raw", "gzip-labels"])
def test_declared_size_larger_than_the_data_is_named_at_once(case, tmp_path):
  """A header declaring 10^9 images (784 GB) in a 1 KB file: a DataError naming the file, the
  declared dims, the bytes there, in under a second, before TensorFlow is imported; no output."""
  case_id, block, pattern = lying_files(tmp_path)[case]
  assert (tmp_path / block["images"]).stat().st_size < 2048
  block = {k: str(tmp_path / v) for k, v in block.items()}
  result = run_script(INGEST_ERROR, json.dumps(block), tmp_path / "out" / "examples")
  assert result["message"] is not None, case_id
  assert re.search(pattern, result["message"]), result["message"]
  assert str(tmp_path) in result["message"]  # the file, by its full path
  assert result["seconds"] < 1.0, result
  assert not result["tensorflow"], result
  assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -------------------------------------------------------------------- peak RSS of an ingest

def test_streamed_idx_ingest_peak_rss_does_not_follow_the_data(tmp_path):
  """300,000 blank 28x28 images (235 MB inflated from 0.2 MB of gzip) with labels, ingested as
  `kerasvae ingest` does: the peak resident set rises by < 100 MB over the process's own after
  importing TensorFlow (~45 MB measured; reading the whole array first rose by 262 MB, and by
  1,019 MB at 1.3 million images)."""
  count = 300_000
  images, labels = ingest_throughput.write_blank_idx(tmp_path / "source", count)
  assert images.stat().st_size < 1 << 20
  measured = ingest_throughput.measure_ingest(images, labels, tmp_path / "examples")
  assert measured["images"] == count
  rise = measured["peak_rss_mb"] - measured["rss_before_mb"]
  assert rise < 100, measured


# ----------------------------------------------------------- peak RSS of npy / npz sources

SOURCE_PEAK = """
    import json, sys
    from benchmarks.train_throughput import peak_memory_mb, reset_peak_memory
    from kerasvae.config import from_dict
    from kerasvae.data.config import IngestConfig
    from kerasvae.data.sources import open_source
    source = open_source(from_dict(IngestConfig, {"data": json.loads(sys.argv[1])}).data)
    reset_peak_memory()
    before = peak_memory_mb()
    images = labels = 0
    for _, chunk in source.chunks():
      images += len(chunk["images"])
      labels += int(chunk["labels"].sum()) if "labels" in chunk else 0
    print(json.dumps({"images": images, "label_sum": labels, "rise_mb": peak_memory_mb() - before}))
    """


def write_blank_npy(stream, count):
  """A .npy of `count` blank 28x28 uint8 images, written a block at a time."""
  np.lib.format.write_array_header_1_0(
      stream, {"descr": "|u1", "fortran_order": False, "shape": (count, SIDE, SIDE)})
  block = bytes(4096 * SIDE * SIDE)
  for start in range(0, count, 4096):
    stream.write(block[:min(4096, count - start) * SIDE * SIDE])


@pytest.mark.parametrize("kind", ["npy", "npz-compressed", "npz-stored"])
def test_npy_and_npz_sources_stream_at_bounded_rss(kind, tmp_path):
  """200,000 blank images (157 MB as arrays): chunks of a .npy, or of a deflated or stored
  .npz member with its labels, raise the peak resident set by < 48 MB (np.load read it
  whole: > 157 MB)."""
  count = 200_000
  if kind == "npy":
    path = tmp_path / "images.npy"
    with open(path, "wb") as f:
      write_blank_npy(f, count)
  else:
    path = tmp_path / "images.npz"
    compression = zipfile.ZIP_DEFLATED if kind == "npz-compressed" else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression) as archive:
      with archive.open("images.npy", "w", force_zip64=True) as f:
        write_blank_npy(f, count)
      with archive.open("labels.npy", "w") as f:
        np.lib.format.write_array(f, np.arange(count) % 10)
  result = run_script(SOURCE_PEAK, json.dumps({"source": "npz", "npz": {"path": str(path)}}))
  assert result["images"] == count
  assert result["label_sum"] == (0 if kind == "npy" else int((np.arange(count) % 10).sum()))
  assert result["rise_mb"] < 48, result


def test_image_folder_content_hash_is_made_file_by_file_and_unchanged():
  """The image folder's content hash digests its listing an item at a time (not one JSON text
  of all files) and gives the value it gave before, so existing artifacts are still reused."""
  items = [("a/1.png", 0, "d" * 64), ("b/é 2.png", 1, "e" * 64), ("c.png", None, "f" * 64)]
  for some in (items, items[:1], []):
    assert fingerprint_items(iter(some)) == fingerprint(some)
