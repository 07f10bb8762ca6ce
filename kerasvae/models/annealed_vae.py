"""AnnealedVAE: capacity annealing, the KL term held near a target C that rises during
training [1].

    loss = −log p(x|z) + γ·|KL̄ − C(step)|,
    C(step) = max_capacity · min(1, step / capacity_steps),

with KL̄ the batch's mean KL(q(z|x) ‖ p(z)) and z ~ q(z|x) as in the VAE. The KL bounds the
information the code carries about the image, so C is a budget in nats: started near 0, the code
first encodes what buys the most reconstruction, and as C grows more factors enter one after
another, which Burgess et al. found to keep the disentangling of a large β while
reconstructing better than a β-VAE. A large γ keeps the KL near C whichever way it strays.

As disentanglement_lib [2]: the penalty is on the batch's mean KL, γ·|KL̄ − C|, not the mean of
every image's |KL_i − C| (C budgets the average information; an image may take more or less of
it); γ = 1000, max_capacity ∈ {5, 10, 25, 50, 75, 100} nats in its study, a ramp of 100,000
steps. Under several replicas KL̄ is the mean over each replica's share of the batch.

`loss_terms` gives every example of the batch the same penalty as its `weighted_kl`, so that
loss = reconstruction + weighted_kl as for the VAE; the training loop logs C every epoch
(`scheduled_values`: `capacity`). The reported ELBO is the VAE's (KL weight 1).

References:
  [1]: Burgess et al. Understanding disentangling in β-VAE. NeurIPS 2017 Workshop on Learning
       Disentangled Representations, arXiv:1804.03599 (2018), Eq. 8.
  [2]: Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
       Disentangled Representations. ICML 2019 (disentanglement_lib,
       methods/unsupervised/vae.py, config/unsupervised_study_v1).
"""

import keras
import numpy as np
import tensorflow as tf

from kerasvae.models import autoencoders


@keras.saving.register_keras_serializable(package="kerasvae")
class AnnealedVAE(autoencoders.VAE):
  """A VAE whose KL is pulled towards a linearly rising capacity C [1].

  Args:
    gamma: γ ≥ 0, the weight of |KL̄ − C| (1000 in [2]).
    max_capacity: C_max in nats, where the ramp ends.
    capacity_steps: optimiser steps of the ramp from 0 to max_capacity (0: C = max_capacity
      from the start).
    Other arguments: see `VAE`, except `kl_weight` and `kl_warmup_steps`: γ and the capacity
      take their place.

  Example:
    >>> model = AnnealedVAE((64, 64, 1), 10, gamma=1000.0, max_capacity=25.0,
    ...                     capacity_steps=100_000)
    >>> float(model.capacity_at(50_000))
    12.5
  """

  def __init__(self, input_shape, latent_dim, gamma=1000.0, max_capacity=25.0,
               capacity_steps=100_000, **kwargs):
    for name in ("kl_weight", "kl_warmup_steps"):
      if name in kwargs:
        raise ValueError(f"Expected no {name}: an AnnealedVAE weighs its KL term with gamma "
                         f"against the capacity. Received: {name}={kwargs[name]!r}")
    super().__init__(input_shape, latent_dim, **kwargs)
    self.gamma = autoencoders.check_number(gamma, "gamma")
    self.max_capacity = autoencoders.check_number(max_capacity, "max_capacity")
    if (not isinstance(capacity_steps, (int, np.integer)) or isinstance(capacity_steps, bool)
        or capacity_steps < 0):
      raise ValueError("Expected capacity_steps to be an integer >= 0. "
                       f"Received: capacity_steps={capacity_steps!r}")
    self.capacity_steps = int(capacity_steps)

  @staticmethod
  def settings_arguments(settings, steps_per_epoch=1):
    """The constructor arguments of a `kinds.AnnealedVAESettings` block; a ramp given in epochs
    becomes steps."""
    vae = autoencoders.VAE.settings_arguments(settings.vae_settings(), steps_per_epoch)
    return dict(prior=vae["prior"], likelihood=vae["likelihood"], gamma=settings.gamma,
                max_capacity=settings.max_capacity,
                capacity_steps=settings.ramp_steps(steps_per_epoch))

  def capacity_at(self, step):
    """C at an optimiser step: max_capacity · min(1, step / capacity_steps); None: the end."""
    if self.capacity_steps == 0 or step is None:
      return tf.constant(self.max_capacity)
    ramp = tf.cast(step, tf.float32) / float(self.capacity_steps)
    return self.max_capacity * tf.minimum(1.0, ramp)

  def scheduled_values(self, step):
    return {"capacity": self.capacity_at(step)}

  def loss_terms(self, x, training=False, step=None, seed=None):
    """The VAE's ELBO terms, `capacity` and loss = reconstruction + γ·|KL̄ − C| per example;
    `seed` (an integer or a [2] tensor) fixes the draw of z, None draws a fresh one."""
    terms = self.elbo_terms(x, training=training, seed=seed)
    capacity = self.capacity_at(step)
    penalty = self.gamma * tf.abs(tf.reduce_mean(terms["kl"]) - capacity)  # the batch's
    weighted_kl = penalty * tf.ones_like(terms["kl"])  # [B]
    terms.update(loss=terms["reconstruction"] + weighted_kl, weighted_kl=weighted_kl,
                 capacity=capacity)
    return terms

  def get_config(self):
    config = super().get_config()
    del config["kl_weight"], config["kl_warmup_steps"]
    config.update(gamma=self.gamma, max_capacity=self.max_capacity,
                  capacity_steps=self.capacity_steps)
    return config
