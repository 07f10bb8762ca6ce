"""`saved_models/models.config` is the operators' file too (issue 41, cases 1, 3 and 8).

Export merges its model's entry into it with TF Serving's own protos: every other entry and
every field an operator added survives any number of exports; a file it cannot parse is
refused by name and left as it is; the version and the config entry are published together
or not at all. The command-line cases are in test_export_and_file_systems.py.
"""

import os
import re

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import kerasvae
from kerasvae import serving
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


def test_the_copied_protos_are_tf_servings_own():
  """kerasvae._serving_protos holds TF Serving's descriptors without the package: the same
  files, byte for byte, as the installed tensorflow-serving-api's, and the same text."""
  from google.protobuf import descriptor_pb2  # pylint: disable=import-outside-toplevel
  from kerasvae import _serving_protos  # pylint: disable=import-outside-toplevel
  installed = {}

  def collect(file):
    for dependency in file.dependencies:
      collect(dependency)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    installed[file.name] = proto

  collect(model_server_config_pb2.DESCRIPTOR)
  copied = [descriptor_pb2.FileDescriptorProto.FromString(d) for d in _serving_protos.FILES]
  assert {p.name: p for p in copied} == {n: p for n, p in installed.items()
                                          if not n.startswith("google/")}
  config = text_format.Parse(HAND_EDITED, _serving_protos.model_server_config_class()())
  assert text_format.MessageToString(config) == text_format.MessageToString(
      text_format.Parse(HAND_EDITED, model_server_config_pb2.ModelServerConfig()))
