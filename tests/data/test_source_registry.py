"""The data-source registry's contract, for every registered source (`sources.SOURCES`, not a
list kept here): its settings block is a `DataConfig` field, its path fields are resolved and
checked, its required fields are refused by name, it says whether it has ground truth; and
the fingerprints of existing configs did not move when the sources became a registry."""

import dataclasses
import re
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae.config import ConfigError
from kerasvae.data import config as data_config
from kerasvae.data import sources
from kerasvae.metrics.ground_truth import GroundTruthData
from tests.data import helpers

PATH_FIELDS = [(name, field) for name, source in sources.SOURCES.items()
               for field in source.path_fields]
REQUIRED_FIELDS = [(name, field) for name, source in sources.SOURCES.items()
                   for field in source.required]


def _settings(source, **values):
  """The source's block with every required field that names no file set to a placeholder."""
  placeholders = {f: "x" for f in source.required if f not in source.path_fields}
  return source.settings(**{**placeholders, **values})


def test_every_source_is_a_block_of_the_data_config():
  fields = {f.name: f for f in dataclasses.fields(data_config.DataConfig)}
  assert data_config.SOURCES == tuple(sources.SOURCES)
  assert fields["source"].metadata["choices"] == tuple(sources.SOURCES)
  assert list(fields) == ["source", *sources.SOURCES]
  for name, source in sources.SOURCES.items():
    assert source.name == name
    if source.block_in_every_config:
      assert fields[name].type is source.settings
      assert getattr(data_config.DataConfig(), name) == source.settings()
    else:
      assert fields[name].type == Optional[source.settings]
      assert name not in config_lib.to_dict(data_config.DataConfig())
    own = {f.name for f in dataclasses.fields(source.settings)}
    assert set(source.path_fields) <= own, name
    assert set(source.required) <= own, name
    assert set(source.path_fields.values()) <= {sources.FILE, sources.DIRECTORY, None}, name
    assert data_config.PATH_FIELDS.get(name, ()) == tuple(source.path_fields)
    # Chosen, with its required fields set, the block is read from YAML and written back.
    block = {f: "x" for f in source.required}
    config = config_lib.from_dict(data_config.DataConfig, {"source": name, name: block})
    assert config.source_config == source.settings(**block)
    assert config_lib.to_dict(config)[name] == config_lib.to_dict(source.settings(**block))


@pytest.mark.parametrize("name, field", PATH_FIELDS)
def test_path_fields_are_resolved_against_the_config_and_checked(tmp_path, name, field):
  source = sources.SOURCES[name]
  ingest = {"data": {name: {field: "data/thing"}}}
  data_config.resolve_data_paths(ingest, tmp_path)
  assert ingest["data"][name][field] == str(tmp_path / "data" / "thing")

  # Every other checked path exists; this one does not.
  values = {}
  for other, kind in source.path_fields.items():
    path = tmp_path / other
    if kind == sources.FILE:
      path.write_bytes(b"")
    elif kind == sources.DIRECTORY:
      path.mkdir()
    values[other] = str(path)
  values[field] = str(tmp_path / "missing")
  data = data_config.DataConfig(source=name, **{name: _settings(source, **values)})
  kind = source.path_fields[field]
  if kind is None:  # declared unchecked (TFDS makes its data_dir)
    sources.check_input_paths(data)
    return
  with pytest.raises(FileNotFoundError, match=re.escape(
      f"{name}.{field}: expected a {kind} at {tmp_path / 'missing'}. Received: nothing there.")):
    sources.check_input_paths(data)


@pytest.mark.parametrize("name, field", REQUIRED_FIELDS)
def test_required_fields_are_refused_by_name_when_missing(name, field):
  source = sources.SOURCES[name]
  block = {f: "x" for f in source.required if f != field}
  with pytest.raises(ConfigError, match=re.escape(
      f"{name}.{field}: expected a value for source={name!r}. Received: {field}=")):
    config_lib.from_dict(data_config.DataConfig, {"source": name, name: block})


@pytest.mark.parametrize("name", list(sources.SOURCES))
def test_a_source_says_whether_its_data_has_ground_truth(name):
  source = sources.SOURCES[name]
  meta = {"source": name, "source_config": config_lib.to_dict(_settings(source))}
  truth = sources.ground_truth(meta)
  assert (truth is not None) == source.has_ground_truth
  if truth is not None:
    assert isinstance(truth, GroundTruthData)
    assert len(truth.factor_names) == len(truth.factor_sizes)


def test_data_of_an_unknown_source_has_no_ground_truth():
  assert sources.ground_truth({"source": "retired_source", "source_config": {}}) is None
  assert sources.ground_truth({}) is None


