"""The model kinds: what `model.kind` names, the settings block only that kind reads, its class.

A pipeline config's `model` block holds the network every kind shares (`latent_dim`,
`architecture`, widths) and one block of settings named after the kind, as the data
config holds `source` and one block per source:

    model:
      kind: vae
      latent_dim: 10
      vae: {kl_weight: 4.0, prior: gaussian}

A block of another kind (`noisy_autoencoder:` beside `kind: vae`) is refused by name
(`ModelConfig.validate`). This module imports no TensorFlow (`kerasvae config` reads it and
stays fast): a kind names its model class as "module:Class", imported when a model is built.

Adding a kind: a model module with the class (its `from_settings` builds it from the
block), a settings dataclass and a `Kind` entry below, its tests and docs. Nothing in the
steps, the training loop, serving or the metrics changes: they read what the model class
declares (`LatentVariableModel`'s class attributes and hooks).
"""

import dataclasses
import importlib
from typing import Optional
from kerasvae.config import ConfigError
from kerasvae.config import MAX_UNITS
from kerasvae.config import field
from kerasvae.config import show


@dataclasses.dataclass
class LikelihoodPriorSettings:
  """The decoder's likelihood and the prior: the settings every kind with a posterior shares
  (its block starts with them)."""
  likelihood: str = field("bernoulli", choices=("bernoulli", "gaussian", "continuous_bernoulli"),
                          help="Decoder likelihood p(x|z).")
  gaussian_scale: float = field(0.1, range=(1e-6, None), help="Scale of the gaussian likelihood.")
  learn_scale: bool = field(False, help="Train the gaussian likelihood's scale.")
  prior: str = field("gaussian", choices=("gaussian", "gmm", "vamp"), help="The prior p(z).")
  num_components: int = field(10, range=(1, MAX_UNITS), help="Components of the gmm/vamp prior.")
  vamp_init_from_data: bool = field(False, help="Start VampPrior pseudo-inputs from train images.")

  def applies(self, name):
    """Whether the setting `name` changes this model (e.g. no scale for a Bernoulli decoder)."""
    used = {"gaussian_scale": self.likelihood == "gaussian",
            "learn_scale": self.likelihood == "gaussian",
            "num_components": self.prior in ("gmm", "vamp"),
            "vamp_init_from_data": self.prior == "vamp"}
    return used.get(name, True)

  def vae_settings(self):
    """The `VAESettings` of this likelihood and prior with a KL weight of 1 and no warm-up
    (`VAE.settings_arguments` reads it), for a kind that weighs its KL term its own way."""
    return VAESettings(**{f.name: getattr(self, f.name)
                          for f in dataclasses.fields(LikelihoodPriorSettings)})


@dataclasses.dataclass
class VAESettings(LikelihoodPriorSettings):
  """`model.vae`: the decoder's likelihood, the prior and the KL weight of a VAE."""
  kl_weight: float = field(1.0, range=(0.0, None), help="β: the weight of the KL term.")
  kl_warmup_epochs: float = field(0.0, range=(0.0, None),
                                  help="Epochs of linear KL warm-up from 0 to kl_weight.")


@dataclasses.dataclass
class FactorVAESettings(VAESettings):
  """`model.factor_vae`: a VAE's settings plus the total-correlation weight and discriminator
  of FactorVAE (Kim & Mnih 2018); the defaults are disentanglement_lib's."""
  gamma: float = field(10.0, range=(0.0, None),
                       help="γ: the weight of the discriminator's total-correlation estimate "
                       "(disentanglement_lib's study: 10, 20, 30, 40, 50, 100).")
  discriminator_units: int = field(1000, range=(1, MAX_UNITS),
                                   help="Width of each hidden layer of the discriminator.")
  discriminator_layers: int = field(6, range=(1, 64),
                                    help="Hidden layers of the discriminator.")
  discriminator_learning_rate: float = field(1e-4, range=(1e-12, None),
                                             help="Learning rate of the discriminator's Adam "
                                             "(β1 0.5, β2 0.9).")


@dataclasses.dataclass
class AnnealedVAESettings(LikelihoodPriorSettings):
  """`model.annealed_vae`: the capacity annealing of Burgess et al. 2018: the loss is the
  reconstruction plus gamma·|KL − C|, C rising linearly from 0 to max_capacity; the defaults are
  disentanglement_lib's."""
  gamma: float = field(1000.0, range=(0.0, None),
                       help="γ: the weight of |KL − C| (disentanglement_lib: 1000).")
  max_capacity: float = field(25.0, range=(0.0, None),
                              help="C_max in nats, where the capacity's ramp ends "
                              "(disentanglement_lib's study: 5, 10, 25, 50, 75, 100).")
  capacity_steps: Optional[int] = field(None, range=(0, None),
                                        help="Optimiser steps of the capacity's linear ramp "
                                        "from 0 to max_capacity; null: 100,000 "
                                        "(disentanglement_lib's) unless capacity_epochs is set.")
  capacity_epochs: Optional[float] = field(None, range=(0.0, None),
                                           help="The capacity's ramp in epochs, instead of "
                                           "capacity_steps.")

  DEFAULT_CAPACITY_STEPS = 100_000

  def validate(self):
    if self.capacity_steps is not None and self.capacity_epochs is not None:
      raise ConfigError(
          "capacity_epochs: expected the capacity's ramp in steps or in epochs, not both. "
          f"Received: capacity_steps={self.capacity_steps}, "
          f"capacity_epochs={self.capacity_epochs}; set one to null")

  def applies(self, name):
    if name == "capacity_steps":
      return self.capacity_epochs is None
    if name == "capacity_epochs":
      return self.capacity_epochs is not None
    return super().applies(name)

  def ramp_steps(self, steps_per_epoch=1):
    """The optimiser steps of the capacity's ramp."""
    if self.capacity_epochs is not None:
      return int(round(self.capacity_epochs * steps_per_epoch))
    if self.capacity_steps is not None:
      return self.capacity_steps
    return self.DEFAULT_CAPACITY_STEPS


