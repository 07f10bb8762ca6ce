"""What a new user meets in the first hour (issue 38): config names in either spelling with a
"did you mean", one-line YAML errors, a missing upstream step named before TensorFlow loads,
class names in plots, models.config for a container, a quiet local pipeline run, the
image_folder example and a checkout guard that blames the suite only for its own writes."""

import os
import subprocess
import sys
import textwrap

import pytest

from kerasvae.config import ConfigError
from kerasvae.steps import configs
from kerasvae.studies import core
from tests.pipeline_helpers import subprocess_env
from tests.pipeline_helpers import tiny_config


@pytest.mark.parametrize("name,bundled", [("mnist-vae", "mnist_vae"), ("mnist_vae", "mnist_vae"),
                                          ("Fashion-MNIST-VAE", "fashion_mnist_vae"),
                                          ("dsprites-beta-vae", "dsprites_beta_vae")])
def test_bundled_configs_are_found_with_dashes_or_underscores(name, bundled):
  assert configs.resolve_config_path(name) == configs.CONFIG_DIR / f"{bundled}.yaml"


def test_study_configs_and_names_are_found_with_dashes_or_underscores():
  path = core.resolve_study_config_path("beta", "fashion_mnist_beta")
  assert path == core.STUDY_CONFIG_DIR / "fashion-mnist-beta.yaml"
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  plan = studies.plan_study("latent_dim", quick=True, output="unused")
  assert plan.study.name == "latent-dim"


@pytest.mark.parametrize("call,message", [
    (lambda: configs.resolve_config_path("mnist-vea"),
     r"Received: --config mnist-vea\. Did you mean mnist_vae\?$"),
    (lambda: configs.resolve_config_path("quikstart"),
     r"Received: --config quikstart\. Did you mean quickstart\?$"),
    (lambda: core.resolve_study_config_path("beta", "fashion_mnist_bet"),
     r"Received: --config fashion_mnist_bet \(not found\)\. Did you mean fashion-mnist-beta\?$"),
    (lambda: configs.resolve_config_path("zzz"), r"Received: --config zzz\.$"),
])
def test_an_unknown_config_name_gets_a_did_you_mean(call, message):
  with pytest.raises(ConfigError, match=message):
    call()


def test_an_unknown_study_name_gets_a_did_you_mean():
  from kerasvae import studies  # pylint: disable=import-outside-toplevel
  with pytest.raises(ConfigError, match=r"Received: name='prior'\. Did you mean priors\?$"):
    studies.plan_study("prior", quick=True, output="unused")


@pytest.mark.parametrize("text,where", [
    ("model:\n  latent_dim: 3\n   kind: vae\n", "line 3, column 8: mapping values are not "
     "allowed here"),
    ("model: {latent_dim: 3\n", "line 2, column 1: expected ',' or '}', but got '<stream end>'"),
    ("model:\n\tlatent_dim: 3\n", "line 2, column 1: found character '\\t' that cannot start"),
])
def test_a_yaml_parse_error_is_one_line_with_its_line_and_column(tmp_path, text, where):
  path = tmp_path / "bad.yaml"
  path.write_text(text)
  with pytest.raises(ConfigError) as info:
    configs.load_pipeline_config(str(path))
  message = str(info.value)
  assert "\n" not in message, message
  assert message.startswith(f"{path}: expected valid YAML. Received: {where}"), message


MISSING_STEP = textwrap.dedent("""
    import contextlib, io, pathlib, sys, time
    from kerasvae import cli
    from kerasvae.steps import common, configs
    config = configs.load_pipeline_config(sys.argv[1])
    for command in ("train", "make-examples", "evaluate", "export"):
      if command == "make-examples":  # what the check reads of a finished ingest
        examples = common.examples_directory(config)
        examples.mkdir(parents=True)
        (examples / "metadata.json").write_text("{}")
        continue
      with contextlib.redirect_stderr(io.StringIO()) as err:
        status = cli.main([command, "--config", sys.argv[1]])
      print(command, status, repr(err.getvalue()))
    print(common.run_directory(config), "tensorflow" in sys.modules)
""")


