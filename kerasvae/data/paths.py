"""Where the bundled configs' relative data paths point: the data directory.

Below the sources and the data config, which both read it.
"""

import os
from pathlib import Path

DATA_DIR_ENV = "KERASVAE_DATA_DIR"


def bundled_data_dir():
  """The base of the bundled configs' relative data paths.

  `$KERASVAE_DATA_DIR` when set, else `../shared/data` beside the repository root
  (where the MNIST configs find `mnist/t10k-images-idx3-ubyte.gz`).
  """
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    return Path(env).expanduser().absolute()
  return Path(__file__).resolve().parents[2].parent / "shared" / "data"
