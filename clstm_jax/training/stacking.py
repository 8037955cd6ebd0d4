"""Many models as one pytree: parameters, Adam states and per-model constants stacked on a leading model
axis, one stack per family group (clstm_jax/model/families.py)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from clstm_jax.config import Config
from clstm_jax.model import families
from clstm_jax.model.families import GROUPS, by_group
from clstm_jax.model.spec import ModelSpec
from clstm_jax.training.keys import INIT, NOISE, purpose_key
from clstm_jax.training.step import make_optimizer


class Models(NamedTuple):
    """Per-model constants, stacked on the model axis: masks, SNRs (inf = orig), noise keys."""

    masks: object
    audio_snr: jax.Array
    visual_snr: jax.Array
    noise_keys: jax.Array


def init_params(config: Config, specs: list[ModelSpec]) -> dict:
    """{group: stacked initial parameters (models, ...)}, each model's from its seed (families.GROUPS)."""
    params = {}
    for group, members in by_group(specs).items():
        seeds = jnp.array([spec.seed for spec in members])
        init_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(purpose_key(config.train.seed, INIT), seeds)
        params[group] = init_models(init_keys, config.model, group)
    return params


# One compiled program per group: run eagerly, vmap(init) dispatches (and compiles) each random op on its own.
# Plain jax.jit, not compiler.jit: it is also traced inside other programs (jit refuses nested compiler options),
# and it has no product for the options to change.
init_models = jax.jit(jax.vmap(families.init, in_axes=(0, None, None)), static_argnums=(1, 2))


def model_constants(config: Config, specs: list[ModelSpec]) -> dict[str, Models]:
    """{group: its models' constants (masks, SNRs, noise keys), stacked on the model axis}."""
    constants = {}
    for group, members in by_group(specs).items():
        shapes = jax.eval_shape(lambda key: families.init(key, config.model, group), jax.random.key(0))  # masks read shapes only
        masks = [families.masks(shapes, config.model, spec) for spec in members]
        seeds = jnp.array([spec.seed for spec in members])
        constants[group] = Models(
            jax.tree.map(lambda *m: jnp.stack(m), *masks),
            jnp.array([spec.audio_snr for spec in members], jnp.float32),
            jnp.array([spec.visual_snr for spec in members], jnp.float32),
            jax.vmap(jax.random.fold_in, in_axes=(None, 0))(purpose_key(config.train.seed, NOISE), seeds),
        )
    return constants


def build_models(config: Config, specs: list[ModelSpec]) -> tuple[dict, dict[str, Models]]:
    """Stacked initial parameters and the per-model constants of a sweep, by group."""
    return init_params(config, specs), model_constants(config, specs)


def initial_state(config: Config, params: dict) -> dict:
    """The whole sweep state: everything a resume needs. {"step": (), group: that group's state, stacked on
    the model axis}, params keyed by group (init_params)."""
    optimizer = make_optimizer(config.train.learning_rate)
    state = {"step": jnp.zeros((), jnp.int32)}
    for group, tree in params.items():
        n_models = jax.tree.leaves(tree)[0].shape[0]
        state[group] = {
            "params": tree,
            "opt_state": jax.vmap(optimizer.init)(tree),
            "best_params": jax.tree.map(jnp.copy, tree),  # its own buffers: the state is donated
            "best_accuracy": jnp.full(n_models, -1.0, jnp.float32),
            "best_step": jnp.zeros(n_models, jnp.int32),
            "loss_sum": jnp.zeros(n_models, jnp.float32),  # training loss summed since the last validation
        }
    return state


def group_states(state: dict) -> dict[str, dict]:
    """{group: its state} of a sweep state (every entry but the shared step)."""
    return {group: state[group] for group in GROUPS if group in state}