def test_a_step_without_its_upstream_step_fails_before_tensorflow_loads(tmp_path):
  """`kerasvae evaluate` on a run that never trained says so at once (not after TensorFlow's
  import, 20 s on a loaded machine), in one line; so do train without Examples and export
  without a training."""
  config = tiny_config(tmp_path)
  proc = subprocess.run([sys.executable, "-c", MISSING_STEP, str(config)], cwd=tmp_path,
                        env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  *lines, last = proc.stdout.splitlines()
  run_dir, tensorflow_loaded = last.split()
  assert tensorflow_loaded == "False", proc.stdout
  expected = {
      "train": "kerasvae train: error: No Examples artifact for this ingest config: neither "
               f"{run_dir}/ingest nor ",
      "evaluate": f"kerasvae evaluate: error: Expected a finished train step in {run_dir}/train, "
                  "but it has no metadata.json. Run `kerasvae train` first.",
      "export": f"kerasvae export: error: Expected a finished train step in {run_dir}/train"}
  assert [line.split()[0] for line in lines] == ["train", "evaluate", "export"], lines
  for line in lines:
    command, status, err = line.split(" ", 2)
    assert status == "2", line
    err = err[1:-1]  # repr quotes
    assert err.startswith(expected[command]) and err.endswith("\\n"), line
    assert err.count("\\n") == 1, line  # one line


def test_plots_and_the_projector_name_the_classes(tmp_path, monkeypatch):
  """The latents' legend and the projector's metadata.tsv show the Examples artifact's class
  names (`label_names`), not their indices."""
  import matplotlib.axes  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from kerasvae import summaries  # pylint: disable=import-outside-toplevel
  from kerasvae import viz  # pylint: disable=import-outside-toplevel
  legend = []
  scatter = matplotlib.axes.Axes.scatter
  monkeypatch.setattr(matplotlib.axes.Axes, "scatter",
                      lambda self, *a, **k: legend.append(k.get("label")) or scatter(self, *a, **k))
  rng = np.random.default_rng(0)
  z, labels = rng.normal(size=(30, 3)), np.array([2, 0, 1] * 10)
  names = ["one", "two", "zero"]
  viz.latent_scatter_figure(z, labels, tmp_path / "latents.png", label_names=names)
  assert legend == ["one", "two", "zero"]
  legend.clear()
  viz.latent_scatter_figure(z, labels, tmp_path / "numbers.png")  # no names: the numbers
  assert legend == ["0", "1", "2"]
  summaries.write_projector(tmp_path / "validation", z, labels=labels, label_names=names)
  rows = (tmp_path / "validation" / "metadata.tsv").read_text().splitlines()
  assert rows[:4] == ["label\tindex", "zero\t0", "one\t1", "two\t2"]


def test_models_config_uses_the_servers_base_path_when_configured(tmp_path):
  """`export.serving_base_path: /models` writes `base_path: "/models/<name>"`, the path a
  container that mounts saved_models at /models sees; unset, this machine's absolute paths."""
  from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=import-outside-toplevel
  from kerasvae import serving  # pylint: disable=import-outside-toplevel
  for name in ("quickstart_vae", "other"):
    (tmp_path / name / "1").mkdir(parents=True)

  def entries():
    config = text_format.Parse((tmp_path / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    return [(c.name, c.base_path) for c in config.model_config_list.config]

  serving.write_models_config(tmp_path, serving_base_path="/models/")
  assert sorted(entries()) == [("other", "/models/other"),
                               ("quickstart_vae", "/models/quickstart_vae")]
  serving.write_models_config(tmp_path)
  assert sorted(entries()) == [(n, str((tmp_path / n).resolve()))
                               for n in ("other", "quickstart_vae")]
  assert configs.load_pipeline_config(
      None, ["export.serving_base_path=/models"]).export.serving_base_path == "/models"
  with pytest.raises(ConfigError, match=r"serving_base_path: expected an absolute path as the "
                     r"server sees it \(e\.g\. /models\)\. Received: 'models'"):
    configs.load_pipeline_config(None, ["export.serving_base_path=models"])


def test_run_local_prints_one_line_per_task_and_logs_the_rest():
  """What KFP's local runner prints (its log lines with colour codes, executor JSON, the
  components' output) goes to the log; each finished task is one line."""
  import io  # pylint: disable=import-outside-toplevel
  pytest.importorskip("kfp")
  from kerasvae import kfp_pipeline  # pylint: disable=import-outside-toplevel
  log, echoed, now = io.StringIO(), [], iter([0.0, 41.4, 50.0, 52.2])
  lines = kfp_pipeline.TaskLines(log, echoed.append, clock=lambda: next(now))
  text = ("12:00:00.1 - INFO - Executing task \x1b[96m'ingest'\x1b[0m\n"
          "    {\"executorInput\": {\"inputs\": {}}}\n    I0000 cpu_feature_guard.cc:210] ...\n"
          "12:00:41.5 - INFO - Task \x1b[96m'ingest'\x1b[0m finished with status "
          "\x1b[92mSUCCESS\x1b[0m\n12:00:50 - INFO - Executing task 'train'\n"
          "12:00:52 - ERROR - Task 'train' finished with status FAILURE\n")
  for start in range(0, len(text), 7):  # written in pieces, as print does
    lines.write(text[start:start + 7])
  assert log.getvalue() == text
  assert echoed == ["pipeline: task ingest succeeded in 41 s",
                    "pipeline: task train failure in 2 s"]


def test_task_lines_echo_that_writes_back_does_not_wait_for_itself():
  """kfp.local's indenting print writes to sys.stdout (the TaskLines) whatever file it is
  given: an echo that comes back into `write`, from two threads at once, must not hang (it hung
  a ParallelFor sweep under a plain lock)."""
  import io  # pylint: disable=import-outside-toplevel
  import threading  # pylint: disable=import-outside-toplevel
  pytest.importorskip("kfp")
  from kerasvae import kfp_pipeline  # pylint: disable=import-outside-toplevel
  echoed = []
  lines = kfp_pipeline.TaskLines(io.StringIO(), lambda line: (echoed.append(line),
                                                              lines.write("  " + line + "\n")))
  def task(name):
    for i in range(20):
      lines.write(f"Executing task '{name}-{i}'\nTask '{name}-{i}' finished with status "
                  "SUCCESS\n")
  threads = [threading.Thread(target=task, args=(n,), daemon=True) for n in ("a", "b")]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=20)
  assert not any(t.is_alive() for t in threads), "TaskLines.write waited for itself"
  assert len(echoed) == 40


def test_pipeline_help_explains_the_image_and_the_quiet_local_run():
  pytest.importorskip("kfp")
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  args = cli._parser().parse_args(["pipeline", "run-local", "--package", "p.yaml", "--verbose"])  # pylint: disable=protected-access
  assert args.verbose
  assert not cli._parser().parse_args(["pipeline", "run-local", "--package", "p.yaml"]).verbose  # pylint: disable=protected-access
  proc = subprocess.run([sys.executable, "-m", "kerasvae.cli", "pipeline", "compile", "--help"],
                        env=subprocess_env(), capture_output=True, text=True, timeout=60)
  help_text = " ".join(proc.stdout.split())
  assert "docker build -t kerasvae:0.1.0 ." in help_text and "REGISTRY/kerasvae:0.1.0" in help_text


def test_the_image_folder_example_config_ingests_a_folder_of_pictures(tmp_path):
  """docs/examples/image_folder.yaml, copied beside a folder of class subfolders as its comment
  says, is a valid config whose ingest reads the pictures with their class names."""
  import shutil  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from kerasvae import cli  # pylint: disable=import-outside-toplevel
  from kerasvae.data import reader  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from tests.pipeline_helpers import REPO  # pylint: disable=import-outside-toplevel
  example = tmp_path / "image_folder.yaml"
  shutil.copy(REPO / "docs" / "examples" / "image_folder.yaml", example)
  rng = np.random.default_rng(0)
  for label in ("cats", "dogs"):
    (tmp_path / "my_images" / label).mkdir(parents=True)
    for i in range(20):
      pixels = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(tmp_path / "my_images" / label / f"{i}.png")
  overrides = [f"run.runs_dir={tmp_path / 'runs'}"]
  config = configs.load_pipeline_config(str(example), overrides)
  assert config.ingest.data.image_folder.root == str(tmp_path / "my_images")
  assert cli.main(["ingest", "--config", str(example), *(f"--set={o}" for o in overrides)]) == 0
  examples = common.examples_directory(config)
  metadata = reader.read_metadata(examples)
  assert metadata["label_names"] == ["cats", "dogs"]
  assert metadata["image_shape"] == [64, 64, 3]
  assert sum(s["num_examples"] for s in metadata["splits"].values()) == 40


def test_the_checkout_guard_sees_the_suites_own_writes_only(tmp_path):
  """The guard is this process's audit hook: its writes into the checkout's user folders are
  seen (open for writing, mkdir, rename into them), reads and other folders are not, and a
  file another process (a user's `kerasvae run`) writes there meanwhile is not this suite's."""
  from tests import conftest  # pylint: disable=import-outside-toplevel
  from tests.pipeline_helpers import REPO  # pylint: disable=import-outside-toplevel
  runs = REPO / "runs" / "x" / "metadata.json"
  assert conftest.checkout_write("open", (str(runs), "w", 0)) == str(runs)
  assert conftest.checkout_write("open", (runs, None, os.O_WRONLY | os.O_CREAT)) == str(runs)
  assert conftest.checkout_write("os.mkdir", (REPO / "saved_models" / "m", 0o777, None)) \
      == str(REPO / "saved_models" / "m")
  assert conftest.checkout_write("os.rename", (tmp_path / "a", REPO / "studies" / "b", None,
                                               None)) == str(REPO / "studies" / "b")
  assert conftest.checkout_write("open", (str(runs), "r", 0)) is None
  assert conftest.checkout_write("open", (str(REPO / "runs_old" / "f"), "w", 0)) is None
  assert conftest.checkout_write("os.mkdir", (tmp_path / "runs", 0o777, None)) is None
  # Attempts that change nothing: mkdir of a folder that is there, rmdir (of a non-empty one).
  assert conftest.checkout_write("os.mkdir", (REPO / "saved_models", 0o777, None)) is None
  assert conftest.checkout_write("os.rmdir", (REPO / "saved_models", None)) is None
  # The hook records what this process does, through the same function.
  before = list(conftest._checkout_writes)  # pylint: disable=protected-access
  with open(tmp_path / "runs.txt", "w", encoding="utf-8") as f:
    f.write("x")
  assert conftest._checkout_writes == before  # pylint: disable=protected-access


def test_the_evaluate_summary_sets_the_iwae_beside_the_elbo_of_the_same_images():
  """An ELBO over 1,000 images beside an IWAE over 100 made the IWAE look below the ELBO."""
  from kerasvae.steps import evaluate  # pylint: disable=import-outside-toplevel
  line = evaluate.summary_line({"num_examples": 1000, "elbo": -281.3, "kl": 20.0,
                                "iwae_log_likelihood": -304.8, "iwae_examples": 100,
                                "iwae_examples_elbo": -309.06, "shape_recognised": 0.8125})
  assert line == ("elbo -281.3 (1000 images), kl 20, iwae_log_likelihood -304.8 (ELBO -309.1, "
                  "the same 100 images), shape_recognised 0.8125")
  assert evaluate.summary_line({"elbo": -90.0, "reconstruction": 80.0}) == \
      "elbo -90, reconstruction 80"
