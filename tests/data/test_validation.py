"""`kerasvae validate`: the statistics against independent computations, and the named rule for
an RGB, a 16-bit and a shifted-range folder against grey 8-bit training data."""

import json

import numpy as np
import pytest
from scipy.spatial import distance

from kerasvae import cli
from kerasvae.data import statistics
from kerasvae.data import validation
from kerasvae.steps import configs
from tests import folders


def test_statistics_match_numpy():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (50, 6, 5, 1)).astype(np.uint8)
  stats = statistics.ImageStatistics(1 / 255)
  stats.add(images[:20], np.arange(20) % 3)
  stats.add(images[20:], np.arange(30) % 2)
  out = stats.to_dict()
  unit = images.astype(np.float64) / 255
  assert out["num_examples"] == 50
  np.testing.assert_allclose(out["pixel_mean"], unit.mean(), rtol=1e-12)
  np.testing.assert_allclose(out["pixel_std"], unit.std(), rtol=1e-12)
  assert out["pixel_min"] == unit.min() and out["pixel_max"] == unit.max()
  assert out["pixel_histogram"] == np.bincount(images.reshape(-1), minlength=256).tolist()
  assert out["label_histogram"] == {"0": 22, "1": 22, "2": 6}
  floats = statistics.ImageStatistics(1.0)
  floats.add(unit.astype(np.float32))
  np.testing.assert_allclose(floats.to_dict()["pixel_mean"], unit.mean(), rtol=1e-6)
  # Grey level i / 255 falls in bin i, as the uint8 count puts it.
  assert floats.to_dict()["pixel_histogram"] == out["pixel_histogram"]
  assert statistics.histogram_quantile(out, 0.5) == pytest.approx(np.sort(images.reshape(-1))[
      int(np.ceil(0.5 * images.size)) - 1] / 255, abs=1e-12)


def test_jensen_shannon_is_scipys():
  rng = np.random.default_rng(1)
  p, q = rng.integers(0, 50, 256), rng.integers(0, 50, 256)
  merged = [h.reshape(statistics.DRIFT_BINS, -1).sum(1) for h in (p, q)]
  expected = distance.jensenshannon(*merged, base=2) ** 2  # scipy gives the square root
  np.testing.assert_allclose(statistics.jensen_shannon(p, q), expected, rtol=1e-9)
  assert statistics.jensen_shannon(p, p) == 0.0


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
  """Grey training folder ingested; new folders drawn from the same generator with another
  seed, as they are and as RGB, 16-bit and shifted."""
  tmp = tmp_path_factory.mktemp("validate")
  train = folders.write_folder(tmp / "train", folders.blobs(300, seed=0))
  new = folders.blobs(80, seed=1)
  paths = {kind: folders.write_folder(tmp / kind, new, kind)
           for kind in ("grey", "rgb", "sixteen", "shifted")}
  config = folders.folder_config(tmp, train)
  assert cli.main(["ingest", "--config", str(config)]) == 0
  return tmp, config, paths


def _validate(config, folder, capsys, *overrides):
  args = ["validate", "--config", str(config), "--images", str(folder)]
  for o in overrides:
    args += ["--set", o]
  status = cli.main(args)
  return status, capsys.readouterr()


def test_same_distribution_passes(ingested, capsys):
  tmp, config, paths = ingested
  status, out = _validate(config, paths["grey"], capsys)
  assert status == 0, out.err
  assert "8 rules checked, 0 violated" in out.out
  run_dir = next((tmp / "runs").glob("folders-*"))
  anomalies = json.loads((run_dir / "validate" / "anomalies.json").read_text())
  assert anomalies["errors"] == [] and anomalies["skipped"] == {}


