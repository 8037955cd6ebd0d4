"""Training: the loss and one pure Adam step (the sweep loop builds on these)."""

from __future__ import annotations

import jax
import optax

from clstm_jax.model.clstm import ModelConfig
from clstm_jax.model.families import apply
from clstm_jax.model.masks import Masks


def make_optimizer(learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """Adam, learning rate 1e-3 as in the paper."""
    return optax.adam(learning_rate)


def loss_fn(params: dict, masks: Masks, image: jax.Array, spectrogram: jax.Array, labels: jax.Array, cfg: ModelConfig,
            group: str):
    """Mean cross-entropy of the last step's logits; image (B, S, S), spectrogram (B, T, F), labels (B,)."""
    logits = apply(params, masks, image, spectrogram, cfg, group)[:, -1]  # (B, classes)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train_step(params, opt_state, masks, image, spectrogram, labels, cfg: ModelConfig,
               optimizer: optax.GradientTransformation, group: str):
    """One Adam step of one model of `group` -> (params, opt_state, loss). Pure; vmap it over a model axis."""
    loss, grads = jax.value_and_grad(loss_fn)(params, masks, image, spectrogram, labels, cfg, group)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