def test_a_source_added_later_moves_no_existing_fingerprint(monkeypatch, tmp_path):
  @dataclasses.dataclass
  class FooConfig:
    path: str = config_lib.field("", help="A file.")

  class FooSource(sources.Source):
    name = "foo"
    settings = FooConfig
    path_fields = {"path": sources.FILE}
    required = ("path",)

  monkeypatch.setitem(sources.SOURCES, "foo", FooSource)

  class Data(data_config.DataConfig):
    """`DataConfig` with the source `foo` registered."""

  # pylint: disable-next=protected-access
  data = dataclasses.dataclass(data_config._with_source_blocks(Data, {"foo": FooSource}))
  assert config_lib.to_dict(data()) == config_lib.to_dict(data_config.DataConfig())
  chosen = data(source="foo")
  assert chosen.source_config == FooConfig()
  assert config_lib.to_dict(chosen)["foo"] == {"path": ""}
  with pytest.raises(ConfigError, match=re.escape("foo.path: expected a value for source='foo'")):
    chosen.validate()
  chosen.foo.path = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match=re.escape("foo.path: expected a file at")):
    sources.check_input_paths(chosen)


# ------------------------------------------------------- fingerprints of existing configs
# Computed on 6a0a122, before the sources became a package: a run of an existing config
# must find its ingest artifact (same fingerprint, same examples directory) and reuse it.

CONFIGS = {
    "default": ({}, "d06f944f024d001eb574460deee8e3ae688ac111b4529a563ae792ca9a4d3dc9"),
    "idx": ({"source": "idx", "idx": {"images": "/data/a.gz", "labels": "/data/b.gz"}},
            "adab6c027f599cef9fb102a2c6b9fbb589e8460012a6700dc8e84cd78aac906f"),
    "npz": ({"source": "npz", "npz": {"path": "/data/x.npz", "factor_names": ["a"]}},
            "5245f7f40db5284a6d6af094c05b88ac611c19860effd1ef00a7bfa019312255"),
    "image_folder": ({"source": "image_folder",
                      "image_folder": {"root": "/data/imgs", "resize": [8, 8]}},
                     "4cf4bec23660040d2031e14249384effcdc451d07d6503c61313301c9267c933"),
    "image_folder_alpha": ({"source": "image_folder", "image_folder": {
        "root": "/data/imgs", "alpha": "composite", "background": 1.0}},
                           "6f5c50e34fff4df90ac6aaeab87f54bf95f8b31d65c687b47d876295a7a3a990"),
    "tfds": ({"source": "tfds", "tfds": {"name": "mnist", "data_dir": "/data/tfds"}},
             "69bebd66c5f87a1ff3ee0e4e316c41ea12e3097398edbb0b4ca2b2087b83048b"),
    "dsprites": ({"source": "dsprites",
                  "dsprites": {"num_examples": 640, "seed": 1, "scales": [5]}},
                 "c5a095962f2f76847cdac3b6fb34f1e39671074b7818d5930443516607919d4c"),
}
EXAMPLES_DIRECTORIES = {"default": "121fbf98f3f1", "dsprites": "c695894fb794",
                        "idx": "adab6c027f59"}
CONTENT_HASHES = {
    "idx": "cb451cc2802cef1352d7599d052f5f6192dbf241b52ddd4a49cc3c64f3959381",
    "npz": "6221fbc39ee04b4870c5ac96136b82db3bc79914f9e8312d509c174fd7996e59",
    "image_folder": "fdeceddf7535afde1eecaf215a41968dfd62934d7b9823cf73228b0c31677287",
    "dsprites": "28cfb2d749132030d575b83c0ba6176cf881b1ded775c22e11043e871829e624",
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_ingest_config_fingerprints_are_unchanged(case):
  data, expected = CONFIGS[case]
  config = helpers.config(data)
  assert artifacts.fingerprint(config_lib.to_dict(config)) == expected


@pytest.mark.parametrize("case", list(EXAMPLES_DIRECTORIES))
def test_examples_directories_are_unchanged(case):
  from kerasvae.steps import common  # pylint: disable=import-outside-toplevel
  from kerasvae.steps.configs import PipelineConfig  # pylint: disable=import-outside-toplevel
  config = config_lib.from_dict(PipelineConfig, {"ingest": {"data": CONFIGS[case][0]},
                                                 "run": {"runs_dir": "/runs"}})
  assert common.examples_directory(config) == Path("/runs/examples") / EXAMPLES_DIRECTORIES[case]


def test_content_hashes_are_unchanged(tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  images = (np.arange(6 * 4 * 4) % 256).astype(np.uint8).reshape(6, 4, 4)  # [6, 4, 4]
  helpers.write_idx(tmp_path / "images.idx", images)
  helpers.write_idx(tmp_path / "labels.idx", np.arange(6, dtype=np.uint8))
  np.savez(tmp_path / "a.npz", images=images, labels=np.arange(6),
           factors=np.ones((6, 2), np.float32))
  for i in range(3):
    (tmp_path / "folder" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
    Image.fromarray(images[i]).save(tmp_path / "folder" / f"c{i % 2}" / f"{i}.png")
  blocks = {
      "idx": {"images": str(tmp_path / "images.idx"), "labels": str(tmp_path / "labels.idx")},
      "npz": {"path": str(tmp_path / "a.npz")},
      "image_folder": {"root": str(tmp_path / "folder")},
      "dsprites": {"num_examples": 10},
  }
  for name, block in blocks.items():
    config = helpers.config({"source": name, name: block})
    assert sources.open_source(config.data).content_hash() == CONTENT_HASHES[name], name
