"""Exports: two processes exporting one model name at once, and a change of signatures."""

import json
import subprocess
import sys

import pytest

import kerasvae
from kerasvae import serving
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env

ROUNDS = 3

# Each writer builds its own model (its own weights, so a lost or swapped model shows), then
# exports it ROUNDS times; both writers start each round together (files as a barrier), so
# every round is a race for the same next version.
WRITER = r"""
import json, pathlib, sys, time
import numpy as np
import kerasvae
from kerasvae import serving
base, sync, tag, other = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
rounds = int(sys.argv[5])
model = kerasvae.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
model.set_weights([np.full(w.shape, float(tag == "b"), w.dtype) for w in model.get_weights()])

def barrier(name):
  (sync / f"{name}-{tag}").touch()
  deadline = time.time() + 240
  while not (sync / f"{name}-{other}").exists():
    assert time.time() < deadline, f"the other writer never reached {name}"
    time.sleep(0.005)

written = []
for r in range(rounds):
  barrier(f"round{r}")
  path = serving.export_model(model, base, "shared", metadata={"writer": tag, "round": r})
  written.append(str(path))
print(json.dumps(written))
"""


def test_concurrent_exports_of_one_model_name_get_distinct_versions(tmp_path):
  base, sync = tmp_path / "saved_models", tmp_path / "sync"
  sync.mkdir()
  procs = {tag: subprocess.Popen(
      [sys.executable, "-c", WRITER, str(base), str(sync), tag, other, str(ROUNDS)],
      cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for tag, other in (("a", "b"), ("b", "a"))}
  written = {}
  try:
    for tag, proc in procs.items():
      out, err = proc.communicate(timeout=300)
      assert proc.returncode == 0, err[-3000:]
      written[tag] = json.loads(out.strip().splitlines()[-1])
  finally:
    for proc in procs.values():
      proc.kill()
      proc.wait()
  versions = serving.list_versions(base / "shared")
  assert versions == list(range(1, 2 * ROUNDS + 1))  # every export kept, none replaced
  for tag, paths in written.items():
    for r, path in enumerate(paths):
      info = serving.read_export_metadata(path)  # each writer's record points at its own model
      assert info["metadata"] == {"writer": tag, "round": r}
      assert info["version"] == int(path.rsplit("/", 1)[1])
  assert sorted(p for paths in written.values() for p in paths) == sorted(
      str(base / "shared" / str(v)) for v in versions)
  assert [p.name for p in (base / "shared").iterdir() if p.name.startswith(".")] == []
  assert str((base / "shared").resolve()) in (base / "models.config").read_text()


def test_a_version_with_other_signatures_is_refused_unless_allowed(tmp_path):
  base = tmp_path / "saved_models"
  serving.export_model(kerasvae.VAE((4, 4, 1), 2, hidden_units=(8,)), base, "vae")
  autoencoder = kerasvae.Autoencoder((4, 4, 1), 2, hidden_units=(8,))
  with pytest.raises(serving.SignatureMismatchError) as error:
    serving.export_model(autoencoder, base, "vae")
  message = str(error.value)
  assert f"Expected the signatures of {base / 'vae' / '1'} (VAE: anomaly_score, " \
         "decode, encode, log_likelihood, sample, serving_default)" in message
  assert "Received: Autoencoder with decode, encode, sample, serving_default (without " \
         "anomaly_score, log_likelihood; other inputs or outputs in encode, serving_default)" in message
  assert "--set export.allow_signature_change=true" in message
  assert serving.list_versions(base / "vae") == [1]
  assert [p.name for p in (base / "vae").iterdir()] == ["1"]  # nothing half-written
  # Another latent size changes the shapes: refused too.
  with pytest.raises(serving.SignatureMismatchError, match=r"other inputs or outputs in decode"):
    serving.export_model(kerasvae.VAE((4, 4, 1), 3, hidden_units=(8,)), base, "vae")
  path = serving.export_model(autoencoder, base, "vae", allow_signature_change=True)
  assert path.name == "2" and serving.read_export_metadata(path)["model_class"] == "Autoencoder"
