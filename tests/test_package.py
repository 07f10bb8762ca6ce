"""The installed package: its top-level exports, the backend guard, the command line, and that it
stands alone (no import of pipelines/, the configs as package data, a non-editable install)."""

import ast
import importlib.metadata
import importlib.util
import os
import re
import site
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kerasvae
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


def test_cli_config_prints_the_validated_quickstart():
  # In a process of its own, as a user runs it: in the test worker's process, output of an
  # earlier test's leftover threads could land in the captured text.
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "config"], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  config = yaml.safe_load(proc.stdout)
  assert config["ingest"]["data"]["source"] == "dsprites"
  assert config["model"]["kind"] == "vae" and config["run"]["name"] == "quickstart"


def test_cli_help_lists_the_commands():
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "--help"], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0
  for command in ("run", "ingest", "train", "evaluate", "export", "study"):
    assert command in proc.stdout


def _imports_of(path):
  """Every module name the file imports: `import a.b`, `from a import b`, `import_module("a")`."""
  names = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      names.append(node.module)
    elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) \
        in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
      names.append(str(node.args[0].value))
  return names


def test_the_library_never_imports_the_pipelines_folder():
  files = sorted((REPO / "kerasvae").rglob("*.py"))
  assert len(files) > 40
  offenders = {str(p.relative_to(REPO)): n for p in files for n in _imports_of(p)
               if n == "pipelines" or n.startswith("pipelines.")}
  assert not offenders, offenders
  assert "kerasvae" in _imports_of(REPO / "pipelines" / "kubeflow_runner.py")  # it sees imports


def _build_tools():
  """How the running interpreter can build a wheel of this package: `(isolated, reason)`.

  With setuptools of at least 70.1 (which has `bdist_wheel`), or an older one beside the
  `wheel` package, pip builds with the running environment's own tools (`isolated` false).
  Without them (a Python 3.12 venv has no setuptools) pip makes an isolated build environment,
  which downloads `pyproject.toml`'s build requirements. `reason` is why no build is possible.
  """
  if importlib.util.find_spec("pip") is None:
    return None, f"{sys.executable} has no pip: it cannot build or install a wheel"
  try:
    setuptools_version = importlib.metadata.version("setuptools")
  except importlib.metadata.PackageNotFoundError:
    return True, None
  major, minor = (int(part) for part in setuptools_version.split(".")[:2])
  has_wheel = importlib.util.find_spec("wheel") is not None
  return not ((major, minor) >= (70, 1) or has_wheel), None


def _site_packages():
  """The running environment's package folders: a venv's own, then its base's if it sees them."""
  paths = site.getsitepackages() + [site.getusersitepackages()] * site.ENABLE_USER_SITE
  return [p for p in dict.fromkeys(paths) if Path(p).is_dir()]


