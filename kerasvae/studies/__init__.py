"""Studies: the field's teaching experiments, each one command (`kerasvae study NAME`).

A study runs several trials through the normal pipeline (ingest → train →
evaluate, one run directory each, all sharing one Examples artifact), adds its
own measurements and figures, and writes in its directory:

  report.md       tables, embedded figures and conclusions drawn from the numbers
  results.json    every trial's config overrides, timings and metrics
  figures/*.png   the report's figures
  runs/           the trials' pipeline runs: `tensorboard --logdir runs` (HParams tab)
  classifier.keras  the sample-quality classifier (MNIST studies), trained once per study

Example:
  >>> from kerasvae import studies
  >>> studies.run_study("latent-dim", quick=True, output="/tmp/latent-dim")
"""

import dataclasses
import time
from pathlib import Path
from typing import Callable

from kerasvae import artifacts
from kerasvae import config as config_lib
from kerasvae import progress
from kerasvae.config import ConfigError
from kerasvae.metrics import registry as metric_registry


@dataclasses.dataclass(frozen=True)
class Study:
  """A registered study: its name, what it asks, and the function that analyses its trials."""
  name: str
  question: str
  analyse: Callable  # (StudyContext, [Trial]) -> [markdown blocks]
  check: Callable = lambda trials: None  # ([Trial]) -> None; ConfigError for a config it cannot use
  # The analysis compares seeds itself; otherwise it reads the first seed's trials and the
  # report's across-seed table covers every seed.
  analyses_seeds: bool = False
  # The numbers the across-seed chart draws: (metric key, axis label).
  chart_metrics: tuple = ()
  # What its charts call a setting ("method"); default: the keys its trials override.
  setting_name: str = ""
  # Each setting continues the previous setting's training of the same seed (more epochs of
  # one model: `budget`), from its kept checkpoint (`core.continue_training`).
  continues: bool = False
  # Which pairs of settings its report tests (`report.comparison_pairs`): every pair, each
  # against the first setting (the baseline), or each against the one before it (a sweep).
  comparisons: str = "all_pairs"
  # A study whose trials do not share one Examples artifact runs them itself:
  # (StudyPlan, force, report_only) -> the path of report.md. None: the shared trial loop.
  runner: Callable = None
  # A callable giving the dataclass of its `study:` block (a subclass of core.StudySettings,
  # imported when used); None: StudySettings.
  settings_class: type = None


def _titled(key):
  """A chart's `(metric, title)` of an evaluate metric, titled as the registry titles it."""
  return (key, metric_registry.title(key))


_LIKELIHOOD = ("iwae_log_likelihood", "IWAE log p(x), nats")
_FD = ("frechet_distance", "sample Fréchet distance")
_INFORMATION = ("mutual_information_xz", "I(x; z), nats")


def _mnist(name):
  def analyse(context, trials):
    from kerasvae.studies import mnist  # pylint: disable=import-outside-toplevel
    return getattr(mnist, f"analyse_{name}")(context, trials)
  return analyse


def _disentanglement(context, trials):
  from kerasvae.studies import disentanglement  # pylint: disable=import-outside-toplevel
  return disentanglement.analyse_disentanglement(context, trials)


def _methods(context, trials):
  from kerasvae.studies import methods  # pylint: disable=import-outside-toplevel
  return methods.analyse_methods(context, trials)


def _precision(context, trials):
  from kerasvae.studies import precision  # pylint: disable=import-outside-toplevel
  return precision.analyse_precision(context, trials)


def _budget(context, trials):
  from kerasvae.studies import budget  # pylint: disable=import-outside-toplevel
  return budget.analyse_budget(context, trials)


def _budget_check(trials):
  from kerasvae.studies import budget  # pylint: disable=import-outside-toplevel
  _needs_disentanglement_scores(trials)
  budget.check_budget(trials)


def _ood(plan, force, report_only):
  from kerasvae.studies import ood  # pylint: disable=import-outside-toplevel
  return ood.run(plan, force=force, report_only=report_only)


def _ood_settings():
  from kerasvae.studies import ood  # pylint: disable=import-outside-toplevel
  return ood.OODSettings


def _needs_disentanglement_scores(trials):
  off = [t.name for t in trials if not t.config.evaluate.disentanglement]
  if off:
    raise ConfigError("The study compares its models' disentanglement scores. "
                      "Expected evaluate.disentanglement=true in every trial. Received: false in "
                      + ", ".join(repr(n) for n in off)
                      + " (to time the training alone, run `kerasvae train`)")