@dataclasses.dataclass
class IWAESettings(LikelihoodPriorSettings):
  """`model.iwae`: the importance samples of the IWAE's training bound (Burda et al. 2016)."""
  num_samples: int = field(5, range=(1, 1000),
                           help="k: importance samples per example and step of the training "
                           "bound (the paper trains with 1, 5 and 50; the decoder runs on k "
                           "times the batch).")


@dataclasses.dataclass
class AutoencoderSettings:
  """`model.autoencoder`: the reconstruction loss of a deterministic autoencoder."""
  reconstruction_loss: str = field("bce", choices=("bce", "mse"),
                                   help="bce: binary cross-entropy; mse: squared error, summed "
                                   "over pixels.")

  def applies(self, name):  # pylint: disable=unused-argument
    return True


@dataclasses.dataclass
class NoisyAutoencoderSettings(AutoencoderSettings):
  """`model.noisy_autoencoder`: an autoencoder whose decoder sees the code plus noise."""
  noise_factor: float = field(0.05, range=(0.0, None),
                              help="The code noise's variance is noise_factor·R (R: the batch's "
                              "mean squared code norm).")
  noise_scale: str = field("total", choices=("total", "per_dimension"),
                           help="noise_factor·R is the noise's total variance (summed over the "
                           "latents) or the variance of every latent.")


@dataclasses.dataclass
class BetaTCVAESettings(VAESettings):
  """`model.beta_tcvae`: a VAE whose loss weighs the total correlation of q(z) by tc_weight."""
  tc_weight: float = field(6.0, range=(0.0, None),
                           help="β: the weight of the total correlation (disentanglement_lib's "
                           "study: 1, 2, 4, 6, 8, 10; 1 is the VAE).")
  estimator: str = field("mws", choices=("mws", "mss"),
                         help="The minibatch estimate of q(z): mws (minibatch-weighted "
                         "sampling, as disentanglement_lib) or mss (minibatch stratified "
                         "sampling, weighted by the training-split size).")

  def validate(self):
    if self.prior != "gaussian":
      raise ConfigError("prior: expected 'gaussian': the total correlation's decomposition of "
                        "the KL assumes the factorised prior N(0, I). Received: "
                        f"prior={self.prior!r}")


@dataclasses.dataclass
class DIPVAEISettings(VAESettings):
  """`model.dip_vae_i`: a VAE whose posterior means' covariance is pushed towards I."""
  lambda_od: float = field(10.0, range=(0.0, None),
                           help="λ_od: the weight of the covariance's squared off-diagonal "
                           "entries (disentanglement_lib's study: 1, 2, 5, 10, 20, 50).")
  lambda_d_factor: float = field(10.0, range=(0.0, None),
                                 help="λ_d / λ_od: the diagonal entries' squared distance from 1 "
                                 "weighs lambda_d_factor·λ_od (disentanglement_lib: 10 for "
                                 "DIP-VAE-I, 1 for DIP-VAE-II).")

  def validate(self):
    if self.prior != "gaussian":
      raise ConfigError("prior: expected 'gaussian': the DIP penalty matches the covariance of "
                        "q(z) to the identity, the covariance of N(0, I). Received: "
                        f"prior={self.prior!r}")


@dataclasses.dataclass
class DIPVAEIISettings(DIPVAEISettings):
  """`model.dip_vae_ii`: a VAE whose covariance of z under q(z) is pushed towards I."""
  lambda_d_factor: float = field(1.0, range=(0.0, None),
                                 help="λ_d / λ_od: the diagonal entries' squared distance from 1 "
                                 "weighs lambda_d_factor·λ_od (disentanglement_lib: 1 for "
                                 "DIP-VAE-II).")


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """What a model may need to know about its training when it is built (`from_settings`).

  Attributes:
    steps_per_epoch: optimiser steps per epoch (settings given in epochs become steps).
    num_train_examples: the size of the training split (e.g. for estimators that weight a
      minibatch by the dataset size), None when unknown.
    batch_size: the global batch size, None when unknown.
  """
  steps_per_epoch: int = 1
  num_train_examples: int | None = None
  batch_size: int | None = None


