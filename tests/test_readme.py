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
# What the optional features need; the quick start must install none of them.
OPTIONAL_PACKAGES = ("kfp", "tensorflow-serving-api", "grpcio")


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
  # .ci/run holds the README's lines verbatim (the venv line behind KERASVAE_CI_VENV=1).
  ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
  for line in (install_and_run + test).splitlines():
    assert any(c == line or c.startswith(line + " ") for c in ci), f".ci/run lacks: {line}"


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


def test_ci_run_fails_when_pytest_collects_nothing(tmp_path):
  """`.ci/run` with a fake `pip` and `python` on PATH: pytest's exit code 5 fails the script."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name, body in (("pip", "exit 0"), ("kerasvae", "exit 0"),
                     ("python", 'if [ "$2" = pytest ]; then exit "$PYTEST_STATUS"; fi; exit 0')):
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)
  env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CI": "true"}
  for status, expected in ((0, 0), (1, 1), (5, 5)):
    proc = subprocess.run(["bash", str(REPO / ".ci" / "run")], env={**env, "PYTEST_STATUS": str(status)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == expected, (status, proc.stderr)
    assert ("collected no tests" in proc.stderr) == (status == 5)


def test_the_quickstart_runs_without_the_optional_packages(tmp_path):
  """`kerasvae run` of the quickstart config, shrunk to seconds, in a process where importing
  kfp, tensorflow_serving or grpc fails: the core install is enough for the quick start."""
  shrink = ["ingest.data.dsprites.num_examples=640", "train.epochs=1", "train.progress=false",
            "train.projector_examples=50", "evaluate.iwae_samples=10", "evaluate.iwae_examples=50",
            "evaluate.disentanglement_train_points=60", "evaluate.disentanglement_eval_points=30",
            f"run.runs_dir={tmp_path / 'runs'}", f"export.base_dir={tmp_path / 'saved_models'}"]
  argv = ["run", "--force"] + [a for s in shrink for a in ("--set", s)]
  script = ("import sys; sys.modules.update(kfp=None, tensorflow_serving=None, grpc=None); "
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