STUDIES = {
    "latent-dim": Study(
        "latent-dim", "How do the diversity and sharpness of a VAE's samples, its likelihood "
        "and the number of latent dimensions it really uses change with the latent size?",
        _mnist("latent_dim"),
        chart_metrics=(_LIKELIHOOD, _FD, _titled("active_units"), _INFORMATION),
        comparisons="neighbours"),
    "beta": Study(
        "beta", "What does the weight β of the KL term do to a 2-D VAE's code, its "
        "reconstructions and its samples?", _mnist("beta"),
        chart_metrics=(("elbo", "ELBO, nats"), ("kl", "KL, nats"), _INFORMATION, _FD),
        comparisons="neighbours"),
    "ae-vs-vae": Study(
        "ae-vs-vae", "Do random latent points of an autoencoder decode to data or to noise, "
        "does Gaussian code noise of variance 0.05·R during training (read as the total or as "
        "every latent's variance) make them decode to data, and how does a VAE differ?",
        _mnist("ae_vs_vae"),
        chart_metrics=(("reconstruction", "reconstruction, nats"), _FD,
                       ("precision", "sample precision"), ("recall", "sample recall")),
        setting_name="model", comparisons="against_first"),
    "priors": Study(
        "priors", "Does a learned prior (Gaussian mixture, VampPrior) give a better "
        "log-likelihood than the standard Gaussian with the same network and budget?",
        _mnist("priors"),
        chart_metrics=(_LIKELIHOOD, ("kl", "KL, nats"),
                       ("marginal_kl", "KL(q(z) ‖ p(z)), nats"), _FD),
        comparisons="against_first"),
    "disentanglement": Study(
        "disentanglement", "Does a larger β give a more disentangled code on dSprites, as the "
        "β-VAE paper reports, and at what cost?", _disentanglement,
        check=_needs_disentanglement_scores, analyses_seeds=True,
        chart_metrics=(_titled("beta_vae_score"), _titled("factor_vae_score"),
                       _titled("mig"), _titled("active_units")),
        comparisons="neighbours"),
    # Its own chart: a box plot per metric and method (`methods.analyse_methods`).
    "methods": Study(
        "methods", "Do β-VAE, β-TCVAE, FactorVAE, DIP-VAE-I, DIP-VAE-II and AnnealedVAE differ "
        "in how disentangled a code they learn on dSprites, by more than their training seeds "
        "do, and at what cost in reconstruction?", _methods,
        check=_needs_disentanglement_scores, analyses_seeds=True, setting_name="method"),
    # One training per seed scored at growing budgets: each setting continues the last.
    "budget": Study(
        "budget", "How many training images does the disentanglement study's β-VAE need "
        "before it encodes each of dSprites' factors, and where do its disentanglement scores "
        "and their spread over seeds settle?", _budget, check=_budget_check,
        analyses_seeds=True, continues=True, setting_name="budget", comparisons="neighbours",
        chart_metrics=(_titled("beta_vae_score"), _titled("factor_vae_score"),
                       _titled("mig"), ("reconstruction", "reconstruction, nats"))),
    "precision": Study(
        "precision", "Does computing a VAE's networks in bfloat16 (train.precision: "
        "mixed_bfloat16) change what it learns, by more than its training seed does, and how "
        "much faster does it train?", _precision, analyses_seeds=True,
        chart_metrics=(("elbo", "test ELBO, nats"), ("iwae_log_likelihood", "IWAE log p(x), nats"),
                       ("kl", "KL, nats"), ("train_images_per_second", "training images/s")),
        setting_name="precision", comparisons="against_first"),
    # Its own loop and report (`ood.run`): its trials train on two data sets.
    "ood": Study(
        "ood", "Does a VAE's log p(x) tell its own test images from another data set's, noise, "
        "constant, flipped and inverted images, and do the corrected scores of the literature "
        "(input complexity, likelihood ratio) do better?", analyse=None, runner=_ood,
        settings_class=_ood_settings),
}


