"""One results schema: every trial of every study stores its metrics under the same names.

Studies written by older code versions stored some numbers under other names. Their trained
models are not kept with the committed `results.json`, so they cannot be re-evaluated; their
keys are migrated instead, by the recorded rules below, which `migrate_results` applies and
lists in the results' `schema.migrations`. Each rule copies a number under the name the
current code gives the *same measurement*; it never invents one.

Rules:
  `setting_and_seed`: a trial written before studies had seeds (no `setting`/`seed`) gets
    its setting from its name without a trailing " seed N" and its seed from `train.seed` in
    its overrides, else that N, else 0 (the default training seed then).
  `default_sampler_samples`: the ae-vs-vae analysis of the first seed scored each sampler
    under a prefix (`gaussian/…`, `uniform_box/…` for autoencoders, `prior/…` for the VAE),
    while the other seeds' samples were scored by `core.score_prior_samples` under the bare
    names. The bare names are `model.sample`'s samples: a VAE's prior, and for an
    autoencoder the Gaussian its train step's `finalize` fits to the training codes (the
    default `latent_sampler`), drawn with the study's seed as `[seed, 0]`, the seed the
    analysis passes too. So `prior/<m>` (VAE) and `gaussian/<m>` (autoencoders) are the same
    measurement as `<m>`: the first is copied to the second where it is missing. (On
    Fashion-MNIST the train step fitted that Gaussian to the first 10,000 of the 55,000
    training codes and the analysis to all of them: the same estimator on a subsample.)

Example:
  >>> results, applied = migrate_results(json.loads(path.read_text()))
"""

import re

SCHEMA_VERSION = 2

# The sample-quality numbers `core.score_images` writes (plus the analysis's distance to the
# nearest code), under their bare names.
SAMPLE_METRICS = ("frechet_distance", "precision", "recall", "classifier_confidence",
                  "class_entropy_bits", "grey_fraction")
# The sampler whose samples `model.sample` draws, by the prefix the ae-vs-vae analysis gives it:
# a VAE's prior; an autoencoder's Gaussian fitted to its training codes.
DEFAULT_SAMPLERS = ("prior", "gaussian")

RULES = {
    "setting_and_seed": "setting = name without ' seed N'; seed = overrides' train.seed, else "
                        "N, else 0",
    "default_sampler_samples": "<m> = prior/<m> (VAE) or gaussian/<m> (autoencoder) where <m> "
                               "is missing, m in " + ", ".join(SAMPLE_METRICS),
}

_SEED_SUFFIX = re.compile(r"^(.*) seed (\d+)$")


def migrate_trial(trial):
  """Applies the rules to one trial's JSON record in place; returns the names of those applied."""
  applied = []
  if "setting" not in trial or "seed" not in trial:
    match = _SEED_SUFFIX.match(trial["name"])
    overrides = trial.get("overrides") or {}
    trial.setdefault("setting", match.group(1) if match else trial["name"])
    seed = overrides.get("train.seed", int(match.group(2)) if match else 0)
    trial.setdefault("seed", int(seed))
    applied.append("setting_and_seed")
  if copy_default_sampler(trial.get("metrics") or {}):
    applied.append("default_sampler_samples")
  return applied


def copy_default_sampler(metrics):
  """Rule `default_sampler_samples` on one trial's metrics (in place): `<m>` from
  `prior/<m>` or `gaussian/<m>` where `<m>` is missing. Returns the keys it wrote.

  The study writes its new trials through it too, so a first seed analysed with prefixes and
  the other seeds scored under the bare names hold the same keys.
  """
  for sampler in DEFAULT_SAMPLERS:
    copied = [m for m in SAMPLE_METRICS if m not in metrics and f"{sampler}/{m}" in metrics]
    for m in copied:
      metrics[m] = metrics[f"{sampler}/{m}"]
    if copied:
      return copied  # a trial has one default sampler
  return []


def migrate_results(results):
  """Migrates a study's `results.json` content in place to the current schema.

  Returns:
    `(results, applied)`: the same dict, its `schema` entry recording the version and every
    migration ever applied (`{"rule", "description", "trials"}`), and the rules applied now.
  """
  schema = results.setdefault("schema", {"version": SCHEMA_VERSION, "migrations": []})
  applied_now = {}
  for trial in results.get("trials", []):
    for rule in migrate_trial(trial):
      applied_now.setdefault(rule, []).append(trial["name"])
  for rule, names in applied_now.items():
    schema["migrations"].append({"rule": rule, "description": RULES[rule], "trials": names})
  schema["version"] = SCHEMA_VERSION
  return results, sorted(applied_now)


class MissingSeedError(ValueError):
  """An average asked over the seeds of a setting when some of its seeds lack the metric."""


def check_all_seeds(trials, key, study=""):
  """Raises MissingSeedError when some but not all `trials` (one setting's seeds) hold `key`.

  The study aggregator calls it before it averages: a mean over fewer seeds than the setting
  has would be printed as if it covered all of them.
  """
  has = [t for t in trials if key in t.metrics and t.metrics[key] is not None]
  if has and len(has) < len(trials):
    missing = sorted(t.seed for t in trials if t not in has)
    setting = trials[0].setting or trials[0].name
    raise MissingSeedError(
        f"Expected metric {key!r} in every seed of setting {setting!r}"
        + (f" of study {study!r}" if study else "")
        + f" before averaging it. Received: missing in seeds {missing}, present in seeds "
        f"{sorted(t.seed for t in has)}; re-evaluate those trials or migrate their keys "
        "(kerasvae.studies.schema)")
