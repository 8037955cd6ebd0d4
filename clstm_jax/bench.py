"""`clstm-jax bench`: training throughput of a preset, vmapped against one model after another.

Both modes run the real sweep step (pair sampling, noise, STFT, forward,
backward, Adam) on the real training split; only the number of models per
program differs.
"""

from __future__ import annotations

import time
from functools import partial

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from clstm_jax import compiler
from clstm_jax.config import Config, ModelSpec
from clstm_jax.device_data import feature_stats, load_checked_data, split_arrays
from clstm_jax.multi_model import MODEL_AXIS, shard_state
from clstm_jax.stacking import build_models, initial_state
from clstm_jax.sweep import sweep_step


def bench_specs(n_models: int, family: str = "masked") -> list[ModelSpec]:
    """n models of the fusion comparison's main point that differ only in seed: initial fusion, or in
    another family (whose initial fusion is the masked model) second fusion."""
    fusion = "initial" if family == "masked" else "second"
    return [ModelSpec(fusion, "both", 0.5, 0.25, seed, family) for seed in range(n_models)]


def first_device() -> Mesh:
    """The one-device mesh every bench program runs on."""
    return Mesh(np.array(jax.devices()[:1]), (MODEL_AXIS,))


def new_program(config: Config, specs: list[ModelSpec]) -> list:
    """[initial sweep state, per-model constants] of these models, placed on the first device as a sweep on
    one device places them: the bench then compiles the sweep's own program (and shares its compilation cache)."""
    mesh = first_device()
    params, models = build_models(config, specs)
    return [shard_state(initial_state(config, params), mesh), jax.device_put(models, NamedSharding(mesh, PartitionSpec(MODEL_AXIS)))]


def compile_step(config: Config, program: list, train):
    """The sweep step compiled for a program's shapes (its state is donated at each call)."""
    return compiler.jit(partial(sweep_step, config=config), donate_argnums=0).lower(program[0], train, program[1]).compile()


def measure(config: Config, n_models: int, vmapped: bool, steps: int, train, family: str = "masked") -> dict:
    """Throughput of n_models trained for `steps` steps, in one program or one program per model."""
    specs = bench_specs(n_models, family)
    programs = [new_program(config, group) for group in ([specs] if vmapped else [[spec] for spec in specs])]
    compiled = compile_step(config, programs[0], train)
    memory = compiled.memory_analysis()
    for program in programs:  # warm-up
        program[0] = compiled(program[0], train, program[1])
    jax.block_until_ready([p[0] for p in programs])
    start = time.perf_counter()
    for _ in range(steps):
        for program in programs:
            program[0] = compiled(program[0], train, program[1])
        jax.block_until_ready([p[0] for p in programs])
    seconds = (time.perf_counter() - start) / steps
    return {
        "models": n_models,
        "mode": "vmapped" if vmapped else "sequential",
        "seconds_per_step": seconds,
        "model_examples_per_second": n_models * config.train.batch_size / seconds,
        "argument_mb": memory.argument_size_in_bytes / 2**20,  # state, training split and model constants
        "temp_mb": memory.temp_size_in_bytes / 2**20,
        "memory_mb": (memory.temp_size_in_bytes + memory.argument_size_in_bytes) / 2**20,
    }


def run_bench(config: Config, model_counts: list[int], steps: int, data_dir: str | None = None,
              family: str = "masked") -> list[dict]:
    """One row per (model count, mode); memory is XLA's argument + temporary bytes of one program.
    family: the models' (bench_specs)."""
    split = load_checked_data(config, data_dir).splits["train"]
    train = jax.device_put(split_arrays(split, feature_stats(config, split)), NamedSharding(first_device(), PartitionSpec()))
    return [measure(config, n, vmapped, steps, train, family) for n in model_counts for vmapped in (True, False)]
