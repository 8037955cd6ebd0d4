"""The programs layer: how every program the project runs is placed, sized, compiled and called in chunks.

Four programs do the work, each a pure function that lives with its concept: the training step
(`sweep.sweep_step`), the validation count (`validation.correct_counts`), the evaluation chunk
(`evaluate.chunk_correct`) and the modality-use chunk (`modality_use.chunk_correct`). The sweep, `evaluate`,
modality use, validation, `plan` and `bench` all build them here, the same way:

- arguments are placed as a run places them (`Placement`): per-model leaves split over the model mesh,
  everything else replicated, through `distributed.to_global`, so one process and many place alike;
- the execution strategy over models is one choice, `train.model_chunk`, carried out in one place
  (`multi_model.over_models`: one vmap, or chunks of models one after another with `lax.map`, sharded over
  the mesh's devices); tests/test_sweep.py holds every strategy to the same values;
- sizes are resolved and checked against the memory budget by compiling (clstm_jax/training/memory.py), and the
  executable compiled there is the one that runs (`Program`): nothing compiles twice;
- items are taken in fixed-size chunks whose last one wraps round (`chunks`), so one shape compiles once,
  and a long measurement keeps its finished chunks (`measure_chunks`, clstm_jax/evaluation/resumable.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from clstm_jax.config import Config
from clstm_jax.core import compiler, distributed, interrupts
from clstm_jax.model.multi_model import MODEL_AXIS, model_mesh
from clstm_jax.training import memory


@dataclass(frozen=True)
class Placement:
    """Where a program's arguments live: a 1-D mesh over the model axis."""

    mesh: Mesh

    @classmethod
    def for_counts(cls, *models_per_group: int) -> Placement:
        """The mesh of as many devices as divide every family group's model count (multi_model.model_mesh)."""
        return cls(model_mesh(*models_per_group))

    @property
    def groups(self) -> int:
        """Devices of the mesh: the blocks `over_models` splits the model axis into."""
        return len(self.mesh.devices)

    def per_model(self, tree):
        """Leaves with a leading model axis, split over the mesh."""
        return distributed.to_global(tree, NamedSharding(self.mesh, PartitionSpec(MODEL_AXIS)))

    def shared(self, tree):
        """Leaves every model reads (data, keys), replicated."""
        return distributed.to_global(tree, NamedSharding(self.mesh, PartitionSpec()))

    def state(self, state: dict) -> dict:
        """A sweep state: per-model leaves split, scalars (the step) replicated."""
        return jax.tree.map(lambda x: self.per_model(x) if x.ndim else self.shared(x), state)


@dataclass(frozen=True)
class Program:
    """A compiled program, the config whose sizes it was compiled at ("auto" resolved), and the placed
    arguments it was compiled for (a call may pass others of the same shapes)."""

    config: Config
    executable: object
    args: tuple

    def __call__(self, *args):
        return self.executable(*args)


def training(step: Callable, config: Config, placement: Placement, args: tuple, models_per_device: int,
             log=print) -> Program:
    """The training step `step(state, train, models, config=, groups=)` compiled for `args`, its state donated;
    `train.model_chunk = "auto"` resolved (remat if needed) and configured sizes held to the budget
    (memory.fit_training)."""
    compile_at = lambda cfg: compiler.jit(partial(step, config=cfg, groups=placement.groups),
                                          donate_argnums=0).lower(*args).compile()
    config, executable = memory.fit_training(config, models_per_device, compile_at, log)
    return Program(config, executable, args)


def measurement(chunk_fn: Callable, config: Config, placement: Placement, args_at: Callable[[int], tuple],
                models_per_device: int, total_items: int, log=print) -> Program:
    """A forward-pass chunk `chunk_fn(*args_at(batch), model_chunk=, groups=)` compiled, with
    `train.model_chunk` and `evaluate.batch` resolved or checked (memory.fit_evaluation); the program's config
    carries the sizes chosen. args_at(batch): the placed arguments of a chunk of `batch` items."""
    compile_at = lambda chunk, batch: compiler.jit(partial(chunk_fn, model_chunk=chunk, groups=placement.groups)).lower(
        *args_at(batch)).compile()
    model_chunk, batch, executable = memory.fit_evaluation(config, models_per_device, total_items, compile_at, log)
    sized = dataclasses.replace(config, train=dataclasses.replace(config.train, model_chunk=model_chunk),
                                evaluate=dataclasses.replace(config.evaluate, batch=batch))
    return Program(sized, executable, args_at(batch))


def fixed(fn: Callable, config: Config, args: tuple) -> Program:
    """`fn(*args)` compiled as it is (sizes already resolved, e.g. validation inside a sweep)."""
    return Program(config, compiler.jit(fn).lower(*args).compile(), args)


class Chunk(NamedTuple):
    """One call's items: positions start..stop-1 of a measurement, `ids` the call's `batch` positions (the
    last call wraps round to the first ones, whose outcomes are dropped), `where` the index of the
    measurement's outcomes before the item axis (modality use: point, condition)."""

    start: int
    stop: int
    ids: np.ndarray
    where: tuple = ()

    @property
    def size(self) -> int:
        return self.stop - self.start


def chunks(total: int, batch: int, where: tuple = ()) -> list[Chunk]:
    """Items 0..total-1 in calls of `batch`: one shape, so one compilation."""
    return [Chunk(start, min(start + batch, total), np.arange(start, start + batch) % total, where)
            for start in range(0, total, batch)]


def measure_chunks(kept, calls: list[Chunk], compute: Callable[[Chunk], object], bar, what: str) -> tuple[int, float]:
    """Run the chunks not yet kept (resumable.KeptChunks), writing each one's outcomes (models, batch) into
    kept.outcomes[:, *where, start:stop]; returns (items, seconds) of the timed calls (a process's first call
    also warms up, so it is not timed). An interrupt saves what is finished and says so."""
    timed_items, timed_seconds = 0, 0.0
    bar.update(sum(chunk.size for chunk in calls[: kept.done]))
    interrupts.doing(what)
    try:
        for done, chunk in enumerate(calls[kept.done:], kept.done):
            interrupts.check()
            began = time.perf_counter()
            result = np.asarray(compute(chunk))
            if done > kept.done:
                timed_items, timed_seconds = timed_items + len(chunk.ids), timed_seconds + time.perf_counter() - began
            kept.outcomes[(slice(None), *chunk.where, slice(chunk.start, chunk.stop))] = result[:, : chunk.size]
            kept.finished(done + 1)
            bar.update(chunk.size)
            bar.set_postfix_str(f"{result.shape[0]} models per item")  # compiled: the rate and ETA are the program's own
    except KeyboardInterrupt:
        raise kept.interrupted(what, len(calls)) from None
    return timed_items, timed_seconds
