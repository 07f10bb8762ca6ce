"""The fingerprints that name runs and let finished steps be reused, pinned.

Computed on commit 77a116b (before the step executor): a change of any value here would make
every existing run directory and finished step look new, and redo them. The step table is the
one place the fingerprints are defined; these pin it.
"""

import importlib
import json

import pytest

from kerasvae import config as config_lib
from kerasvae.steps import common
from kerasvae.steps import configs
from kerasvae.steps import evaluate
from kerasvae.steps import export
from kerasvae.steps import train

data_ingest = importlib.import_module("kerasvae.data.ingest")

BASE = {
    "run": {"name": "tiny", "runs_dir": "runs"},
    "ingest": {"data": {"source": "dsprites", "dsprites": {"num_examples": 640, "seed": 1}},
               "split": {"eval_fraction": 0.2}, "num_shards": 2},
    "model": {"kind": "vae", "latent_dim": 2, "hidden_units": [32]},
    "train": {"epochs": 2, "batch_size": 32},
    "evaluate": {"iwae_samples": 10, "iwae_examples": 50},
    "export": {"base_dir": "saved_models", "model_name": "tiny"},
}
VARIANTS = {
    "base": {},
    "progress_off": {"train": {"progress": False, "keep_checkpoints": 1}},
    "bfloat16": {"train": {"precision": "mixed_bfloat16"}},
    "early_stopping": {"train": {"early_stopping_patience": 2}},
    "dci_off": {"evaluate": {"dci": False}},
    "change_thresholds": {"evaluate": {"change_thresholds": {"elbo": 5.0}}},
    "change_thresholds_dci_off": {"evaluate": {"change_thresholds": {"elbo": 5.0}, "dci": False}},
    "active_kl": {"evaluate": {"active_latent_kl": 0.5}},
    "serving_base_path": {"export": {"serving_base_path": "/models"}},
}


def config_of(variant):
  data = json.loads(json.dumps(BASE))
  for block, values in VARIANTS[variant].items():
    data[block] = {**data[block], **values}
  return config_lib.from_dict(configs.PipelineConfig, data)


EXAMPLES_META = {"fingerprint": "examples-fp"}
TRAIN_META = {"fingerprint": "train-fp",
              "digests": {train.MODEL_FILE: {"size": 3, "sha256": "ab"}}}
EVALUATE_META = {"fingerprint": "evaluate-fp"}

PINNED = {
    "base": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "evaluate_served": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "progress_off": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "evaluate_served": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "bfloat16": {
        "run_directory": "tiny-d7645748c5",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "d7ef9d02672e15b09fb79cf1c46d55454587f74bb5b66741de3dc51d9b49c149",
        "evaluate": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "evaluate_served": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "early_stopping": {
        "run_directory": "tiny-ebd1b6b280",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "265f96b6a4e59d4ac7d892ce6695dbed32fa033b7d1d797d6ae447bc9d630861",
        "evaluate": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "evaluate_served": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "dci_off": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "cd2ccff12af56c35c89b23b23d5d20b1e1156629295dc5ab3ca3f6924ca40720",
        "evaluate_served": "8d1ec72730dd04f46d5366512fec72a02fa2a4a99f421b33f628b8568d0af3d8",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "change_thresholds": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "ef6b38bd56d7e2de5e1ad678e2e0568c5be19ab687bd539f79583cbea0d4d6c1",
        "evaluate_served": "12df9e7a4beeeee6347d77b1391da4fdb8e1c3d6e72aaec2f2b57155ac7f7bfb",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "change_thresholds_dci_off": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "78d8d8cfbf6fcc85c2917064a535aeb58a63818a310f7f0db3f90b4c2fa75bba",
        "evaluate_served": "108a4d9f572dc533c62a1905e72e62159a2eae3be4ed0944c7c405d91e8af8c0",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "active_kl": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "ea58a8b41f6585e2a3ea263283c955154c5c3a3524a9f6039ecc1533027efd9c",
        "evaluate_served": "ea58a8b41f6585e2a3ea263283c955154c5c3a3524a9f6039ecc1533027efd9c",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
    "serving_base_path": {
        "run_directory": "tiny-cbd20582b7",
        "examples_directory": "7e20dd2b23ff",
        "ingest": "8cbb49b2eddc7ba4d9f1036691751127f38623c2bb7fef84b9d7d564b0925cbe",
        "train": "c6fd574eae9000588a985b60ab2721bd18bf8520ab5452ac15dfe9cd224cb688",
        "evaluate": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "evaluate_served": "d96a5fd978d54f621c02035bae6194e791dbdad5523040f07b550cd3cd18223d",
        "export": "f7620359d5bdb185ce8faae7139a505ee0bdf4299a74043ab1e604a8b09f97db",
    },
}


def fingerprints(config):
  return {
      "run_directory": common.run_directory(config).name,
      "examples_directory": common.examples_directory(config).name,
      "ingest": data_ingest._source_fingerprint(config.ingest, "content-hash"),  # pylint: disable=protected-access
      "train": train.train_fingerprint(config, EXAMPLES_META),
      "evaluate": evaluate.evaluate_fingerprint(config, TRAIN_META),
      "evaluate_served": evaluate.evaluate_fingerprint(config, TRAIN_META,
                                                       ("saved_models/tiny/3", 3)),
      "export": export.export_fingerprint(config, TRAIN_META, EVALUATE_META),
  }


@pytest.mark.parametrize("variant", sorted(PINNED))
def test_fingerprints_are_those_of_existing_runs(variant):
  assert fingerprints(config_of(variant)) == PINNED[variant]


def test_validate_fingerprints_are_those_of_existing_validations():
  from kerasvae.data.config import DataConfig  # pylint: disable=import-outside-toplevel
  from kerasvae.steps import table  # pylint: disable=import-outside-toplevel
  fingerprint = lambda data: table.VALIDATE.fingerprint.compute(data=data)  # noqa: E731
  assert fingerprint(DataConfig()) == (
      "63791bb10651c2dc51a6154a1ccbf97038c503e534c16cf5390748cb51dcafda")
  assert fingerprint(config_lib.from_dict(
      DataConfig, {"source": "npz", "npz": {"path": "new.npz"}})) == (
          "3bf802b6d486de7734c1a4428541807f47a427e94c72129446a987f55b232c76")
