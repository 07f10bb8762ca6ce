"""Every bad input a hostile user can give ends in a named error, exit code 2, and nothing left behind.

Each case feeds one bad input through the real `kerasvae` command (in-process `cli.main`,
so TensorFlow is imported once; two cases run a fresh process) or the real data loader,
and asserts the message (what, where, what was expected), the exit code, and that the
working directory holds nothing new: no `runs/`, no empty run folder, no half-written file.
"""

import gzip
import os
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests import pipeline_helpers

# ------------------------------------------------------------------------------- helpers


def tree(root):
  """Every path under `root` (files and folders, hidden ones too), relative."""
  return {p.relative_to(root).as_posix() for p in Path(root).rglob("*")}


def run_main(args, cwd, monkeypatch, capsys):
  """`kerasvae ARGS` in this process, from `cwd`; returns (exit code, stderr)."""
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(cwd)
  capsys.readouterr()
  code = cli.main(args)
  return code, capsys.readouterr().err


def assert_named_error(args, cwd, monkeypatch, capsys, pattern):
  """Runs a command that must fail: exit 2, a one-line error matching `pattern`, nothing new."""
  before = tree(cwd)
  code, err = run_main(args, cwd, monkeypatch, capsys)
  assert code == 2, err
  assert "Traceback" not in err
  assert re.search(pattern, err), f"{pattern!r} not in {err!r}"
  assert tree(cwd) == before, f"left behind: {sorted(tree(cwd) - before)}"
  return err


def write_config(path, **blocks):
  """A pipeline YAML whose runs and exports stay under `path`'s folder."""
  config = {"run": {"name": "hostile", "runs_dir": "runs"},
            "ingest": {"data": {"source": "dsprites", "dsprites": {"num_examples": 200}},
                       "split": {"eval_fraction": 0.2}, "num_shards": 1},
            "export": {"base_dir": "saved_models"}}
  for block, values in blocks.items():
    config[block] = {**config.get(block, {}), **values}
  path.write_text(yaml.safe_dump(config))
  return path


def png_chunk(kind, data):
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, width, height, rows=None):
  """An 8-bit grey PNG of `width` x `height` with `rows` rows of zeros (all by default).

  The pixels are compressed a row at a time, so a 90-megapixel bomb costs kilobytes to make.
  """
  rows = height if rows is None else rows
  compressor = zlib.compressobj(1)
  row = b"\0" * (width + 1)  # a filter byte, then the pixels
  idat = b"".join(compressor.compress(row) for _ in range(rows)) + compressor.flush()
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b"\x89PNG\r\n\x1a\n"
                   + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                   + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
  return path