@pytest.mark.parametrize("kind, rules", [
    ("rgb", {"image_shape"}),
    # 16-bit: today's decoder clips to 8 bits (nearly every pixel white); one decoding the real
    # depth changes the stored dtype. Either way a named rule stops it.
    ("sixteen", {"image_dtype", "value_range", "pixel_mean"}),
    ("shifted", {"value_range", "pixel_mean", "pixel_histogram"}),
])
def test_each_anomaly_names_its_rule(ingested, capsys, kind, rules):
  _, config, paths = ingested
  status, out = _validate(config, paths[kind], capsys)
  assert status == 2
  assert f"kerasvae validate: error: {paths[kind]}: the data violates" in out.err
  named = {line.split(":")[0].strip() for line in out.err.splitlines()[1:]
           if line.startswith("  ")}
  assert named & rules, out.err
  assert named <= set(validation.RULES)
  assert "Expected" in out.err or "expected" in out.err


def test_shifted_range_names_the_percentile(ingested, capsys):
  _, config, paths = ingested
  _, out = _validate(config, paths["shifted"], capsys)
  assert "value_range: expected the 1% pixel percentile within 0.1 of the training data's 0. " \
         "Received: percentile_1=0.3922" in out.err  # grey level 100 / 255


def test_a_rule_configured_as_a_warning_is_recorded_not_raised(ingested, capsys):
  tmp, config, paths = ingested
  status, out = _validate(config, paths["shifted"], capsys, "validation.on_anomaly=warn")
  assert status == 0, out.err
  run_dir = next((tmp / "runs").glob("folders-*"))
  anomalies = json.loads((run_dir / "validate" / "anomalies.json").read_text())
  assert anomalies["errors"] == []
  assert {"value_range", "pixel_mean"} <= {w["rule"] for w in anomalies["warnings"]}
  status, out = _validate(config, paths["rgb"], capsys,
                          "validation.warn_rules=[image_shape]")
  assert status == 0, out.err


def test_unknown_warn_rule_is_refused_by_name(ingested):
  _, config, _ = ingested
  from kerasvae.config import ConfigError  # pylint: disable=import-outside-toplevel
  with pytest.raises(ConfigError, match=r"warn_rules: expected rules among .*Received: "
                                        r"'pixel_men'"):
    configs.load_pipeline_config(config, ["validation.warn_rules=[pixel_men]"])


def test_class_balance_and_label_domain():
  thresholds = configs.DriftThresholds()
  ref = {"image_shape": [2, 2, 1], "image_dtype": "uint8",
         "statistics": {"pixel_histogram": None, "label_histogram": {"0": 50, "1": 50}}}
  new = {"image_shape": [2, 2, 1], "image_dtype": "uint8",
         "statistics": {"pixel_histogram": None, "label_histogram": {"0": 80, "1": 10, "2": 10}}}
  anomalies, skipped = validation.check(ref, new, thresholds)
  assert [a.rule for a in anomalies] == ["label_domain", "class_balance"]
  assert "distance=0.4 (class 1: 0.100, training 0.500)" in anomalies[1].message
  assert set(skipped) == {"value_range", "pixel_mean", "pixel_std", "pixel_histogram"}


def test_train_on_new_data_checks_it_against_the_earlier_training_data(ingested, tmp_path,
                                                                       capsys):
  _, config, paths = ingested
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  earlier = common.examples_directory(configs.load_pipeline_config(config))
  shifted = configs.load_pipeline_config(
      config, [f"ingest.data.image_folder.root={paths['shifted']}",
               f"run.runs_dir={tmp_path / 'runs'}"])
  path = tmp_path / "new.yaml"
  import yaml  # pylint: disable=import-outside-toplevel
  from kerasvae.config import to_dict  # pylint: disable=import-outside-toplevel
  data = to_dict(shifted)
  data["validation"]["training_reference"] = str(earlier)
  path.write_text(yaml.safe_dump(data))
  status = cli.main(["run", "--config", str(path)])  # ingest the new data, then train
  err = capsys.readouterr().err
  assert status == 2
  assert "(training data, against" in err and "value_range" in err
  assert not list((tmp_path / "runs").glob("*/train/model"))  # nothing trained
