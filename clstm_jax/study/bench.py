"""`clstm-jax bench`: the throughput of a preset's programs, all models in one program against one program
per model.

Each program is the run's own, built as `plan` builds it (clstm_jax/study/plan.py, clstm_jax/training/programs.py) on the
real data: the training step (pair sampling, noise, STFT, forward, backward, Adam), validation's count of
one chunk of pairs, and an evaluation chunk of `evaluate.batch` grid items. Only the number of models per
program differs between the two modes: one program compiled for all of them, or one compiled program
called once per model.
"""

from __future__ import annotations

import time

import jax

from clstm_jax.config import Config
from clstm_jax.model.spec import ModelSpec
from clstm_jax.study.plan import arguments, build
from clstm_jax.training import programs
from clstm_jax.training.device_data import load_checked_data
from clstm_jax.training.validation import chunk_size

PROGRAMS = {"training": "train step", "validation": "validation chunk", "evaluation": "evaluation chunk"}


def bench_specs(n_models: int, family: str = "masked") -> list[ModelSpec]:
    """n models of the fusion comparison's main point that differ only in seed: initial fusion, or in
    another family (whose initial fusion is the masked model) second fusion."""
    fusion = "initial" if family == "masked" else "second"
    return [ModelSpec(fusion, "both", 0.5, 0.25, seed, family) for seed in range(n_models)]


def items_per_call(name: str, config: Config) -> int:
    """Examples one model reads in one call of the program."""
    if name == "train step":
        return config.train.batch_size
    if name == "validation chunk":
        return chunk_size(config)
    return config.evaluate.batch


def measure(config: Config, program: str, n_models: int, vmapped: bool, steps: int, data, family: str = "masked") -> dict:
    """Throughput of one of PROGRAMS over n_models, in one program or one program per model (compiled once,
    called with each model's arguments)."""
    name = PROGRAMS[program]
    specs = bench_specs(n_models, family)
    compiled = build(name, config, specs if vmapped else specs[:1], data, log=lambda _: None)
    if vmapped:
        calls = [list(compiled.args)]
    else:
        per_model = arguments(name, compiled.config, data, programs.Placement.for_counts(1))
        calls = [list(per_model([spec])(compiled.config.evaluate.batch)) for spec in specs]
    donated = name == "train step"

    def run_all():
        for args in calls:
            out = compiled(*args)
            if donated:
                args[0] = out
        jax.block_until_ready([args[0] for args in calls] if donated else out)

    run_all()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        run_all()
    seconds = (time.perf_counter() - start) / steps
    memory = compiled.executable.memory_analysis()
    return {
        "program": program,
        "models": n_models,
        "mode": "vmapped" if vmapped else "sequential",
        "model_chunk": compiled.config.train.model_chunk,
        "items_per_call": items_per_call(name, compiled.config),
        "seconds_per_step": seconds,
        "model_examples_per_second": n_models * items_per_call(name, compiled.config) / seconds,
        "argument_mb": memory.argument_size_in_bytes / 2**20,  # parameters (and state), data, model constants
        "temp_mb": memory.temp_size_in_bytes / 2**20,
        "memory_mb": (memory.temp_size_in_bytes + memory.argument_size_in_bytes) / 2**20,
    }


def run_bench(config: Config, model_counts: list[int], steps: int, data_dir: str | None = None,
              family: str = "masked", program: str = "training") -> list[dict]:
    """One row per (model count, mode); memory is XLA's argument + temporary bytes of one program.
    family: the models' (bench_specs); program: a key of PROGRAMS."""
    data = load_checked_data(config, data_dir)
    return [measure(config, program, n, vmapped, steps, data, family) for n in model_counts for vmapped in (True, False)]
