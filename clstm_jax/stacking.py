"""Many models as one pytree: parameters, Adam states and per-model constants stacked on a leading model axis."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from clstm_jax.config import Config, ModelSpec
from clstm_jax.keys import INIT, NOISE, purpose_key
from clstm_jax.masks import variant_masks
from clstm_jax.model import init
from clstm_jax.train import make_optimizer


class Models(NamedTuple):
    """Per-model constants, stacked on the model axis: masks, SNRs (inf = orig), noise keys."""

    masks: object
    audio_snr: jax.Array
    visual_snr: jax.Array
    noise_keys: jax.Array


def init_params(config: Config, specs: list[ModelSpec]) -> dict:
    """Stacked initial parameters (models, ...), each from its model's seed."""
    seeds = jnp.array([spec.seed for spec in specs])
    init_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(purpose_key(config.train.seed, INIT), seeds)
    return init_models(init_keys, config.model)


# One compiled program: run eagerly, vmap(init) dispatches (and compiles) each random op on its own.
init_models = jax.jit(jax.vmap(init, in_axes=(0, None)), static_argnums=1)


def model_constants(config: Config, specs: list[ModelSpec]) -> Models:
    """The per-model constants (masks, SNRs, noise keys), stacked on the model axis."""
    shapes = jax.eval_shape(lambda key: init(key, config.model), jax.random.key(0))  # masks read shapes only
    masks = [variant_masks(shapes, config.model, spec.fusion, spec.modalities) for spec in specs]
    seeds = jnp.array([spec.seed for spec in specs])
    return Models(
        jax.tree.map(lambda *m: jnp.stack(m), *masks),
        jnp.array([spec.audio_snr for spec in specs], jnp.float32),
        jnp.array([spec.visual_snr for spec in specs], jnp.float32),
        jax.vmap(jax.random.fold_in, in_axes=(None, 0))(purpose_key(config.train.seed, NOISE), seeds),
    )


def build_models(config: Config, specs: list[ModelSpec]) -> tuple[dict, Models]:
    """Stacked initial parameters and the per-model constants of a sweep."""
    return init_params(config, specs), model_constants(config, specs)


def initial_state(config: Config, params: dict) -> dict:
    """The whole sweep state: everything a resume needs, stacked on the model axis where per model."""
    optimizer = make_optimizer(config.train.learning_rate)
    n_models = jax.tree.leaves(params)[0].shape[0]
    return {
        "params": params,
        "opt_state": jax.vmap(optimizer.init)(params),
        "best_params": jax.tree.map(jnp.copy, params),  # its own buffers: the state is donated
        "best_accuracy": jnp.full(n_models, -1.0, jnp.float32),
        "best_step": jnp.zeros(n_models, jnp.int32),
        "loss_sum": jnp.zeros(n_models, jnp.float32),  # training loss summed since the last validation
        "step": jnp.zeros((), jnp.int32),
    }
