"""Running a function of one model over a stack of models: vmapped, chunked (lax.map), sharded over devices."""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh

from clstm_jax.core import distributed

MODEL_AXIS = "models"


def over_models(fn, per_model: tuple, chunk: int, groups: int = 1):
    """fn(*one model's slices) for every model; per_model: pytrees with a leading model axis.

    chunk = 0 vmaps all models at once. Otherwise the model axis is split into
    `groups` equal blocks (one per device of the mesh: vmapped, so each device
    keeps its own models) and within a block `chunk` models at a time are
    vmapped while the chunks follow one another (lax.map). Same numbers either
    way; on CPU a small working set is faster, on GPU one wide vmap.
    """
    if chunk == 0:
        return jax.vmap(fn)(*per_model)
    blocks = jax.tree.map(lambda x: x.reshape(groups, x.shape[0] // groups, *x.shape[1:]), per_model)
    out = jax.vmap(lambda block: jax.lax.map(lambda args: fn(*args), block, batch_size=chunk))(blocks)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)


def model_mesh(*n_models: int) -> Mesh:
    """A 1-D mesh over as many devices as divide every model count evenly (one count per family group of
    the program: so no model is padded)."""
    return Mesh(np.array(distributed.devices_per_process(math.gcd(*n_models))), (MODEL_AXIS,))