def run_study(name, config=None, overrides=(), quick=False, output=None, force=False,
              report_only=False):
  """Runs every trial of a study and writes its report.

  Trials that already finished (same config) are reused, so an interrupted
  study resumes where it stopped when the same command is run again.

  Args:
    name: a key of `STUDIES` (`latent-dim`, `beta`, `ae-vs-vae`, `priors`,
      `disentanglement`, `methods`, `precision`).
    config: a study YAML; default the bundled `kerasvae/configs/studies/<name>.yaml`.
    overrides: `key=value` items applied to every trial's pipeline config
      (e.g. `train.epochs=5`) or to the study settings (`study.num_samples=500`).
    quick: the tiny version (the `quick:` block of the YAML) the tests run.
    output: the study directory; default `studies/<name>`, or `studies/<config's stem>`
      with `config` (`-quick` appended with `quick`).
    force: redo every trial's steps (ingest, train, evaluate) and the study's
      classifier even when finished ones with the same config exist.
    report_only: train nothing: write the report from the trials that have
      finished (say, while a long study still runs in another process); it names
      the trials still pending.

  Returns:
    The path of `report.md`.

  Raises:
    ConfigError: for an unknown study name or an invalid study config.
  """
  if force and report_only:
    raise ConfigError("Expected at most one of --force and --report-only. Received: both")
  plan = plan_study(name, config, overrides, quick, output)
  output = plan.output
  if output.exists() and not output.is_dir():
    raise ConfigError(f"--output: expected a directory for the study. Received: a file at {output}")
  with artifacts.remove_empty_on_failure(output):
    output.mkdir(parents=True, exist_ok=True)
    if plan.study.runner is not None:
      return plan.study.runner(plan, force, report_only)
    return _run_trials_and_report(plan, force, report_only)


@dataclasses.dataclass
class StudyPlan:
  """A study as its config defines it, before anything runs: what `kerasvae study` trains,
  and what `kerasvae pipeline compile --study` compiles into a Kubeflow sweep."""
  study: Study
  name: str
  path: Path  # the study YAML
  output: Path  # the study directory
  title: str
  description: str
  settings: object  # core.StudySettings
  trials: list  # [core.Trial], each with its PipelineConfig
  overrides: tuple
  quick: bool


def plan_study(name, config=None, overrides=(), quick=False, output=None):
  """Loads a study's config into its trials: the one loader of `kerasvae study` and the sweep.

  Args are `run_study`'s. Returns a `StudyPlan`; raises ConfigError for an unknown study or
  an invalid config, before anything runs.
  """
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  match, suggestion = config_lib.match_name(name, STUDIES)
  if match is None:
    raise ConfigError(f"Expected a study name among {sorted(STUDIES)}. "
                      f"Received: name={name!r}.{suggestion}")
  name, study = match, STUDIES[match]
  path = core.resolve_study_config_path(name, config)
  # One folder per study config: `--config disentanglement-full-mlp` never mixes its trials and
  # report with the default config's.
  stem = name if not config else Path(path).stem
  output = Path(output) if output else Path("studies") / (f"{stem}-quick" if quick else stem)
  title, description, settings, trials = core.load_study_config(
      path, overrides=overrides, quick=quick, output=output,
      settings_class=study.settings_class() if study.settings_class else None)
  study.check(trials)
  return StudyPlan(study, name, Path(path), output, title, description, settings, trials,
                   tuple(overrides), quick)


def _run_trials_and_report(plan, force, report_only=False):
  """The body of `run_study` once its config is valid: trials, analysis, report."""
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  from kerasvae.steps.common import StepError  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  name, output, settings, trials = plan.name, plan.output, plan.settings, plan.trials
  pending = []
  if report_only:
    pending = [t for t in trials if not core.trial_finished(t)]
    trials = [t for t in trials if t not in pending]
    if not trials:
      raise StepError(f"No trial of the study in {output} has finished yet: nothing to report. "
                      "Run it without --report-only to train its trials.")
    for trial in pending:
      print(f"study: trial {trial.name} has not finished: left out of the report", flush=True)
  context = core.StudyContext(name=name, output=output, settings=settings, quick=plan.quick,
                              base=trials[0].config, force=force)
  run_times = []  # wall seconds of the trials this invocation trained (not reused)
  last_by_seed = {}  # seed -> its latest trial (`Study.continues`)
  for i, trial in enumerate(trials):
    elapsed = time.time() - t0
    left = sum(run_times) / len(run_times) * (len(trials) - i) if run_times else None
    eta = f", about {progress.format_seconds(left)} left" if run_times else ""
    started = time.time()
    if plan.study.continues and trial.seed in last_by_seed:
      core.continue_training(last_by_seed[trial.seed], trial)
    last_by_seed[trial.seed] = trial
    examples = core.run_trial(trial, f"study: trial {i + 1}/{len(trials)} {trial.name} "
                                     f"({progress.format_seconds(elapsed)} elapsed{eta})",
                              force=force, force_ingest=force and i == 0)
    seconds = time.time() - started
    if seconds > 0.5 * (trial.train_seconds + trial.evaluate_seconds):  # not a reused trial
      run_times.append(seconds)
    if context.examples_dir is not None and examples != context.examples_dir:
      raise ConfigError(f"Expected every trial of a study to share one ingest config. Received: "
                        f"trial {trial.name!r} reads {examples}, the first {context.examples_dir}")
    context.examples_dir = examples
  return write_report(plan, context, trials, t0, pending)