def test_a_non_editable_install_runs_from_another_folder(tmp_path):
  """The package as a wheel installs it (site-packages, no checkout): `kerasvae config` finds the
  bundled configs by name and `kerasvae run` runs the quickstart, from a folder of its own.

  It works from whichever environment runs the suite (the README's `.venv`, a venv that sees the
  system's packages, the system's Python): the wheel is built by the running interpreter's pip
  with that environment's own build tools where it has them, and installed into a fresh venv
  whose `.pth` file puts the running environment's packages (TensorFlow, pip) after its own
  site-packages, so nothing is downloaded again and its non-editable kerasvae shadows an
  editable one (a `.pth` line adds the folder without running that folder's own `.pth` files,
  among them the editable install's).
  """
  isolated, reason = _build_tools()
  if reason:
    pytest.skip(reason)
  # What the Dockerfile copies into the image, installed the way it installs it (a copy: building
  # in the checkout would leave build/ there).
  source = tmp_path / "source"
  source.mkdir()
  copied = [w for line in (REPO / "Dockerfile").read_text().splitlines()
            if line.startswith("COPY ") for w in line.split()[1:-1]]
  assert sorted(copied) == ["README.md", "kerasvae", "pyproject.toml", "setup.cfg"], copied
  for name in copied:
    if (REPO / name).is_dir():
      shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
      shutil.copy(REPO / name, source / name)
  env = subprocess_env(KERASVAE_DATA_DIR=str(tmp_path / "data"))
  env.pop("PYTHONPATH")
  build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
           str(tmp_path / "wheels"), str(source)]
  proc = subprocess.run(build + ([] if isolated else ["--no-build-isolation", "--no-index"]),
                        env=env, capture_output=True, text=True, timeout=600)
  if proc.returncode and isolated and re.search(
      r"No matching distribution|Could not find a version|NewConnectionError|Network is "
      r"unreachable|Temporary failure in name resolution", proc.stderr):
    pytest.skip(f"{sys.executable}'s environment has no setuptools/wheel to build with and pip "
                f"cannot download them for an isolated build: {proc.stderr.strip()[-300:]}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  wheel, = (tmp_path / "wheels").glob("kerasvae-*.whl")

  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                 timeout=120)
  python, kerasvae_command = venv / "bin" / "python", venv / "bin" / "kerasvae"
  venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                              "'purelib'))"], env=env, capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
  Path(venv_site, "running_environment.pth").write_text("\n".join(_site_packages()) + "\n")
  proc = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                         "--quiet", str(wheel)], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()

  def run(*args):
    proc = subprocess.run([*map(str, args)], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout

  where = ("import importlib.metadata as m, kerasvae; from kerasvae.studies import core; "
           "print(kerasvae.__file__); print(core.resolve_study_config_path('beta', "
           "'fashion-mnist-beta')); print('\\n'.join(str(f) for f in m.files('kerasvae')))")
  location, study, *files = run(python, "-c", where).split()
  assert Path(location).is_relative_to(venv), location
  assert Path(study) == Path(location).parent / "configs" / "studies" / "fashion-mnist-beta.yaml"
  installed = {Path(p).as_posix() for p in files}
  assert {"kerasvae/configs/mnist_vae.yaml", "kerasvae/configs/studies/beta.yaml"} <= installed
  assert not any(p.startswith("pipelines/") for p in installed)  # no generic top-level package

  config = yaml.safe_load(run(kerasvae_command, "config", "--config", "mnist_vae"))
  assert config["ingest"]["data"]["idx"]["images"] == str(
      tmp_path / "data" / "mnist" / "t10k-images-idx3-ubyte.gz")
  shrink = ["ingest.data.dsprites.num_examples=640", "train.epochs=1", "train.progress=false",
            "train.projector_examples=50", "evaluate.iwae_samples=10", "evaluate.iwae_examples=50",
            "evaluate.disentanglement=false", f"run.runs_dir={tmp_path / 'runs'}",
            f"export.base_dir={tmp_path / 'saved_models'}"]
  # --force: one epoch on 640 images is not blessed; the export is what is checked.
  out = run(kerasvae_command, "run", "--force", *(f"--set={s}" for s in shrink))
  assert "export: wrote" in out, out
  assert (tmp_path / "saved_models" / "quickstart_vae" / "1" / "saved_model.pb").is_file()
  assert os.listdir(elsewhere) == []


def test_the_top_level_holds_only_the_api_and_kerasvaes_own_modules():
  """`kerasvae.sys` (or any other module the package imports for itself) is not part of the
  API: every public top-level name is an export of `__all__` or a kerasvae submodule."""
  stray = sorted(name for name, value in vars(kerasvae).items() if not name.startswith("_")
                 and name not in kerasvae.__all__ and not getattr(
                     value, "__name__", "").startswith("kerasvae."))
  assert not stray, stray
  assert not hasattr(kerasvae, "sys")


def test_study_help_lists_every_study():
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  assert sorted(cli.STUDY_NAMES) == sorted(studies.STUDIES)
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "study", "--help"], cwd=REPO,
                        env=subprocess_env(), capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  help_text = " ".join(proc.stdout.split())
  for name in studies.STUDIES:
    assert name in help_text, name
