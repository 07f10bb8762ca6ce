"""Networks, priors, likelihoods and the autoencoder models."""

from kerasvae.models.autoencoders import MODELS
from kerasvae.models.autoencoders import Autoencoder
from kerasvae.models.autoencoders import LatentVariableModel
from kerasvae.models.autoencoders import NoisyAutoencoder
from kerasvae.models.autoencoders import VAE
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
