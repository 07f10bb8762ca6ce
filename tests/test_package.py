"""The installed package: its top-level exports, the backend guard and the command line."""

import subprocess
import sys

import yaml

import kerasvae
from kerasvae import cli
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env


def test_top_level_exposes_models_and_priors_with_docstrings():
  for name in kerasvae.__all__:
    assert getattr(kerasvae, name) is not None
  for name in ("VAE", "Autoencoder", "NoisyAutoencoder", "StandardGaussianPrior",
               "GaussianMixturePrior", "VampPrior"):
    doc = getattr(kerasvae, name).__doc__
    assert doc and ("Args:" in doc or "Example" in doc), name


def test_another_forced_backend_is_refused_by_name():
  proc = subprocess.run([sys.executable, "-c", "import kerasvae"], cwd=REPO,
                        env=subprocess_env(KERAS_BACKEND="jax"), capture_output=True, text=True,
                        timeout=60)
  assert proc.returncode != 0
  assert "Expected KERAS_BACKEND=tensorflow. Received: KERAS_BACKEND=jax" in proc.stderr


def test_cli_config_prints_the_validated_quickstart(capsys):
  assert cli.main(["config"]) == 0
  config = yaml.safe_load(capsys.readouterr().out)
  assert config["ingest"]["data"]["source"] == "dsprites"
  assert config["model"]["kind"] == "vae" and config["run"]["name"] == "quickstart"


def test_cli_help_lists_the_commands():
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "--help"], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0
  for command in ("run", "ingest", "train", "evaluate", "export", "study"):
    assert command in proc.stdout
