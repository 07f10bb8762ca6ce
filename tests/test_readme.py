"""The README and the docs pages: their length, the quick start that CI runs, and that every
command of their bash blocks exists with the flags it is given.

The serving examples (curl bodies, the Python request writers, the gRPC client) are run against
a quickstart-shaped export in `tests/test_serving.py`.
"""

import configparser
import contextlib
import importlib.util
import io
import re
import shutil
import subprocess
import sys

import pytest

from kerasvae import cli
from kerasvae.steps import configs
from tests import markdown
from tests.pipeline_helpers import REPO
from tests.pipeline_helpers import subprocess_env

# Programs the docs name that are not installed here (or are servers): only their presence in
# this list is checked. `curl` requests are run by tests/test_serving.py.
EXTERNAL = {"tensorflow_model_server", "docker", "kfp", "curl", "tensorboard", "saved_model_cli"}
# Values that stand for the user's own file or registry.
PLACEHOLDER_FILES = {"my.yaml", "/shared/my.yaml", "pipeline.yaml"}
# What the optional features need; the quick start must install none of them. (TF Serving's
# API package is a core dependency: export parses models.config with its protos.)
OPTIONAL_PACKAGES = ("kfp",)


def extras():
  setup = configparser.ConfigParser()
  setup.read(REPO / "setup.cfg")
  options = setup["options.extras_require"]
  return {name: options[name].split() for name in options}, setup["options"]["install_requires"]


def quick_start_blocks():
  return markdown.fenced_blocks(markdown.section(markdown.README.read_text(), "Quick start"), "bash")


def test_readme_is_at_most_300_lines():
  lines = markdown.README.read_text().splitlines()
  assert len(lines) <= 300, f"README.md has {len(lines)} lines; move details to docs/"


def test_readme_starts_with_the_quick_start_and_ci_runs_it():
  headings = [line for line in markdown.README.read_text().splitlines() if line.startswith("## ")]
  assert headings[0] == "## Quick start", headings
  install_and_run, test = quick_start_blocks()[:2]
  commands = [markdown.shell_commands(b) for b in (install_and_run, test)]
  assert commands[0] == [["python3", "-m", "venv", ".venv"], [".", ".venv/bin/activate"],
                         ["pip", "install", "-e", "."], ["kerasvae", "run"]]
  assert commands[1] == [["pip", "install", "-e", ".[test]"], ["python", "-m", "pytest", "-q"]]
  # .ci/run runs the README's lines verbatim, in the README's order, the venv line included,
  # and makes no environment of its own (no switch that skips a line).
  ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
  commands = [line for line in ci if line and not line.startswith("#")]
  readme = (install_and_run + test).splitlines()
  positions = []
  for line in readme:
    found = [i for i, c in enumerate(commands) if c == line or c.startswith(line + " ")]
    assert found, f".ci/run lacks the README's line: {line}"
    positions.append(found[0])
  assert positions == sorted(positions), f".ci/run runs the README's lines out of order: {readme}"
  assert not any(c.startswith("if ") and "VENV" in c for c in commands), commands


def test_the_quick_starts_sample_output_names_the_directories_kerasvae_run_uses():
  """The sample output's run and Examples directories are the quickstart config's: a change to
  what is fingerprinted (which moves every user's runs) shows up here, not as a stale sample."""
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  section = markdown.section(markdown.README.read_text(), "Quick start")
  config = configs.load_pipeline_config("quickstart")
  assert f"run directory: {common.run_directory(config)}\n" in section
  assert f"ingest: {common.examples_directory(config)} (" in section


def test_the_quick_start_installs_no_extra_and_the_test_command_installs_the_test_extra():
  extra, core = extras()
  for package in OPTIONAL_PACKAGES:
    assert package not in core, f"{package} is a core dependency; keep it in an extra"
  assert {"pytest", "kfp==2.17.0", "tensorflow-serving-api"} <= set(extra["test"])
  assert "kfp==2.17.0" in extra["kfp"]


