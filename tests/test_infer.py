"""`kerasvae infer`: its numbers against independent computations, a real `kill -9` and resume,
and its peak memory.

A tiny VAE is trained on generated 8x8 image folders (`tests/folders.py`); infer writes one
gzip TFRecord shard per `infer.examples_per_shard` examples.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from kerasvae import cli
from kerasvae.metrics import anomaly
from kerasvae.metrics import iwae
from kerasvae.steps import infer
from kerasvae.steps import train
from tests import folders
from tests.pipeline_helpers import subprocess_env

# The stated bound on a scoring process's peak resident memory (TensorFlow itself is most of it:
# its thread pools and allocator caches vary with the machine's load, from about 0.9 to 1.8 GB for
# this test's process on 2 cores; flat over 48 shards when watched with ps).
PEAK_RSS_BOUND_MB = 2500


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("infer")
  train_folder = folders.write_folder(tmp / "train", folders.blobs(300, seed=0))
  new = folders.write_folder(tmp / "new", folders.blobs(240, seed=1))
  config = folders.folder_config(tmp, train_folder, infer={"num_samples": 20})
  assert cli.main(["run", "--config", str(config)]) == 0
  run_dir = next((tmp / "runs").glob("folders-*"))
  return tmp, config, run_dir, new


def read_shards(infer_dir):
  rows = []
  for index in infer.finished_shards(infer_dir):
    for record in tf.data.TFRecordDataset(str(infer_dir / infer.shard_name(index)),
                                          compression_type="GZIP").as_numpy_iterator():
      feature = tf.train.Example.FromString(record).features.feature
      rows.append({k: (list(v.float_list.value) or list(v.int64_list.value)
                       or list(v.bytes_list.value)) for k, v in feature.items()})
  return rows


def folder_images(folder):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from kerasvae.data import sources  # pylint: disable=import-outside-toplevel
  from kerasvae.data.config import ImageFolderConfig  # pylint: disable=import-outside-toplevel
  files = sources.ImageFolderSource(ImageFolderConfig(root=str(folder))).files  # stored order
  return np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p, _ in files])


def test_infer_writes_what_the_model_computes(trained, capsys):
  tmp, config, run_dir, new = trained
  assert cli.main(["infer", "--config", str(config), "--images", str(new),
                   "--set", "infer.examples_per_shard=100"]) == 0
  out = capsys.readouterr().out
  infer_dir = run_dir / "infer" / out.split("infer/")[-1].split()[0].split("/")[0]
  assert [p.name for p in sorted(infer_dir.glob("scores-*"))] == [
      infer.shard_name(i) for i in range(3)]  # 100 + 100 + 40
  rows = read_shards(infer_dir)
  assert [r["index"][0] for r in rows] == list(range(240))
  x = folder_images(new)
  model = train.load_model(run_dir / "train")
  mean, log_var = model.posterior_params(x)
  np.testing.assert_allclose([r["latent_mean"] for r in rows], mean.numpy(), atol=1e-5)
  np.testing.assert_allclose([r["latent_scale"] for r in rows], np.exp(0.5 * log_var.numpy()),
                             rtol=1e-4)
  log_px = iwae.log_likelihood(model, x, 20, seed=iwae.DEFAULT_SEED)["log_likelihood"].numpy()
  pixels = np.round(x * 255).astype(np.uint8)
  encoded = [tf.io.encode_png(p, 9).numpy() for p in pixels]
  png = np.array([len(e) for e in encoded]) * 8 * np.log(2)  # bytes -> nats
  for e, p in zip(encoded[:5], pixels):  # lossless: the code length is of the image itself
    np.testing.assert_array_equal(tf.io.decode_png(e).numpy(), p)
  # Pillow's encoder (other filter choices) gives sizes within a few percent.
  np.testing.assert_allclose(anomaly.png_code_length_numpy(x), png, rtol=0.1)
  got = {k: np.array([r[k][0] for r in rows]) for k in infer.PER_EXAMPLE}
  np.testing.assert_allclose(got["log_likelihood"], log_px, rtol=1e-4, atol=1e-2)
  np.testing.assert_allclose(got["input_complexity"], png, rtol=1e-6)
  np.testing.assert_allclose(got["anomaly_score"], -log_px - png, rtol=1e-4, atol=1e-2)
  summary = json.loads((infer_dir / "summary.json").read_text())
  threshold = json.loads((infer_dir / "threshold.json").read_text())
  assert summary["threshold"] == pytest.approx(
      np.quantile(threshold["validation_scores"], 0.99))
  assert summary["share_above_threshold"] == pytest.approx(
      np.mean(got["anomaly_score"] > summary["threshold"]))
  assert summary["anomaly_score_quantiles"]["0.5"] == pytest.approx(
      np.median(got["anomaly_score"]))
  assert list((infer_dir / "logs").glob("events.out.tfevents.*"))


def test_infer_through_the_export_gives_the_same_scores(trained, capsys):
  tmp, config, run_dir, new = trained
  version = tmp / "saved_models" / "folders" / "1"
  # The run's own model over the same images (reused when another test already ran it: the
  # module's tests may run in different pytest-xdist workers, each with its own fixture).
  assert cli.main(["infer", "--config", str(config), "--images", str(new),
                   "--set", "infer.examples_per_shard=100"]) == 0
  own = run_dir / "infer" / capsys.readouterr().out.split("infer/")[-1].split("/")[0]
  assert cli.main(["infer", "--config", str(config), "--images", str(new),
                   "--model", str(version), "--set", "infer.examples_per_shard=100"]) == 0
  exported = run_dir / "infer" / capsys.readouterr().out.split("infer/")[-1].split("/")[0]
  assert own != exported and (own / "metadata.json").is_file()
  a, b = read_shards(exported), read_shards(own)
  np.testing.assert_allclose([r["anomaly_score"] for r in a], [r["anomaly_score"] for r in b],
                             rtol=1e-5, atol=1e-3)


def test_infer_resumes_after_kill_9_under_the_memory_bound(trained):
  tmp, config, run_dir, new = trained
  args = [sys.executable, "-m", "kerasvae.cli", "infer", "--config", str(config), "--images",
          str(new), "--set", "infer.examples_per_shard=20", "--set", "infer.batch_size=5",
          "--set", "infer.num_samples=1000"]
  process = subprocess.Popen(args, cwd=tmp, env=subprocess_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  infer_root = run_dir / "infer"
  before = set(infer_root.iterdir()) if infer_root.is_dir() else set()
  deadline = time.time() + 240
  first = None
  while time.time() < deadline and process.poll() is None:
    shards = [p for p in infer_root.glob("*/scores-00001.tfrecord.gz") if p.parent not in before]
    if shards:
      first = shards[0].parent
      break
    time.sleep(0.2)
  assert first is not None, "no shard finished before the deadline"
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  assert process.returncode == -signal.SIGKILL
  kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first.glob("scores-*")}
  assert not (first / "metadata.json").exists() and len(kept) >= 2
  assert not list(first.glob(".*")) or all(".tmp" in p.name for p in first.glob(".*"))
  # The resumed process's own peak (os.wait4), not RUSAGE_CHILDREN: under pytest-xdist that is the
  # largest of every process this worker has waited for, trainings of other tests included.
  resumed = subprocess.Popen(args, cwd=tmp, env=subprocess_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
  output = resumed.stdout.read()
  _, status, usage = os.wait4(resumed.pid, 0)
  resumed.returncode = os.waitstatus_to_exitcode(status)
  assert resumed.returncode == 0, output
  assert f"resuming after {len(kept)} finished shards" in output
  for name, identity in kept.items():  # the finished shards were kept, not rewritten
    p = first / name
    assert (p.stat().st_ino, p.stat().st_mtime_ns) == identity
  rows = read_shards(first)
  assert [r["index"][0] for r in rows] == list(range(240))
  assert not [p for p in first.iterdir() if p.name.startswith(".")]
  # Resumed or not, an example's numbers are those of the model (fixed IWAE draws).
  model = train.load_model(run_dir / "train")
  x = folder_images(new)
  for i in (0, 239):
    log_px = iwae.log_likelihood(model, x[i:i + 1], 1000, seed=iwae.DEFAULT_SEED)
    assert rows[i]["log_likelihood"][0] == pytest.approx(float(log_px["log_likelihood"][0]),
                                                         abs=1e-2)
  peak_mb = usage.ru_maxrss / 1024
  assert peak_mb < PEAK_RSS_BOUND_MB, f"peak RSS {peak_mb:.0f} MB"
