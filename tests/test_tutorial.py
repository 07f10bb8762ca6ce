"""docs/tutorial.ipynb runs: every cell, at small sizes (KERASVAE_TUTORIAL_SMALL=1: 2,000
training images, 2 epochs), in a kernel of this environment, so the notebook cannot rot."""

import os
from pathlib import Path

import pytest

from tests.conftest import REPO

FASHION_DIR = (Path(os.environ.get("KERASVAE_DATA_DIR") or REPO.parent / "shared" / "data")
               / "fashion_mnist")


def test_the_tutorial_notebook_runs_every_cell(tmp_path):
  nbformat = pytest.importorskip("nbformat", reason="the test extra's nbformat is not installed")
  nbclient = pytest.importorskip("nbclient", reason="the test extra's nbclient is not installed")
  pytest.importorskip("ipykernel", reason="the test extra's ipykernel is not installed")
  if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
    pytest.skip(f"Fashion-MNIST files not found at {FASHION_DIR} (the notebook would download "
                "them; set KERASVAE_DATA_DIR to a folder with fashion_mnist/)")
  notebook = nbformat.read(REPO / "docs" / "tutorial.ipynb", as_version=4)
  assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), \
      "commit the notebook without outputs"
  env = {"KERASVAE_TUTORIAL_SMALL": "1", "KERASVAE_DATA_DIR": str(FASHION_DIR.parent),
         "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
         "PYTHONPATH": str(REPO)}
  env_names = [*env, "MPLBACKEND"]  # the kernel's own inline backend draws the pictures
  old = {k: os.environ.get(k) for k in env_names}
  os.environ.pop("MPLBACKEND", None)
  os.environ.update(env)  # the kernel inherits this process's environment
  try:
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
  finally:
    for k, v in old.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
  outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  pictures = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(pictures) >= 3, "the reconstructions, the latents and the served decodes"
  text = "".join(o.get("text", "") for o in outputs)
  assert "export: wrote" in text and "(2000, 28, 28) uint8" in text, text[-2000:]
  assert (tmp_path / "saved_models" / "fashion_vae" / "1" / "saved_model.pb").is_file()


def test_the_install_line_names_the_wheel_this_version_builds():
  import configparser  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  setup = configparser.ConfigParser()
  setup.read(REPO / "setup.cfg")
  wheel = f"kerasvae-{setup['metadata']['version']}-py3-none-any.whl"
  first = "".join(json.loads((REPO / "docs" / "tutorial.ipynb").read_text())["cells"][0]["source"])
  assert f"!pip install {wheel}" in first and "pip wheel --no-deps -w dist ." in first