def write_report(plan, context, trials, t0, pending=(), sweep=False):
  """Analyses the finished `trials` and writes `report.md`, `results.json` and the figures.

  Args:
    plan: the `StudyPlan`.
    context: its `StudyContext`, with `examples_dir` set.
    trials: the finished trials, their run directories and metrics filled.
    t0: when this invocation started (`time.time()`), for the wall-clock line.
    pending: trials left out (`--report-only`).
    sweep: the trials ran as a Kubeflow sweep, each in its own tasks (the budget says so).

  Returns:
    The path of `report.md`.
  """
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  from kerasvae.studies import report  # pylint: disable=import-outside-toplevel
  study, name, output, path = plan.study, plan.name, plan.output, plan.path
  settings, overrides, quick, title = plan.settings, plan.overrides, plan.quick, plan.title
  context.sweep = sweep
  if settings.sample_quality:
    print("study: sample-quality classifier")
    context.classifier = core.study_classifier(context)
  print(f"study: analysing {len(trials)} trials")
  for trial in trials:
    core.add_elbo_surgery(context, trial)
  first_seed = [t for t in trials if t.seed == settings.seeds[0]] or trials
  analysed = trials if study.analyses_seeds else first_seed
  if settings.sample_quality:  # the other seeds' samples: the across-seed table, the findings
    for trial in trials:
      if trial not in analysed and "frechet_distance" not in trial.metrics:
        core.score_prior_samples(context, trial)
  context.trials = list(trials)
  body = study.analyse(context, analysed)
  from kerasvae.studies import schema  # pylint: disable=import-outside-toplevel
  for trial in trials:  # the analysis's own names for `model.sample`'s samples: one schema
    schema.copy_default_sampler(trial.metrics)
  from kerasvae.steps import train as train_step  # pylint: disable=import-outside-toplevel
  selection = (train_step.SELECTION if trials[0].config.train.early_stopping_patience
               else FIXED_BUDGET)
  across = across_seeds(study, context, trials, title, settings.seeds,
                        detail=analysed is not trials, selection=selection)
  body = across + (report.without_findings(body) if quick else body)
  wall_clock = time.time() - t0
  counts = report.split_counts(context.examples_dir)
  intro = [
      f"# {title}",
      f"*Question.* {study.question}",
      plan.description.strip(),
      report.data_paragraph(trials[0].config, counts),
      f"**Model.** {report.model_sentence(trials[0].config, capital=True)}, "
      f"{trials[0].config.model.latent_dim} latent dimensions unless a trial says otherwise; "
      "trials differ only in: "
      + "; ".join(f"**{t.name}** (`" + ", ".join(f"{k}={v}" for k, v in t.overrides.items())
                  + "`)" for t in trials) + ".",
      report.budget_section(trials, wall_clock, quick, sweep=sweep),
      report.tensorboard_section(context, sweep=sweep),
      _pending_note(pending, len(trials)),
      f"*Reproduce:* `kerasvae study {name}" + _config_flag(name, path)
      + (" --quick" if quick else "") + "".join(f" --set {o}" for o in overrides) + "`",
  ]
  text = "\n\n".join(block for block in intro + body if block) + "\n"
  artifacts.write_json(output / "results.json", {
      "study": name, "title": title, "quick": quick, "config": str(path),
      "overrides": list(overrides), "wall_clock_seconds": wall_clock, "sweep": sweep,
      "split_counts": counts, "examples": str(context.examples_dir),
      "figures": [{"caption": c, "path": p} for c, p in context.figures],
      "trials": [t.to_json() for t in trials], "pending": [t.name for t in pending],
      "selection": selection,
      "schema": {"version": schema.SCHEMA_VERSION, "migrations": []}})
  report_path = output / "report.md"
  artifacts.write_text(report_path, text)
  return report_path


FIXED_BUDGET = "fixed budget"  # results.json's `selection` of a study without early stopping