def idx_bytes(array, type_code=0x08):
  header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(
      f">{array.ndim}I", *array.shape)
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_gzip_bomb(path, header, inflated_bytes):
  """`header` and then zeros up to `inflated_bytes`, gzip-compressed a megabyte at a time."""
  block = b"\0" * (1 << 20)
  with gzip.open(path, "wb", compresslevel=1) as f:
    f.write(header)
    for _ in range(inflated_bytes // len(block)):
      f.write(block)
  return path


def flip_byte(path, offset):
  data = bytearray(Path(path).read_bytes())
  data[offset] ^= 0xFF
  Path(path).write_bytes(bytes(data))


# ------------------------------------------------------------- config and command line

# (id, args, pattern): each is refused when the config loads, before any folder exists.
CONFIG_CASES = [
    ("nan-learning-rate", ["train", "--set", "train.learning_rate=.nan"],
     r"config\.train\.learning_rate: expected a finite number\. Received: nan "
     r"\(from --set train\.learning_rate=\.nan\)"),
    ("nan-eval-fraction", ["run", "--set", "ingest.split.eval_fraction=.nan"],
     r"config\.ingest\.split\.eval_fraction: expected a finite number\. Received: nan"),
    ("inf-kl-weight", ["train", "--set", "model.vae.kl_weight=.inf"],
     r"model\.vae\.kl_weight: expected a finite number\. Received: inf"),
    ("overflowing-float", ["train", "--set", "train.learning_rate=1e999"],
     r"train\.learning_rate: expected a finite number\. Received: inf"),
    ("huge-int-as-float", ["train", "--set", f"train.learning_rate={10**400}"],
     r"train\.learning_rate: expected a finite number"),
    ("nan-threshold", ["run", "--set", "evaluate.thresholds.elbo.lower_bound=.nan"],
     r"thresholds\.elbo\.lower_bound: expected a finite number\. Received: nan .*"
     r"--set evaluate\.thresholds\.elbo\.lower_bound=\.nan"),
    ("misspelt-threshold-metric", ["run", "--set", "evaluate.thresholds.elbow.lower_bound=-1"],
     r"thresholds\.elbow: not a metric the evaluate step writes\. Expected one of: "
     r"num_examples, elbo, reconstruction, .*"),
    ("zero-eval-fraction", ["run", "--set", "ingest.split.eval_fraction=0"],
     r"ingest\.split\.eval_fraction: expected a fraction above 0.*Received: eval_fraction=0\.0"),
    ("set-not-yaml", ["train", "--set", "train.learning_rate=[1e-3"],
     r"--set train\.learning_rate=\[1e-3: expected a YAML value after '='"),
    ("set-unclosed-quote", ["train", "--set", "run.name='abc"],
     r"--set run\.name='abc: expected a YAML value"),
    ("set-without-equals", ["train", "--set", "model.latent_dim"],
     r"Expected an override of the form key\.sub=value\. Received: 'model\.latent_dim'"),
    ("set-empty-key-part", ["train", "--set", "model..latent_dim=2"],
     r"--set model\.\.latent_dim=2: expected a dotted key"),
    ("set-into-a-value", ["train", "--set", "model.latent_dim.size=2"],
     r"--set model\.latent_dim\.size=2: expected 'latent_dim' to be a block"),
    ("set-value-blamed-on-set", ["train", "--set", "model.latent_dim=abc"],
     r"config\.model\.latent_dim: expected an integer\. Received: 'abc' "
     r"\(from --set model\.latent_dim=abc\)$"),
    ("set-unknown-key", ["train", "--set", "model.latent_dims=3"],
     r"unknown key 'latent_dims' \(from --set model\.latent_dims=3\)\. Valid keys: "
     r"annealed_vae, architecture, .*latent_dim"),
    ("set-bad-choice", ["train", "--set", "model.vae.prior=vampp"],
     r"model\.vae\.prior: expected one of \['gaussian', 'gmm', 'vamp'\]\. Received: 'vampp'"),
    ("set-bad-bool", ["train", "--set", "train.progress=maybe"],
     r"train\.progress: expected true or false\. Received: 'maybe'"),
    ("set-int-out-of-range", ["train", "--set", "model.latent_dim=0"],
     r"model\.latent_dim: expected a value in \[1, 4096\]\. Received: 0"),
    ("run-name-escapes", ["run", "--set", "run.name=../../escaped"],
     r"name: expected a folder name .*Received: name='\.\./\.\./escaped'"),
    ("run-name-absolute", ["run", "--set", "run.name=/tmp/kerasvae-escaped"],
     r"Received: name='/tmp/kerasvae-escaped'"),
    ("run-name-hidden", ["run", "--set", "run.name=.hidden"], r"Received: name='\.hidden'"),
    ("run-name-empty", ["run", "--set", "run.name="], r"Received: name=''"),
    ("run-name-too-long", ["run", "--set", "run.name=" + "a" * 201], r"at most 200"),
    ("model-name-escapes", ["run", "--set", "export.model_name=../served"],
     r"model_name: expected a folder name .*Received: model_name='\.\./served'"),
    ("model-name-nested", ["export", "--set", "export.model_name=a/b"],
     r"Received: model_name='a/b'"),
    ("model-name-serving-unsafe", ["run", "--set", "export.model_name=a=b"],
     r"Received: model_name='a=b'"),
    ("runs-dir-empty", ["run", "--set", "run.runs_dir="],
     r"runs_dir: expected a directory path\. Received: an empty path"),
    ("config-missing", ["run", "--config", "missing.yaml"],
     r"Expected a YAML config file at missing\.yaml\. Received: nothing there"),
    ("config-unknown-name", ["run", "--config", "no_such_bundled_config"],
     r"Expected a YAML file or a bundled config name \[.*quickstart.*\]"),
    ("study-unknown", ["study", "../../etc"], r"Expected a study name among \[.*\]\. "
     r"Received: name='\.\./\.\./etc'"),
    ("study-set-blamed-on-set", ["study", "priors", "--quick", "--set", "train.epochs=abc"],
     r"train\.epochs: expected an integer\. Received: 'abc' \(from --set train\.epochs=abc\)"),
    ("study-set-not-yaml", ["study", "beta", "--set", "train.epochs={"],
     r"--set train\.epochs=\{: expected a YAML value"),
]


@pytest.mark.parametrize("args,pattern", [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_config_error_is_named_and_leaves_nothing(args, pattern, tmp_path, monkeypatch, capsys):
  err = assert_named_error(args, tmp_path, monkeypatch, capsys, pattern)
  assert err.startswith(f"kerasvae {args[0]}: error: ")
  assert not Path("/tmp/kerasvae-escaped").exists()


# (id, file text, pattern): bad config files.
CONFIG_FILE_CASES = [
    ("not-yaml", "model: {latent_dim: 2\n", r"bad\.yaml: expected valid YAML\. Received: "),
    ("not-a-mapping", "- 1\n- 2\n", r"bad\.yaml: expected a mapping at the top level\. Received: list"),
    ("unknown-block", "modle: {latent_dim: 2}\n",
     r"config: unknown key 'modle' \(in bad\.yaml\)\. Valid keys: evaluate, export, infer, ingest"),
    ("nan-in-file", "train: {learning_rate: .NaN}\n",
     r"train\.learning_rate: expected a finite number\. Received: nan \(in bad\.yaml\)"),
    ("python-tag", "run: {name: !!python/object/apply:os.system [echo hi]}\n",
     r"bad\.yaml: expected valid YAML\. Received: line 1, column \d+: could not determine a constructor"),
    ("alias-bomb", "model: [&a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "  # 10^9 ones if expanded
     + ", ".join(f"&{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abcdefgh", "bcdefghi"))
     + "]\n", r"bad\.yaml: expected at most 10000 values, counting every alias expanded\. "
     r"Received: 11111 or more in the value at line 1, column \d+ \(a YAML alias bomb\?\)$"),
    ("runs-dir-is-a-file", "run: {runs_dir: bad.yaml}\n",
     r"runs_dir: expected a directory path\. Received: a file at bad\.yaml"),
]


@pytest.mark.parametrize("text,pattern", [c[1:] for c in CONFIG_FILE_CASES],
                         ids=[c[0] for c in CONFIG_FILE_CASES])
def test_bad_config_file_is_named(text, pattern, tmp_path, monkeypatch, capsys):
  (tmp_path / "bad.yaml").write_text(text)
  assert_named_error(["run", "--config", "bad.yaml"], tmp_path, monkeypatch, capsys, pattern)


def test_config_file_not_utf8_or_a_directory(tmp_path, monkeypatch, capsys):
  (tmp_path / "bad.yaml").write_bytes(b"run: {name: \xff\xfe}\n")
  assert_named_error(["run", "--config", "bad.yaml"], tmp_path, monkeypatch, capsys,
                     r"bad\.yaml: expected valid YAML|readable UTF-8 YAML config file at bad\.yaml")
  (tmp_path / "dir.yaml").mkdir()
  assert_named_error(["run", "--config", "dir.yaml"], tmp_path, monkeypatch, capsys,
                     r"Expected a YAML config file at dir\.yaml\. Received: a directory there")


def test_study_output_is_a_file(tmp_path, monkeypatch, capsys):
  (tmp_path / "taken").write_text("x")
  assert_named_error(["study", "priors", "--quick", "--output", "taken"], tmp_path, monkeypatch,
                     capsys, r"--output: expected a directory for the study\. Received: a file at taken")


def test_run_dir_is_a_file(tmp_path, monkeypatch, capsys):
  (tmp_path / "taken").write_text("x")
  assert_named_error(["ingest", "--run-dir", "taken"], tmp_path, monkeypatch, capsys,
                     r"Expected a run directory at taken\. Received: a file there\.")


def test_yaml_numbers_like_1e_minus_4_are_numbers(tmp_path, monkeypatch, capsys):
  """PyYAML alone reads `1e-4` as a string; in kerasvae it is a float, in files and in --set."""
  write_config(tmp_path / "c.yaml", train={"learning_rate": "PLACEHOLDER"})
  text = (tmp_path / "c.yaml").read_text().replace("PLACEHOLDER", "1e-4")
  (tmp_path / "c.yaml").write_text(text)
  assert yaml.safe_load(text)["train"]["learning_rate"] == "1e-4"  # what PyYAML alone gives
  code, _ = run_main(["config", "--config", "c.yaml", "--set", "model.vae.kl_weight=5E+0",
                      "--set", "evaluate.thresholds.elbo.lower_bound=-2e2"],
                     tmp_path, monkeypatch, capsys)
  assert code == 0
  from kerasvae.steps import configs  # pylint: disable=import-outside-toplevel
  config = configs.load_pipeline_config(tmp_path / "c.yaml", ["model.vae.kl_weight=5E+0",
                                                              "train.batch_size=64",
                                                              "evaluate.thresholds.elbo."
                                                              "lower_bound=-2e2"])
  assert config.train.learning_rate == 1e-4 and config.model.vae.kl_weight == 5.0
  assert config.evaluate.thresholds == {"elbo": {"lower_bound": -200.0}}
  assert config.train.batch_size == 64  # integers stay integers


def test_study_trial_names_with_equals_are_valid_run_names():
  from kerasvae.config import check_name  # pylint: disable=import-outside-toplevel
  check_name("latent-dim-latent_dim=2_kl_weight=4", "name")
  check_name("run.v2+fast", "name")


# ------------------------------------------------------------------------ data sources

def make_bad_files(root):
  """Every bad data file of DATA_CASES, under `root`."""
  images = np.zeros((10, 4, 4), np.uint8)
  good = idx_bytes(images)
  (root / "truncated.gz").write_bytes(gzip.compress(good)[:-12])
  (root / "padded.idx").write_bytes(good + b"\0" * 7)
  (root / "bad-magic.idx").write_bytes(b"\x00\x01\x08\x03" + good[4:])
  write_gzip_bomb(root / "bomb.gz", good[:16], 64 << 20)
  (root / "lying-header.gz").write_bytes(gzip.compress(
      struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 28)))
  (root / "images.idx").write_bytes(good)
  (root / "labels.idx").write_bytes(idx_bytes(np.arange(9, dtype=np.uint8)))

  images = np.random.RandomState(0).randint(0, 255, (50, 8, 8)).astype(np.uint8)
  np.savez_compressed(root / "good.npz", images=images, labels=np.arange(50))
  good = (root / "good.npz").read_bytes()
  (root / "truncated.npz").write_bytes(good[:len(good) // 2])
  (root / "corrupt.npz").write_bytes(good)
  flip_byte(root / "corrupt.npz", 200)  # inside the compressed images
  np.save(root / "array.npy", images)
  npy = (root / "array.npy").read_bytes()
  (root / "npy-named.npz").write_bytes(npy)
  (root / "truncated.npy").write_bytes(npy[:-10])
  np.save(root / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
  np.savez(root / "other-keys.npz", pictures=images)
  np.savez(root / "few-labels.npz", images=images, labels=np.arange(49))
  with zipfile.ZipFile(root / "lying.npz", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("images.npy", npy.replace(b"(50, 8, 8)", b"(99999999, 8, 8)", 1))
  with zipfile.ZipFile(root / "inflating.npz", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("images.npy", npy + b"\0" * (8 << 20))

  write_png(root / "bomb/a/huge.png", 20000, 20000, rows=1)  # 400 Mpx: PIL raises
  write_png(root / "bomb90/a/huge.png", 9500, 9500)  # 90 Mpx: PIL only warns, and decodes it
  cut = write_png(root / "truncated/a/cut.png", 28, 28)
  cut.write_bytes(cut.read_bytes()[:-30])  # into the pixel data
  write_png(root / "mixed/a/one.png", 28, 28)
  write_png(root / "mixed/a/two.png", 20, 20)
  (root / "text/a").mkdir(parents=True)
  (root / "text/a/notes.png").write_text("not a picture")
  (root / "empty").mkdir()
  (root / "c.yaml").write_text("x")


# (id, source, source block with paths relative to the files' folder, pattern); `{root}` in a
# pattern is that folder.
DATA_CASES = [
    ("idx-truncated-gzip", "idx", {"images": "truncated.gz"},
     r"truncated\.gz: expected a complete gzip stream\. Received: a truncated or corrupt one"),
    ("idx-padded", "idx", {"images": "padded.idx"},
     r"padded\.idx: expected 160 bytes of data for dims \[10, 4, 4\]\. Received: 167 bytes"),
    ("idx-bad-magic", "idx", {"images": "bad-magic.idx"},
     r"bad-magic\.idx: expected an IDX magic number .*Received: magic=0x00010803"),
    ("idx-gzip-bomb", "idx", {"images": "bomb.gz"},
     r"bomb\.gz: expected 160 bytes of data for dims \[10, 4, 4\], as its header declares\. "
     r"Received: more .*not read further"),
    ("idx-header-declares-too-much", "idx", {"images": "lying-header.gz"},
     r"lying-header\.gz: expected \d+ bytes of data for dims \[4294967295, 4294967295, 28\]\. "
     r"Received: 0 bytes \(truncated file\)"),
    ("idx-labels-count", "idx", {"images": "images.idx", "labels": "labels.idx"},
     r"labels\.idx: expected 10 labels, one per image of .*images\.idx\. Received: 9 labels"),
    ("idx-images-is-a-directory", "idx", {"images": "empty"},
     r"idx\.images: expected a file at {root}/empty\. Received: a directory there"),
    ("npz-truncated", "npz", {"path": "truncated.npz"},
     r"truncated\.npz: expected a complete \.npz archive .*Received: a file without a zip "
     r"directory"),
    ("npz-corrupt", "npz", {"path": "corrupt.npz"},
     r"corrupt\.npz: expected a complete \.npz archive .*Received: (BadZipFile|error)"),
    ("npz-is-a-npy", "npz", {"path": "npy-named.npz"},
     r"npy-named\.npz: expected a complete \.npz"),
    ("npy-truncated", "npz", {"path": "truncated.npy"},
     r"truncated\.npy: expected 3328 bytes for an array of shape \[50, 8, 8\] and dtype uint8"
     r", as its header declares\. Received: 3318 bytes \(a truncated array; not read\)"),
    ("npy-pickled-objects", "npz", {"path": "objects.npy"},
     r"objects\.npy: expected an array of numbers\. Received: dtype=object"),
    ("npz-header-declares-more", "npz", {"path": "lying.npz"},
     r"lying\.npz\['images'\]: expected \d+ bytes for an array of shape \[99999999, 8, 8\].* "
     r"\(a truncated array; not read\)"),
    ("npz-member-inflates-past-header", "npz", {"path": "inflating.npz"},
     r"inflating\.npz\['images'\]: expected 3328 bytes .*Received: 8391936 bytes \(a padded "
     r"array; not read\)"),
    ("npz-missing-key", "npz", {"path": "other-keys.npz"},
     r"other-keys\.npz: expected an array named npz\.images_key='images'\. Received: keys "
     r"\['pictures'\]"),
    ("npz-label-count", "npz", {"path": "few-labels.npz"},
     r"few-labels\.npz: expected 50 labels, one per image\. Received: 49 labels"),
    ("npz-wrong-suffix", "npz", {"path": "c.yaml"}, r"npz\.path: expected a \.npz or \.npy file"),
    ("png-decompression-bomb", "image_folder", {"root": "bomb"},
     r"huge\.png: expected a PNG or JPEG image .*Received: a decompression bomb \(Image size "
     r"\(400000000 pixels\) exceeds limit"),
    ("png-decompression-bomb-warning-size", "image_folder", {"root": "bomb90"},
     r"huge\.png: expected a PNG or JPEG image .*Received: a decompression bomb \(Image size "
     r"\(90250000 pixels\) exceeds limit"),
    ("png-truncated", "image_folder", {"root": "truncated"},
     r"cut\.png: expected a PNG or JPEG image .*Received: an unreadable image"),
    ("png-not-an-image", "image_folder", {"root": "text"},
     r"notes\.png: .*Received: an unreadable image"),
    ("png-mixed-sizes", "image_folder", {"root": "mixed"},
     r"two\.png: expected an image of 28x28 pixels like .*one\.png, or image_folder\.resize set"),
    ("image-folder-empty", "image_folder", {"root": "empty"},
     r"empty: expected at least one image in the image_folder source\. Received: 0 images"),
    ("image-folder-is-a-file", "image_folder", {"root": "c.yaml"},
     r"image_folder\.root: expected a directory at {root}/c\.yaml\. Received: a file there"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("hostile-data")
  make_bad_files(root)
  return root


@pytest.mark.parametrize("source,block,pattern", [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_named_before_training(source, block, pattern, bad_files, tmp_path,
                                           monkeypatch, capsys):
  """`kerasvae run` on bad data fails in ingest, naming the file: no Examples, no run folder."""
  block = {k: str(bad_files / v) for k, v in block.items()}
  if source == "image_folder":
    block["on_bad_file"] = "fail"
  write_config(tmp_path / "c.yaml", ingest={"data": {"source": source, source: block},
                                            "split": {"eval_fraction": 0.2}, "num_shards": 1})
  err = assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                           pattern.replace("{root}", re.escape(str(bad_files))))
  assert "epoch" not in err


def test_dsprites_and_tfds_inputs_are_named(tmp_path, monkeypatch, capsys):
  write_config(tmp_path / "c.yaml", ingest={
      "data": {"source": "dsprites", "dsprites": {"num_examples": 5000, "scales": [0],
                                                  "orientations": [0]}}})
  assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"dsprites\.num_examples: expected at most 3072, the size of the "
                     r"\(restricted\) grid\. Received: num_examples=5000")
  write_config(tmp_path / "c.yaml", ingest={"data": {"source": "dsprites", "dsprites": {
      "shapes": ["circle"]}}})
  assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"shapes: expected names among \['square', 'ellipse', 'heart'\]")
  write_config(tmp_path / "c.yaml", ingest={"data": {"source": "tfds", "tfds": {
      "name": "no_such_dataset_xyz", "data_dir": str(tmp_path / "tfds")}}})
  assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"tfds\.name: expected a TFDS dataset name such as mnist.*"
                     r"Received: name='no_such_dataset_xyz'")


def test_empty_eval_split_is_refused_before_training(tmp_path, monkeypatch, capsys):
  images = np.zeros((20, 4, 4), np.uint8)
  (tmp_path / "images.idx").write_bytes(idx_bytes(images))
  write_config(tmp_path / "c.yaml", ingest={
      "data": {"source": "idx", "idx": {"images": str(tmp_path / "images.idx")}},
      "split": {"method": "index", "eval_start": 20, "validation_start": 16}, "num_shards": 1})
  err = assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                           r"ingest\.split: expected at least one example in the test split "
                           r"'test' .*Received: 0 of 20 examples with eval_start=20")
  assert "epoch" not in err


# ------------------------------------------------------------------ damaged metadata.json

def test_damaged_metadata_json_is_named_with_the_step_to_redo(tmp_path, monkeypatch, capsys):
  write_config(tmp_path / "c.yaml", run={"name": "meta", "runs_dir": "runs"})
  code, err = run_main(["ingest", "--config", "c.yaml"], tmp_path, monkeypatch, capsys)
  assert code == 0, err
  (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("meta-")]
  (examples,) = (tmp_path / "runs" / "examples").iterdir()
  # A step whose metadata is cut off: named, with the command that rewrites it.
  (run_dir / "train").mkdir()
  (run_dir / "train" / "metadata.json").write_text('{"fingerprint": "ab')
  assert_named_error(["evaluate", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"train/metadata\.json: expected a readable JSON file as kerasvae writes "
                     r"it\. Received: JSONDecodeError: .*Redo the step that wrote it: "
                     r"`kerasvae train --force`")
  # Bytes that are not text, and JSON that is not an object.
  (run_dir / "train" / "metadata.json").write_bytes(b"\xff\xfe\x00garbage")
  assert_named_error(["evaluate", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"train/metadata\.json: expected a readable JSON file .*UnicodeDecodeError")
  (examples / "metadata.json").write_text("[1, 2]")
  assert_named_error(["train", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"examples/\w+/metadata\.json: expected a JSON object\. Received: list\. "
                     r"Redo the step that wrote it: `kerasvae ingest --force`")
  # The step the message names repairs it; so does ingest (or run) without --force, as it
  # does an Examples artifact with a damaged shard.
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  assert cli.main(["ingest", "--config", "c.yaml"]) == 0  # in tmp_path (run_main went there)
  assert (f"ingest: the Examples artifact {examples.relative_to(tmp_path)} is damaged "
          "(metadata.json holds a list, not a JSON object); writing it again from the source"
          in capsys.readouterr().out)
  code, err = run_main(["ingest", "--config", "c.yaml", "--force"], tmp_path, monkeypatch, capsys)
  assert code == 0, err


# ---------------------------------------------------------------------- folders and modes

def test_failed_command_prunes_only_the_folders_it_made(tmp_path, monkeypatch, capsys):
  """A missing input in a fresh tree leaves no runs/; an existing runs/ and its files stay."""
  write_config(tmp_path / "c.yaml", ingest={"data": {"source": "idx", "idx": {
      "images": "missing.gz"}}}, run={"name": "x", "runs_dir": "deep/runs"})
  assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"idx\.images: expected a file at \S*/missing\.gz\. Received: nothing there")
  (tmp_path / "deep" / "runs" / "keep").mkdir(parents=True)
  (tmp_path / "deep" / "runs" / "keep" / "notes.txt").write_text("mine")
  assert_named_error(["run", "--config", "c.yaml"], tmp_path, monkeypatch, capsys,
                     r"idx\.images: expected a file at \S*/missing\.gz")
  assert (tmp_path / "deep" / "runs" / "keep" / "notes.txt").read_text() == "mine"


def test_artifacts_get_the_umask_mode_not_private_ones(tmp_path, monkeypatch, capsys):
  """Examples (and every atomic artifact: evaluate/, SavedModels) and PNGs are readable by all
  under umask 022, as folders made by mkdir are (mkdtemp/mkstemp would give 0700/0600)."""
  from kerasvae import artifacts, viz  # pylint: disable=import-outside-toplevel
  old = os.umask(0o022)
  try:
    write_config(tmp_path / "c.yaml")
    code, err = run_main(["ingest", "--config", "c.yaml"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    (examples,) = (tmp_path / "runs" / "examples").iterdir()
    assert examples.stat().st_mode & 0o777 == 0o755
    for path in examples.rglob("*"):
      assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
    with artifacts.atomic_directory(tmp_path / "evaluate") as tmp:
      viz.save_png(np.zeros((4, 4), np.uint8), tmp / "samples.png")
    assert (tmp_path / "evaluate").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "evaluate" / "samples.png").stat().st_mode & 0o777 == 0o644
    os.umask(0o077)  # a private umask is respected too
    viz.save_png(np.zeros((4, 4), np.uint8), tmp_path / "private.png")
    assert (tmp_path / "private.png").stat().st_mode & 0o777 == 0o600
    # A PNG write killed before its rename leaves a temporary the next write there removes.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / "evaluate" / artifacts.temporary_name("samples.png").replace(
        f"-{os.getpid()}-", f"-{dead}-")
    stale.write_bytes(b"\x89PNG half")
    viz.save_png(np.zeros((4, 4), np.uint8), tmp_path / "evaluate" / "traversals.png")
    assert sorted(p.name for p in (tmp_path / "evaluate").iterdir()) == [
        "samples.png", "traversals.png"]
  finally:
    os.umask(old)


# -------------------------------------------------------------------- fresh processes

def test_fresh_process_exit_code_and_message(tmp_path):
  """The installed command, not only main(): exit status 2 and one line on stderr."""
  proc = pipeline_helpers.run_cli(["train", "--set", "train.learning_rate=.nan"], cwd=tmp_path)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      "kerasvae train: error: config.train.learning_rate: expected a finite number. "
      "Received: nan (from --set train.learning_rate=.nan)")
  assert "Traceback" not in proc.stderr and tree(tmp_path) == set()


def test_idx_gzip_bomb_is_refused_at_small_memory(tmp_path):
  """A 256 MiB-inflating gzip IDX is refused with the peak RSS a few MB above the baseline
  (reading it whole, as kerasvae did, costs > 256 MiB)."""
  header = idx_bytes(np.zeros((10, 28, 28), np.uint8))[:16]
  bomb = write_gzip_bomb(tmp_path / "bomb.gz", header, 256 << 20)
  assert bomb.stat().st_size < 2 << 20
  script = textwrap.dedent(f"""
      import resource
      from kerasvae.data import sources
      base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
      try:
        sources.read_idx({str(bomb)!r})
      except sources.DataError as e:
        print("refused:", e)
      print("extra_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
      """)
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        env=pipeline_helpers.subprocess_env(), timeout=120, check=True)
  assert "refused: " in proc.stdout and "inflates past its header" in proc.stdout
  extra_kib = int(proc.stdout.split("extra_kib")[1])
  assert extra_kib < 32 * 1024, proc.stdout


def test_pruning_keeps_files_and_held_locks(tmp_path):
  """Only folders the failed block created go, and only when empty; a lock file alone goes
  unless another process holds its flock (a run lock may stay on disk between holders)."""
  import fcntl  # pylint: disable=import-outside-toplevel
  from kerasvae import artifacts  # pylint: disable=import-outside-toplevel
  (tmp_path / "runs").mkdir()
  with pytest.raises(KeyError):
    with artifacts.remove_empty_on_failure(tmp_path / "runs" / "a" / "b", tmp_path / "new" / "x"):
      (tmp_path / "runs" / "a" / "b" / "c").mkdir(parents=True)
      (tmp_path / "runs" / "a" / "b" / ".lock").write_text("123\n")
      (tmp_path / "new" / "x" / "ckpt").mkdir(parents=True)
      (tmp_path / "new" / "x" / "ckpt" / "weights").write_text("w")
      raise KeyError("failed")
  assert tree(tmp_path) == {"runs", "new", "new/x", "new/x/ckpt", "new/x/ckpt/weights"}
  holder = os.open(tmp_path / "held.lock", os.O_CREAT | os.O_RDWR)
  fcntl.flock(holder, fcntl.LOCK_EX)
  try:
    with pytest.raises(KeyError):
      with artifacts.remove_empty_on_failure(tmp_path / "runs" / "held"):
        (tmp_path / "runs" / "held").mkdir()
        os.link(tmp_path / "held.lock", tmp_path / "runs" / "held" / ".lock")
        raise KeyError("failed")
    assert (tmp_path / "runs" / "held" / ".lock").exists()
  finally:
    os.close(holder)


@pytest.mark.parametrize("override, message", [
    (["--set", "ingest.data.source=image_folder",
      "--set", "ingest.data.image_folder.root=/nonexistent/folder"],
     "image_folder.root: expected a directory at /nonexistent/folder"),
    (["--config", "mnist_vae", "--set", "ingest.data.idx.images=/nonexistent.gz"],
     "idx.images: expected a file at /nonexistent.gz"),
])
def test_a_wrong_input_path_is_named_before_tensorflow_is_imported(tmp_path, override, message):
  """Issue 30: a wrong root was reported after TensorFlow's import (2 minutes under load)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from tests.pipeline_helpers import subprocess_env  # pylint: disable=import-outside-toplevel
  code = ("import sys; from kerasvae import cli; status = cli.main(sys.argv[1:]); "
          "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); "
          "sys.exit(status)")
  done = subprocess.run([sys.executable, "-c", code, "run", *override], cwd=tmp_path,
                        env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert done.returncode == 2 and message in done.stderr
  assert done.stdout.strip().endswith("no tensorflow")
  assert not (tmp_path / "runs").exists()
