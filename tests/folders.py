"""Small generated image folders for the validate and infer tests: grey 8x8 blobs in two class
subfolders, and the same images as RGB, 16-bit and with a shifted pixel range."""

import numpy as np

from tests.pipeline_helpers import write_config_file


def blobs(n, seed, size=8):
  """`n` uint8 [size, size] images: a Gaussian blob of random place and width, plus noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size]
  out = []
  for _ in range(n):
    cy, cx = rng.uniform(2, size - 2, 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(2, 6))
    out.append(np.clip(blob * 230 + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8))
  return out


def write_folder(folder, images, kind="grey"):
  """Writes `images` as PNGs in `folder`/a and `folder`/b (alternating): `kind` grey (8-bit L),
  rgb (the grey level in all three channels), sixteen (16-bit I;16, the same content: x 257)
  or shifted (x / 2 + 100: grey levels 100-227)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  for i, image in enumerate(images):
    sub = folder / ("a" if i % 2 else "b")
    sub.mkdir(parents=True, exist_ok=True)
    if kind == "grey":
      out = Image.fromarray(image)
    elif kind == "rgb":
      out = Image.fromarray(np.stack([image] * 3, -1))
    elif kind == "sixteen":
      out = Image.fromarray(image.astype(np.uint16) * 257)
    elif kind == "shifted":
      out = Image.fromarray((image.astype(np.int32) // 2 + 100).astype(np.uint8))
    else:
      raise ValueError(kind)
    out.save(sub / f"{i:04d}.png")
  return folder


def folder_config(tmp_path, train_folder, **blocks):
  """A seconds-long pipeline config training a tiny VAE on `train_folder`."""
  config = {
      "run": {"name": "folders", "runs_dir": str(tmp_path / "runs")},
      "ingest": {"data": {"source": "image_folder", "image_folder": {"root": str(train_folder)}},
                 "split": {"eval_fraction": 0.2, "validation_fraction": 0.2}, "num_shards": 1},
      "model": {"kind": "vae", "latent_dim": 2, "hidden_units": [16],
                "vae": {"likelihood": "continuous_bernoulli"}},
      "train": {"epochs": 2, "batch_size": 32, "images_every_epochs": 2,
                "projector_examples": 10, "progress": False, "jit_compile": "false"},
      "evaluate": {"iwae_samples": 5, "iwae_examples": 20, "disentanglement": False},
      "export": {"base_dir": str(tmp_path / "saved_models"), "model_name": "folders"},
  }
  return write_config_file(tmp_path / "folders.yaml", config, blocks)