@dataclasses.dataclass(frozen=True)
class Kind:
  """One model kind.

  Attributes:
    name: the `model.kind` value, and the name of its settings block.
    settings: the dataclass of that block.
    model: "module:Class" of the model class (a `LatentVariableModel`).
    summary: one line for `kerasvae config --help`-style listings and docs.
    selection: what early stopping and the kept checkpoint maximise on the validation split,
      in words for the reports: the kind's own training objective
      (`LatentVariableModel.validation_objective`).
  """
  name: str
  settings: type
  model: str
  summary: str
  selection: str = "minus its training loss"

  def model_class(self):
    """The model class (imports TensorFlow)."""
    module, _, name = self.model.partition(":")
    return getattr(importlib.import_module(module), name)


KINDS = {kind.name: kind for kind in (
    Kind("vae", VAESettings, "kerasvae.models.autoencoders:VAE",
         "variational autoencoder (β-VAE with kl_weight ≠ 1), Gaussian/mixture/VampPrior prior",
         "−(reconstruction + β·KL), the β-weighted bound it trains (the ELBO at β = 1)"),
    Kind("beta_tcvae", BetaTCVAESettings, "kerasvae.models.beta_tcvae:BetaTCVAE",
         "β-TCVAE: the VAE loss plus (tc_weight − 1) times the total correlation of q(z), "
         "estimated on the minibatch", "minus its training loss, the β-TCVAE objective"),
    Kind("factor_vae", FactorVAESettings, "kerasvae.models.factor_vae:FactorVAE",
         "VAE plus γ·total correlation, estimated by a discriminator of permuted codes",
         "−(reconstruction + β·KL + γ·TC), its training loss"),
    Kind("dip_vae_i", DIPVAEISettings, "kerasvae.models.dip_vae:DIPVAEI",
         "DIP-VAE-I: the VAE loss plus a penalty on the distance of the posterior means' "
         "covariance from I", "minus its training loss (the VAE loss plus the DIP penalty)"),
    Kind("dip_vae_ii", DIPVAEIISettings, "kerasvae.models.dip_vae:DIPVAEII",
         "DIP-VAE-II: the VAE loss plus a penalty on the distance of the covariance of z under "
         "q(z) from I", "minus its training loss (the VAE loss plus the DIP penalty)"),
    Kind("annealed_vae", AnnealedVAESettings, "kerasvae.models.annealed_vae:AnnealedVAE",
         "reconstruction plus γ·|KL − C|, the capacity C rising linearly to max_capacity",
         "−(reconstruction + γ·|KL − max_capacity|), its training loss at the full capacity"),
    Kind("iwae", IWAESettings, "kerasvae.models.iwae:IWAE",
         "VAE trained on the k-sample importance-weighted bound instead of the ELBO",
         "the k-sample importance-weighted bound it trains"),
    Kind("autoencoder", AutoencoderSettings, "kerasvae.models.autoencoders:Autoencoder",
         "deterministic autoencoder; generates from a Gaussian fitted to its training codes",
         "−reconstruction, its training loss"),
    Kind("noisy_autoencoder", NoisyAutoencoderSettings,
         "kerasvae.models.autoencoders:NoisyAutoencoder",
         "autoencoder whose decoder sees the code plus Gaussian noise while training",
         "−reconstruction of the noisy code, its training loss (the noise from a fixed seed)"),
)}

# Keys of the flat model block before the kinds had blocks, and where each lives now.
MOVED_KEYS = {
    **{name: "vae" for name in ("likelihood", "gaussian_scale", "learn_scale", "prior",
                                "num_components", "vamp_init_from_data", "kl_weight",
                                "kl_warmup_epochs")},
    "reconstruction_loss": "autoencoder or noisy_autoencoder",
    "noise_factor": "noisy_autoencoder", "noise_scale": "noisy_autoencoder",
}


def get(name):
  """The `Kind` called `name`; a ConfigError names the valid kinds."""
  if name not in KINDS:
    raise ConfigError(f"kind: expected one of {list(KINDS)}. Received: kind={name!r}")
  return KINDS[name]


def check_blocks(model_config):
  """Fills the chosen kind's block with its defaults and refuses the block of another kind.

  Raises:
    ConfigError: "<kind>: ..." naming the stray block and the config's kind.
  """
  for name, kind in KINDS.items():
    block = getattr(model_config, name)
    if name == model_config.kind:
      if block is None:
        setattr(model_config, name, kind.settings())
    elif block is not None:
      raise ConfigError(
          f"{name}: expected no settings of model.kind={name} in a model of kind "
          f"{model_config.kind!r} (they would be ignored). Received: "
          f"{name}={show(dataclasses.asdict(block))}; remove the block (from the command line: "
          f"--set model.{name}=null), or set model.kind: {name}")


def settings_field(kind):
  """The `ModelConfig` field of one kind's block: None unless that kind is chosen."""
  return field(None, help=f"Settings of model.kind={kind.name}: {kind.summary}.", omit_none=True)