def across_seeds(study, context, trials, title, seeds, detail=False, draw=True,
                 selection=None):
  """The report's "Across seeds" section (and the heading of the first seed's detail) as
  markdown blocks: a pure function of the trials' metrics, so `kerasvae study render-docs`
  rewrites it from `results.json` alone.

  Args:
    study: the `Study`.
    context: a `StudyContext` (its `output` holds the figures).
    trials: every finished trial.
    title: the study's title.
    seeds: the seeds its config trains (`study.seeds`); those without a trial are pending.
    detail: the sections after it read the first seed only.
    draw: draw the charts (False: only say which the section shows).
    selection: what the trials were selected on (results.json's `selection`: the train
      step's `SELECTION` or `FIXED_BUDGET`); None: early-stopped trials of the rule before it
      was recorded (the validation ELBO), which it says.
  """
  from kerasvae.studies import report  # pylint: disable=import-outside-toplevel
  across = (report.seed_summary(trials, report.study_seed_columns(trials), study=context.name,
                                plan=study.comparisons, compared=compared_metrics(study, trials))
            + _charts(study, context, trials, title, draw))
  if not across:
    return []
  present = sorted({t.seed for t in trials})
  pending = [s for s in seeds if s not in present]
  blocks = ["## Across seeds"]
  if pending:
    blocks.append(f"**Seeds pending.** The config trains {report.seed_phrase(seeds)}; "
                  f"{report.seed_phrase(pending)} {'has' if len(pending) == 1 else 'have'} "
                  f"not been trained yet, so every number here is over "
                  f"{report.seed_phrase(present)} only.")
  if selection is None:
    blocks.append(report.OLD_SELECTION)
  elif selection == FIXED_BUDGET:
    blocks.append(report.FIXED_BUDGET)
  blocks += across
  if report.score_keys(trials):
    blocks.append(report.RANKING)
  if detail and len(present) > 1:
    blocks += [f"## Seed {present[0]} in detail",
               f"The tables, findings and figures below read seed {present[0]} alone, as the "
               "analysis wrote them when it trained; a trend they describe is one seed's. "
               "Which differences hold over the seeds is decided by the tests above, not by "
               "these sections."]
  return blocks


def compared_metrics(study, trials):
  """The metric keys a study's report tests between settings: its chart's (its primary
  numbers), or every column of its table when it declares none; a disentanglement score in
  the form the report ranks by (`report.ranked_key`: on the active latents where measured)."""
  from kerasvae.studies import report  # pylint: disable=import-outside-toplevel
  keys = ([key for key, _ in study.chart_metrics]
          or [c[0] for c in report.study_seed_columns(trials)])
  return list(dict.fromkeys(report.ranked_key(key, trials) for key in keys)) or None


def _charts(study, context, trials, title, draw=True):
  """The across-seed chart and the rate–distortion chart, as report blocks."""
  from kerasvae.studies import figures  # pylint: disable=import-outside-toplevel
  from kerasvae.studies import report  # pylint: disable=import-outside-toplevel
  groups = report.by_setting(trials)
  varied = (study.setting_name
            or ", ".join(dict.fromkeys(k for t in trials for k in t.overrides)) or "setting")
  blocks = []
  chart = [(report.ranked_key(key, trials), label
            + (", active latents" if report.ranked_key(key, trials) != key else ""))
           for key, label in study.chart_metrics]
  path = figures.seed_metrics_figure(groups, chart,
                                     context.figure_path("across_seeds"),
                                     f"{title.removeprefix('Study: ')}", x_label=varied,
                                     draw=draw)
  if path:
    blocks.append(report.figure(context, "Each setting's training seeds (dots) and their mean ± "
                                "standard deviation (squares with bars), on the test split.",
                                path))
  path = figures.rate_distortion_figure(groups, context.figure_path("rate_distortion"),
                                        "Rate and distortion on the test split", varied,
                                        draw=draw)
  if path:
    blocks.append(report.figure(
        context, "Rate–distortion: the KL term (rate) against the reconstruction term "
        "(distortion) of each trial, nats per example; their sum is the negative ELBO, so "
        "the dotted lines (slope −1 in nats) join points of equal ELBO, labelled.", path))
  return blocks


def _config_flag(name, path):
  """` --config <it>` unless `path` is the study's default YAML (a bundled one by its name)."""
  from kerasvae.studies import core  # pylint: disable=import-outside-toplevel
  path = Path(path)
  if path.parent.resolve() == core.STUDY_CONFIG_DIR.resolve():
    return "" if path.stem == name else f" --config {path.stem}"
  return f" --config {path}"


def _pending_note(pending, num_finished):
  if not pending:
    return ""
  return (f"**Pending.** This report covers the {num_finished} trials that had finished "
          f"(`--report-only`); {len(pending)} more had not and are left out: "
          + ", ".join(f"**{t.name}**" for t in pending) + ". The same command without "
          "`--report-only` trains them and writes the whole report.")
