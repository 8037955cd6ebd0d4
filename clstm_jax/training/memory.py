"""Programs that fit by themselves: `train.model_chunk = "auto"` and `evaluate.batch = "auto"`.

The memory a compiled program needs on a device (XLA's memory analysis:
arguments, outputs and temporaries, less the donated buffers it reuses) grows
linearly with the models vmapped side by side (training) and with the items
of an evaluation chunk. So "auto" compiles the program at sizes 1 and 2, fits
the line, and compiles the widest size the line puts under the budget and the
next one, to confirm that it is the widest that fits (bisecting when the line
was wrong). When one model does not fit, training turns on `model.remat` and
tries again. Sizes set by hand are compiled once too, and refused when they
need more than the budget: one line before any work, not an out-of-memory
error midway.

The budget is `train.memory_budget_gb`, or when that is 0 the device's own
limit (90% of `memory_stats()["bytes_limit"]` on a GPU, for the runtime's own
buffers) and on the CPU half the machine's memory. Chunking never changes
what a model computes; remat changes only the last bits (tests/test_model.py).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax

from clstm_jax.config import Config
from clstm_jax.core.errors import ConfigError

GIB = 2**30
# The widest evaluation chunk "auto" picks: wider chunks are not faster, and the progress bar keeps moving.
AUTO_MAX_ITEMS = 1024


def budget_bytes(config: Config) -> int:
    """Bytes a program may use on one device (see the module docstring)."""
    if config.train.memory_budget_gb > 0:
        return int(config.train.memory_budget_gb * GIB)
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(0.9 * stats["bytes_limit"])
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def program_bytes(compiled) -> int:
    """Device memory of a compiled program: arguments + outputs + temporaries - donated (aliased) buffers."""
    m = compiled.memory_analysis()
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def widest_fitting(compile_at: Callable[[int], object], largest: int, budget: int) -> tuple[int, int, object]:
    """(size, bytes, compiled program): the widest size in 1..largest whose program fits the budget; size 0
    when even 1 does not.

    compile_at(size) compiles the program at that size; memory is assumed to grow with the size. The
    widest is tried first; else the line through sizes 1 and 2 gives a first guess; then the search
    brackets the widest fitting size and bisects, so a cost off the line costs compilations, not the answer.
    The chosen size's program is returned so that the caller runs it rather than compiling it again.
    """
    programs: dict[int, object] = {}
    measured: dict[int, int] = {}

    def fits(size: int) -> bool:
        if size not in measured:
            programs[size] = compile_at(size)
            measured[size] = program_bytes(programs[size])
        return measured[size] <= budget

    def chosen(size: int) -> tuple[int, int, object]:
        return size, measured[size], programs.get(size)

    if fits(largest):  # the common case on a large device: one compilation
        return chosen(largest)
    if not fits(1):
        return 0, measured[1], None
    if not fits(2):
        return chosen(1)
    slope = max(measured[2] - measured[1], 1)
    guess = max(2, min(largest, 1 + (budget - measured[1]) // slope))
    lo, hi = (guess, None) if fits(guess) else (2, guess)  # lo fits; hi (when known) does not
    step = 1
    while hi is None and lo < largest:  # gallop up from a guess that fits
        if fits(min(largest, lo + step)):
            lo, step = min(largest, lo + step), step * 2
        else:
            hi = min(largest, lo + step)
    while hi is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return chosen(lo)


def fit_training(config: Config, models_per_device: int, compile_step: Callable[[Config], object],
                 log=print) -> tuple[Config, object]:
    """(config, compiled step): the training step compiled for the config, `train.model_chunk = "auto"`
    resolved to the widest chunk that fits (remat if needed). A configured chunk that does not fit the
    budget is refused (ConfigError), before any training step.

    compile_step(config) returns the training step compiled for that config.
    """
    budget = budget_bytes(config)
    if config.train.model_chunk != "auto":
        step = compile_step(config)
        check_fits(program_bytes(step), budget, f"the training step at train.batch_size = {config.train.batch_size}, "
                   f"train.model_chunk = {config.train.model_chunk}", "a smaller train.batch_size or train.model_chunk "
                   "(or \"auto\"), model.remat = true")
        return config, step
    for remat in dict.fromkeys((config.model.remat, True)):
        model = dataclasses.replace(config.model, remat=remat)
        # all the device's models side by side is chunk 0 (one vmap): the program the run then compiles
        at = lambda chunk: dataclasses.replace(config, model=model, train=dataclasses.replace(
            config.train, model_chunk=0 if chunk == models_per_device else chunk))
        chunk, used, step = widest_fitting(lambda c: compile_step(at(c)), models_per_device, budget)
        if chunk:
            log(f"train.model_chunk = auto: {chunk} of {models_per_device} models side by side per device"
                f"{', model.remat on' if remat and not config.model.remat else ''} "
                f"({used / GIB:.2f} GiB of a {budget / GIB:.2f} GiB budget)")
            return at(chunk), step
    raise ConfigError(f"one model's training step needs {used / GIB:.2f} GiB even with model.remat, over the "
                      f"{budget / GIB:.2f} GiB budget (train.memory_budget_gb); expected a smaller train.batch_size "
                      "or model size, or a larger budget")


def check_fits(used: int, budget: int, what: str, expected: str) -> None:
    """Refuse a program of configured sizes that needs more than the budget, before it runs out of memory midway."""
    if used > budget:
        raise ConfigError(f"{what} needs {used / GIB:.3g} GiB per device, over the {budget / GIB:.3g} GiB budget "
                          f"(train.memory_budget_gb; 0 = the device's, or half the RAM on a CPU); expected {expected}, "
                          "or a larger budget")


def fit_evaluation(config: Config, models_per_device: int, total_items: int,
                   compile_chunk: Callable[[int, int], object], log=print) -> tuple[int, int, object]:
    """(model_chunk, batch, compiled chunk): each size as configured (refused when it does not fit the budget),
    or "auto" resolved to fit it, with the program compiled at those sizes.

    compile_chunk(model_chunk, batch) returns the evaluation chunk compiled at that size. An "auto" model
    chunk starts from all the device's models (a forward pass keeps no backward state) and halves while
    not even one item fits; an "auto" batch is the widest up to AUTO_MAX_ITEMS (and the total) that fits.
    """
    chunk, batch = config.train.model_chunk, config.evaluate.batch
    budget = budget_bytes(config)
    if batch != "auto":
        chunk = 0 if chunk == "auto" else chunk
        program = compile_chunk(chunk, batch)
        check_fits(program_bytes(program), budget, f"the evaluation at evaluate.batch = {batch}"
                   + (f", train.model_chunk = {chunk}" if chunk else ""), "a smaller evaluate.batch (or \"auto\")")
        return chunk, batch, program
    widest = min(AUTO_MAX_ITEMS, total_items)
    for model_chunk in ([chunk] if chunk != "auto" else [0, *halvings(models_per_device)[1:]]):
        batch, used, program = widest_fitting(lambda b: compile_chunk(model_chunk, b), widest, budget)
        if batch:
            log(f"evaluate.batch = auto: {batch} items per call"
                + (f", {model_chunk or models_per_device} models side by side" if chunk == "auto" else "")
                + f" ({used / GIB:.2f} GiB of a {budget / GIB:.2f} GiB budget)")
            return model_chunk, batch, program
    raise ConfigError(f"one evaluation item needs {used / GIB:.2f} GiB, over the {budget / GIB:.2f} GiB budget "
                      "(train.memory_budget_gb); expected a smaller train.model_chunk or model size, or a larger budget")


def halvings(n: int) -> list[int]:
    """n, n/2, n/4, ..., 1 (rounded up)."""
    sizes = [n]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes
