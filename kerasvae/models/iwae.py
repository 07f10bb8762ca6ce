"""IWAE: a VAE trained on the importance-weighted bound instead of the ELBO [1].

    loss = −log (1/k) Σ_i w_i,   w_i = p(x|z_i) p(z_i) / q(z_i|x),   z_1 … z_k ~ q(z|x),

a lower bound on log p(x) whose expectation rises with k towards log p(x) (k = 1 is the
one-sample ELBO with the KL estimated at z_1, log q(z_1|x) − log p(z_1)). Its gradient is
Σ_i w̃_i ∇ log w_i with the normalised weights w̃_i = w_i / Σ_j w_j: a draw that explains x badly
gets little weight, so a posterior wider than the true one costs less, and Burda et al. found
IWAEs to use more active latents and reach higher log-likelihoods than VAEs.

The log weights are `VAE.importance_log_weights`', the ones the evaluation estimator
(`kerasvae.metrics.iwae`) averages; here each example has k draws of its own (the estimator
shares its K draws across images, for a number that depends on the image alone), and k is small
(5; [1] trains with k ∈ {1, 5, 50}) where the estimator's K is thousands.

`loss_terms` also returns `iwae_bound` (−loss) and, for the training loop's logs, the VAE's
one-sample terms at the first draw z_1 (`reconstruction`, `kl`, `elbo`), the same z_1 a VAE's
`elbo_terms` draws with that seed. The reported ELBO is the VAE's, so an IWAE compares with a VAE
on it and on the IWAE bound of the evaluate step.

References:
  [1]: Burda, Grosse & Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from kerasvae.models import autoencoders
from kerasvae.models import distributions


@keras.saving.register_keras_serializable(package="kerasvae")
class IWAE(autoencoders.VAE):
  """A VAE whose training loss is the negative k-sample importance-weighted bound [1].

  Args:
    num_samples: k ≥ 1, the importance samples of every example at every step (the decoder
      runs on k times the batch).
    Other arguments: see `VAE`, except `kl_weight` and `kl_warmup_steps`: the bound has no KL
      weight.

  Example:
    >>> model = IWAE((28, 28, 1), latent_dim=50, num_samples=5)
    >>> terms = model.loss_terms(images, training=True)
    >>> terms["iwae_bound"]  # [B], ≥ terms["elbo"] on average
  """

  def __init__(self, input_shape, latent_dim, num_samples=5, **kwargs):
    for name in ("kl_weight", "kl_warmup_steps"):
      if name in kwargs:
        raise ValueError(f"Expected no {name}: the IWAE bound has no KL weight. "
                         f"Received: {name}={kwargs[name]!r}")
    if (not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool)
        or num_samples < 1):
      raise ValueError("Expected num_samples to be an integer >= 1. "
                       f"Received: num_samples={num_samples!r}")
    super().__init__(input_shape, latent_dim, **kwargs)
    self.num_samples = int(num_samples)

  @staticmethod
  def settings_arguments(settings, steps_per_epoch=1):
    """The constructor arguments of a `kinds.IWAESettings` block."""
    vae = autoencoders.VAE.settings_arguments(settings.vae_settings(), steps_per_epoch)
    return dict(prior=vae["prior"], likelihood=vae["likelihood"],
                num_samples=settings.num_samples)

  def scheduled_values(self, step):
    del step
    return {}

  def loss_terms(self, x, training=False, step=None, seed=None):
    """loss = −iwae_bound per example, with the one-sample terms at z_1; `seed` (an integer or
    a [2] tensor) fixes the k draws, None draws fresh ones."""
    del step
    x = self.as_images(x)
    mean, log_var = self.posterior_params(x, training=training)  # [B, D] x2
    shape = tf.concat([[self.num_samples], tf.shape(mean)], 0)  # [k, B, D]
    seed = distributions.stateless_seed(seed)
    eps = (tf.random.normal(shape) if seed is None
           else tf.random.stateless_normal(shape, seed=seed))  # [k, B, D]: each example its own
    log_w = self.importance_log_weights(x, mean, log_var, eps)  # [k, B]
    bound = tf.reduce_logsumexp(log_w, axis=0) - math.log(self.num_samples)  # [B]
    # The VAE's one-sample terms at z_1, logged beside the loss (no gradient is taken of them).
    z_1 = mean + tf.exp(0.5 * log_var) * eps[0]  # [B, D]
    reconstruction = self.likelihood.negative_log_likelihood(x, self.decode(z_1,
                                                                            training=training))
    kl = self.prior.kl(mean, log_var, z_1, encoder=self.posterior_params)  # [B]
    return {"loss": -bound, "iwae_bound": bound, "reconstruction": reconstruction, "kl": kl,
            "elbo": -(reconstruction + kl), "mean": mean, "log_var": log_var}

  def get_config(self):
    config = super().get_config()
    del config["kl_weight"], config["kl_warmup_steps"]
    config.update(num_samples=self.num_samples)
    return config