def test_ci_run_makes_the_readmes_venv_and_fails_when_pytest_collects_nothing(tmp_path):
  """`.ci/run`, copied into a folder of its own, with a fake `python3`, `pip`, `kerasvae` and
  `python` on PATH: it makes `.venv` in the repository's folder and activates it before
  installing, and pytest's exit code 5 fails the script."""
  checkout = tmp_path / "checkout"
  (checkout / ".ci").mkdir(parents=True)
  shutil.copy(REPO / ".ci" / "run", checkout / ".ci" / "run")
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  # The fake `python3 -m venv .venv` writes an activate script that marks the environment; each
  # fake command records whether it ran inside it.
  activate = 'export VIRTUAL_ENV="$PWD/.venv"'
  record = 'echo "$(basename "$0") $* venv=${VIRTUAL_ENV:-none}" >> "$LOG"'
  fakes = {
      "python3": f"{record}\nmkdir -p \"$3/bin\" && echo '{activate}' > \"$3/bin/activate\"",
      "pip": record, "kerasvae": record,
      "python": f'{record}\nif [ "$2" = pytest ]; then exit "$PYTEST_STATUS"; fi; exit 0'}
  for name, body in fakes.items():
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)
  env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CI": "true", "LOG": str(tmp_path / "log")}
  for status, expected in ((0, 0), (1, 1), (5, 5)):
    (tmp_path / "log").write_text("")
    proc = subprocess.run(["bash", str(checkout / ".ci" / "run")],
                          env={**env, "PYTEST_STATUS": str(status)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == expected, (status, proc.stderr)
    assert ("collected no tests" in proc.stderr) == (status == 5)
    venv = checkout / ".venv"
    assert (tmp_path / "log").read_text().splitlines() == [
        "python3 -m venv .venv venv=none", f"pip install -e . venv={venv}",
        f"kerasvae run venv={venv}", f"pip install -e .[test] venv={venv}",
        f"python -m pytest -q venv={venv}"]


def test_the_quickstart_runs_without_the_optional_packages(tmp_path):
  """`kerasvae run` of the quickstart config, shrunk to seconds, in a process where importing
  kfp fails: the core install is enough for the quick start."""
  shrink = ["ingest.data.dsprites.num_examples=640", "train.epochs=1", "train.progress=false",
            "train.projector_examples=50", "evaluate.iwae_samples=10", "evaluate.iwae_examples=50",
            "evaluate.disentanglement_train_points=60", "evaluate.disentanglement_eval_points=30",
            f"run.runs_dir={tmp_path / 'runs'}", f"export.base_dir={tmp_path / 'saved_models'}"]
  argv = ["run", "--force"] + [a for s in shrink for a in ("--set", s)]
  script = ("import sys; sys.modules.update(kfp=None); "
            f"from kerasvae import cli; sys.exit(cli.main({argv!r}))")
  proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=subprocess_env(),
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  name = configs.load_pipeline_config("quickstart").export.model_name
  assert (tmp_path / "saved_models" / name / "1" / "saved_model.pb").is_file()


def bash_commands():
  for path in markdown.DOCS:
    for block in markdown.fenced_blocks(path.read_text(), "bash"):
      for words in markdown.shell_commands(block):
        yield path.relative_to(REPO), words


def test_the_docs_have_bash_blocks_to_check():
  names = {str(path) for path, _ in bash_commands()}
  assert {"README.md", "docs/scaling.md", "docs/serving.md"} <= names


def _parse(argv):
  """`kerasvae ARGV` parsed by the CLI's own parser, without running it."""
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr):
    try:
      return cli._parser().parse_args(argv)  # pylint: disable=protected-access
    except SystemExit as e:
      raise ValueError(f"does not parse: {stderr.getvalue().strip().splitlines()[-1]}") from e


def _check_kerasvae(argv):
  args = _parse(argv)
  overrides = getattr(args, "overrides", [])
  study = args.name if args.command == "study" else getattr(args, "study", None)
  if study == cli.RENDER_DOCS:  # not a study: renders the published numbers
    assert args.command == "study", argv
  elif study:  # `kerasvae study NAME` or `kerasvae pipeline ... --study NAME`
    from kerasvae import studies  # pylint: disable=import-outside-toplevel
    from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
    assert study in studies.STUDIES, argv
    assert core.resolve_study_config_path(study, args.config).is_file(), argv
  elif getattr(args, "config", None) and args.config not in PLACEHOLDER_FILES:
    assert configs.resolve_config_path(args.config).is_file(), argv
  elif args.command == "pipeline" and args.pipeline_command == "run-local":
    assert args.package in PLACEHOLDER_FILES, argv
  # Every --set names a config key and a valid value (checked on the quickstart, which reads
  # no data file, so the check needs no dataset).
  configs.load_pipeline_config("quickstart", overrides)


def _check_other(words):
  program = words[0]
  if program in ("python", "python3") and words[1] != "-m":  # a script of the repository
    script = REPO / words[1]
    assert script.is_file(), f"no script {words[1]}: {words}"
    for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
      assert f'"{flag}"' in script.read_text(), f"{words[1]} has no flag {flag}: {words}"
  elif program in ("python", "python3"):
    assert importlib.util.find_spec(words[2]) is not None, f"no module {words[2]}: {words}"
  elif program == "pip":
    assert words[:3] == ["pip", "install", "-e"] and len(words) == 4, words
    target = words[3]
    if target != ".":
      extra = target.removeprefix(".[").removesuffix("]")
      assert extra in extras()[0], f"setup.cfg has no extra {extra!r}: {words}"
  elif program in (".", "source"):
    assert words[1:] == [".venv/bin/activate"], words
  else:
    assert program in EXTERNAL, f"unknown command {program!r}: {words}"


def test_every_bash_command_of_the_docs_exists_with_its_flags():
  checked = 0
  for path, words in bash_commands():
    try:
      if words[0] == "kerasvae":
        _check_kerasvae(words[1:])
      else:
        _check_other(words)
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(f"{path}: {' '.join(words)}: {type(e).__name__}: {e}")
    checked += 1
  assert checked >= 30


def _slug(heading):
  """GitHub's anchor of a Markdown heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_of_the_docs_resolve():
  for path in markdown.DOCS:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # code is not links
    text = re.sub(r"`[^`]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
      if re.match(r"[a-z]+://", target):
        continue
      file, _, anchor = target.partition("#")
      linked = (path.parent / file).resolve() if file else path
      assert linked.exists(), f"{path.relative_to(REPO)}: {target} does not exist"
      if anchor and linked.suffix == ".md":
        headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
        assert anchor in {_slug(h) for h in headings}, f"{path.relative_to(REPO)}: no #{anchor}"


def test_the_library_snippet_runs_as_written_and_its_claims_hold(tmp_path, monkeypatch):
  """The README's library block, run as written on uint8 (N, 28, 28) images (as users hold
  them), then its claims: the same seed repeats elbo, iwae_log_likelihood and sample, also after
  `keras.saving.load_model`; without a seed the ELBO differs; encode_mean is deterministic."""
  import keras  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  section = markdown.section(markdown.README.read_text(), "The library")
  snippet, = [b for b in markdown.fenced_blocks(section, "python") if "import kerasvae" in b]
  images = np.random.default_rng(0).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
  monkeypatch.chdir(tmp_path)
  scope = {"images": images}
  exec(compile(snippet, "README.md", "exec"), scope)  # pylint: disable=exec-used
  vae, terms, log_px, samples = (scope[n] for n in ("vae", "terms", "log_px", "samples"))
  assert terms["elbo"].shape == (8,) and log_px.shape == (8,) and samples.shape == (16, 28, 28, 1)
  loaded = keras.saving.load_model(tmp_path / "vae.keras")
  for model in (vae, loaded):  # the snippet's calls again, in the model and in its copy
    for key in terms:
      np.testing.assert_array_equal(model.elbo(images, seed=0)[key], terms[key])
    np.testing.assert_array_equal(model.iwae_log_likelihood(images, num_samples=5000, seed=0),
                                  log_px)
    np.testing.assert_array_equal(model.sample(16, seed=7), samples)
    np.testing.assert_array_equal(model.encode_mean(images), scope["codes"])
  # "without seed= two calls give different numbers"
  assert not np.array_equal(vae.elbo(images)["elbo"], vae.elbo(images)["elbo"])
  assert not np.array_equal(vae.sample(4), vae.sample(4))


def test_the_quickstart_config_and_the_readme_agree_on_its_time():
  """Both say "about a minute" (the README with its measured run), neither "a few minutes"."""
  readme = " ".join(markdown.section(markdown.README.read_text(), "Quick start").split())
  header = " ".join(line.lstrip("# ") for line in (
      REPO / "kerasvae" / "configs" / "quickstart.yaml").read_text().splitlines()
      if line.startswith("#"))
  for text in (readme, header):
    assert "about a minute" in text and "few minutes" not in text, text
  cpu = re.search(r"(\d+) CPU-seconds", readme).group(1)
  assert f"({cpu} CPU-seconds" in header, (cpu, header)
