"""Networks, priors, likelihoods and the models of every kind (`kerasvae.kinds`)."""

from kerasvae import kinds as _kinds
from kerasvae.models.annealed_vae import AnnealedVAE
from kerasvae.models.autoencoders import Autoencoder
from kerasvae.models.autoencoders import LatentVariableModel
from kerasvae.models.autoencoders import NoisyAutoencoder
from kerasvae.models.autoencoders import VAE
from kerasvae.models.beta_tcvae import BetaTCVAE
from kerasvae.models.dip_vae import DIPVAEI
from kerasvae.models.dip_vae import DIPVAEII
from kerasvae.models.factor_vae import FactorVAE
from kerasvae.models.iwae import IWAE
from kerasvae.models.likelihoods import LIKELIHOODS
from kerasvae.models.likelihoods import BernoulliLikelihood
from kerasvae.models.likelihoods import ContinuousBernoulliLikelihood
from kerasvae.models.likelihoods import GaussianLikelihood
from kerasvae.models.likelihoods import Likelihood
from kerasvae.models.networks import make_decoder
from kerasvae.models.networks import make_encoder
from kerasvae.models.priors import PRIORS
from kerasvae.models.priors import GaussianMixturePrior
from kerasvae.models.priors import Prior
from kerasvae.models.priors import StandardGaussianPrior
from kerasvae.models.priors import VampPrior

# model.kind -> model class. Importing every kind's module registers its classes with Keras'
# serialization, so `keras.saving.load_model` finds them.
MODELS = {name: kind.model_class() for name, kind in _kinds.KINDS.items()}
