"""Start-up: commands that only read configs never import TensorFlow; `import kerasvae` is
enough for `keras.saving.load_model`; the CLI drops TensorFlow's CPU-machine start-up noise."""

import subprocess
import sys
import textwrap

import numpy as np

from tests.pipeline_helpers import subprocess_env
from tests.pipeline_helpers import tiny_config

CONFIG_ONLY = textwrap.dedent("""
    import contextlib, io, sys
    import kerasvae
    after_import = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
    from kerasvae import cli
    with contextlib.redirect_stdout(io.StringIO()) as out:
      config_status = cli.main(["config", "--config", "mnist_priors"])
    with contextlib.redirect_stderr(io.StringIO()) as err:
      error_status = cli.main(["run", "--config", sys.argv[1]])
    print(after_import, config_status, error_status, "latent_dim: 40" in out.getvalue(),
          "unknown key 'latent_dims'" in err.getvalue(),
          sorted(m for m in ("tensorflow", "keras", "tensorflow_probability") if m in sys.modules))
""")


def test_config_commands_and_config_errors_do_not_import_tensorflow(tmp_path):
  bad = tmp_path / "bad.yaml"
  bad.write_text("model:\n  latent_dims: 3\n")
  proc = subprocess.run([sys.executable, "-c", CONFIG_ONLY, str(bad)], cwd=tmp_path,
                        env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.split() == ["[]", "0", "2", "True", "True", "[]"], proc.stdout


LOAD_AFTER_BARE_IMPORT = textwrap.dedent("""
    import sys
    import kerasvae
    assert "tensorflow" not in sys.modules, "import kerasvae imported TensorFlow"
    import keras
    import numpy as np
    model = keras.saving.load_model(sys.argv[1])
    np.save(sys.argv[3], model.reconstruct(np.load(sys.argv[2])).numpy())
    print(type(model).__module__, type(model).__name__, type(model.prior).__name__)
""")


def test_load_model_in_a_new_process_after_a_bare_import_kerasvae(tmp_path):
  import kerasvae  # pylint: disable=import-outside-toplevel
  vae = kerasvae.VAE(input_shape=(8, 8, 1), latent_dim=3, hidden_units=(16,),
                     prior={"name": "gmm", "num_components": 4})
  images = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype("float32")
  expected = vae.reconstruct(images).numpy()
  vae.save(tmp_path / "vae.keras")
  np.save(tmp_path / "x.npy", images)
  proc = subprocess.run([sys.executable, "-c", LOAD_AFTER_BARE_IMPORT, str(tmp_path / "vae.keras"),
                         str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.split() == ["kerasvae.models.autoencoders", "VAE", "GaussianMixturePrior"]
  np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)


INGEST_THEN_CHECK = textwrap.dedent("""
    import sys
    from kerasvae import cli
    status = cli.main(["ingest", "--config", sys.argv[1]])
    print("status", status, "tensorflow imported", "tensorflow" in sys.modules)
""")


def test_cli_drops_tensorflow_start_up_noise_on_a_machine_without_gpu(tmp_path):
  env = subprocess_env()
  env.pop("TF_CPP_MIN_LOG_LEVEL")  # the user did not choose a level: the CLI picks quiet
  proc = subprocess.run([sys.executable, "-c", INGEST_THEN_CHECK, str(tiny_config(tmp_path))],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "status 0 tensorflow imported True" in proc.stdout
  noise = ("absl::InitializeLog", "cudart_stub", "cuInit", "oneDNN custom operations",
           "cpu_feature_guard", "rebuild TensorFlow")
  assert not [line for line in proc.stderr.splitlines() if any(n in line for n in noise)], \
      proc.stderr
