"""`saved_models/models.config` is the operators' file too (issue 41, cases 1, 3 and 8).

Export merges its model's entry into it with TF Serving's own protos: every other entry and
every field an operator added survives any number of exports; a file it cannot parse is
refused by name and left as it is; the version and the config entry are published together
or not at all; a version folder replaced by a file is named. The CLI cases run the real
`kerasvae export` on one tiny finished run.
"""

import os
import re

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import kerasvae
from kerasvae import cli
from kerasvae import serving
from tests.pipeline_helpers import finished_tiny_run
from tests.reliability.test_bad_inputs import tree

# What an operator writes by hand: a model kerasvae never exported, with a version policy, and
# the exported model's own entry with labels and a policy of its own.
HAND_EDITED = """\
# kept by export: every entry and field it does not own
model_config_list {
  config {
    name: "legacy"
    base_path: "/srv/models/legacy"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 7 } }
  }
  config {
    name: "vae"
    base_path: "/somewhere/old"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 1 }
    logging_config { sampling_config { sampling_rate: 0.25 } }
  }
}
"""


def parse(path):
  return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def tiny(kind):
  return kind((4, 4, 1), 2, hidden_units=(8,))


def test_a_hand_edited_models_config_survives_ten_exports_of_two_models(tmp_path):
  base = tmp_path / "saved_models"
  base.mkdir()
  (base / "models.config").write_text(HAND_EDITED)
  models = {"vae": tiny(kerasvae.VAE), "ae": tiny(kerasvae.Autoencoder)}
  for i in range(10):
    name = ("vae", "ae")[i % 2]
    serving.export_model(models[name], base, name)
  assert serving.list_versions(base / "vae") == [1, 2, 3, 4, 5]
  assert serving.list_versions(base / "ae") == [1, 2, 3, 4, 5]
  expected = text_format.Parse(HAND_EDITED, model_server_config_pb2.ModelServerConfig())
  vae = expected.model_config_list.config[1]
  vae.base_path = str((base / "vae").resolve())  # the one field of its entry export owns
  ae = expected.model_config_list.config.add()
  ae.name, ae.base_path, ae.model_platform = "ae", str((base / "ae").resolve()), "tensorflow"
  assert parse(base / "models.config") == expected
  assert not list(base.glob(".models.config*"))


def test_an_unchanged_models_config_is_not_rewritten(tmp_path):
  """An entry already right is left byte for byte (its comments and layout too)."""
  base = tmp_path / "saved_models"
  serving.export_model(tiny(kerasvae.Autoencoder), base, "ae")
  text = "# hand-made\n" + (base / "models.config").read_text().replace("\n", "\n\n")
  (base / "models.config").write_text(text)
  serving.export_model(tiny(kerasvae.Autoencoder), base, "ae")
  assert (base / "models.config").read_text() == text


@pytest.mark.parametrize("content, received", [
    ("model_config_list { config { name: 'x' base_path: '/x' } ", r"a syntax error: 1:\d+ : "),
    ("model_config_list { config { name: 'x' version_policy: 3 } }",
     r"a syntax error: .*no field named \"version_policy\""),
    (b"\xff\xfe", r"bytes that are not UTF-8"),
    ("custom_model_config { }", r"a custom_model_config, which export cannot add a model to"),
    (None, r"a directory"),
])
def test_a_models_config_that_cannot_be_parsed_is_refused_and_kept(tmp_path, content, received):
  base = tmp_path / "saved_models"
  base.mkdir()
  path = base / "models.config"
  if content is None:
    path.mkdir()  # the case 3: the export left a complete version behind
  elif isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  before = tree(base)
  with pytest.raises(serving.ModelsConfigError) as error:
    serving.export_model(tiny(kerasvae.Autoencoder), base, "ae")
  message = str(error.value)
  assert message.startswith(f"{path}: expected a text-format ModelServerConfig with a "
                            "model_config_list"), message
  assert re.search(f"Received: {received}", message), message
  assert message.endswith("The file is left as it is and nothing was exported: fix or move it, "
                          "then export again.")
  assert tree(base) - {"ae"} == before  # no version, no temporary; the file as it was
  assert serving.list_versions(base / "ae") == []
  if content is not None:
    assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())


