"""One sweep as a multi-process JAX program: JAX's own runtime (`jax.distributed`) is the engine.

Every process runs the same program on the same config. Each loads the data
and builds the same initial state itself (everything is computed from seeds),
then places it on the global mesh, keeping its own devices' shards; the model axis
is sharded over the global mesh. Process 0 alone writes the run's files
(config, model list, metrics) and the progress bar; every process takes part
in the orbax checkpoints, which write each process's shards.

In a single process every function here reduces to its ordinary form, so the
sweep has one code path.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils

from clstm_jax.core.errors import ConfigError


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join a multi-process run (all three given) or stay single-process (none given)."""
    given = [value is not None for value in (coordinator, num_processes, process_id)]
    if not any(given):
        return
    if not all(given):
        raise ConfigError("multi-process runs need --coordinator HOST:PORT, --num-processes N and --process-id I together")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id {process_id} with --num-processes {num_processes}; expected 0 <= id < N")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--coordinator {coordinator!r}; expected HOST:PORT of process 0, e.g. 10.0.0.1:1234")
    jax.distributed.initialize(coordinator, num_processes, process_id)


def is_primary() -> bool:
    """True in the process that writes the run's files (process 0; the only one when single-process)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches this point (a no-op when single-process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def devices_per_process(n_models: int) -> list:
    """Devices of a 1-D mesh for n_models: the same number from every process, as many as divide n_models.

    Single-process: the largest device count that divides the model count (3 models on 4 devices use 3).
    """
    processes = jax.process_count()
    local = jax.local_device_count()
    counts = [k for k in range(1, local + 1) if n_models % (k * processes) == 0]
    if not counts:
        raise ConfigError(
            f"{n_models} models cannot be spread evenly over {processes} processes; "
            f"use a model count divisible by {processes} (or fewer processes)"
        )
    k = max(counts)
    return [device for p in range(processes) for device in jax.local_devices(process_index=p)[:k]]


def to_global(tree, sharding: jax.sharding.Sharding):
    """Place values that every process computed identically onto a (possibly multi-process) sharding.

    jax.device_put takes each process's copy as the global value; typed PRNG keys,
    which it cannot place across processes, go through their raw key data.
    """

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(jax.device_put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


def to_host(x: jax.Array) -> np.ndarray:
    """The whole value of a (possibly multi-process) array, on every process."""
    if jax.process_count() > 1 and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