def test_a_version_whose_config_entry_cannot_be_published_is_taken_back(tmp_path, monkeypatch):
  """The rename of models.config fails after the version's rename: the version goes too."""
  base = tmp_path / "saved_models"
  serving.export_model(tiny(kerasvae.Autoencoder), base, "ae")
  config_before = (base / "models.config").read_text()
  real_replace = os.replace

  def failing_replace(source, target):
    if str(target).endswith("models.config"):
      raise OSError(5, "Input/output error", str(target))
    return real_replace(source, target)

  monkeypatch.setattr(os, "replace", failing_replace)
  with pytest.raises(OSError, match="Input/output error"):
    serving.export_model(tiny(kerasvae.Autoencoder), base, "other")
  assert not (base / "other").exists() or serving.list_versions(base / "other") == []
  assert [p.name for p in (base / "other").iterdir()] == []  # no hidden temporary either
  assert (base / "models.config").read_text() == config_before
  assert not list(base.glob(".models.config*"))


# ------------------------------------------------------------------ the real command line


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  return finished_tiny_run(tmp_path_factory.mktemp("models_config"))


def _export(config_path, capsys, *args):
  capsys.readouterr()
  code = cli.main(["export", "--config", str(config_path), "--force", *args])
  return code, capsys.readouterr()


def test_export_force_keeps_a_hand_added_entry(finished, capsys):
  """The issue's case 1: add a `config { … }` entry, then `kerasvae export --force`."""
  tmp_path, config_path, _ = finished
  path = tmp_path / "saved_models" / "models.config"
  config = parse(path)
  entry = config.model_config_list.config.add()
  entry.name, entry.base_path = "by_hand", "/srv/by_hand"
  entry.model_version_policy.all.SetInParent()
  config.model_config_list.config[0].version_labels["canary"] = 1
  path.write_text(text_format.MessageToString(config))
  code, out = _export(config_path, capsys)
  assert code == 0, out.err
  assert parse(path) == config


def test_export_refuses_a_models_config_directory_and_leaves_no_version(finished, capsys):
  """The issue's case 3: models.config made a directory. Refused by name, before anything is
  written: no complete version behind, and the run's previous version is still there."""
  tmp_path, config_path, _ = finished
  base = tmp_path / "saved_models"
  (base / "models.config").rename(base / "models.config.saved")
  (base / "models.config").mkdir()
  try:
    before = tree(tmp_path)
    code, out = _export(config_path, capsys)
    assert code == 2, out.err
    assert out.err == (
        f"kerasvae export: error: {base / 'models.config'}: expected a text-format "
        "ModelServerConfig with a model_config_list (the file tensorflow_model_server "
        "--model_config_file reads), so that export can add its model's entry and keep the "
        "others. Received: a directory. The file is left as it is and nothing was exported: "
        "fix or move it, then export again.\n")
    assert tree(tmp_path) == before
  finally:
    (base / "models.config").rmdir()
    (base / "models.config.saved").rename(base / "models.config")


def test_a_version_folder_replaced_by_a_file_is_named_and_skipped(finished, capsys):
  """The issue's case 8: a file named like a version blocked every later export with
  "[Errno 17] Refusing to replace…". It is not a version: named, and the next number is used."""
  tmp_path, config_path, _ = finished
  model_dir = tmp_path / "saved_models" / "tiny"
  newest = serving.list_versions(model_dir)[-1]
  blocker = model_dir / str(newest + 1)
  blocker.write_text("not a version")
  try:
    code, out = _export(config_path, capsys)
    assert code == 0, out.err
    assert (f"export: warning: {blocker} is a file, not a version folder: TF Serving does not "
            f"load it and export skips its number; remove it if it is not yours") in out.out
    assert serving.list_versions(model_dir)[-1] == newest + 2
  finally:
    blocker.unlink()
