"""`"auto"` sizes: the widest program under a memory budget, against a brute-force search over all sizes.

The programs' bytes come from tables here; tests/test_study.py runs its tiny study with both sizes "auto"
on real compiled programs, and its evaluation equals the one at fixed sizes.
"""

import dataclasses
import types

import pytest
from conftest import micro

from clstm_jax.core.errors import ConfigError
from clstm_jax.training import memory

GIB = 2**30


@pytest.mark.parametrize("cost", [lambda s: 100 + 30 * s, lambda s: 100 + 30 * s + 4 * s * s,
                                  lambda s: 100 + 30 * s + (50 if s > 5 else 0)])
def test_widest_fitting_equals_a_brute_force_search(cost):
    """Linear, convex and stepped costs: the search returns the widest size that fits, or 0 when none does."""
    for largest in (1, 2, 7, 40):
        for budget in range(90, 1500, 7):
            fitting = [s for s in range(1, largest + 1) if cost(s) <= budget]
            size, used, program = memory.widest_fitting(lambda s: Compiled(cost(s), 0, 0), largest, budget)
            assert size == max(fitting, default=0), (largest, budget)
            if size:  # the chosen size's own program comes back, to be run without compiling it again
                assert used == cost(size) and program.memory_analysis().argument_size_in_bytes == cost(size)


def with_budget(config, budget_bytes):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, memory_budget_gb=budget_bytes / GIB))


class Compiled:
    """What memory.program_bytes reads of a compiled program: XLA's memory analysis, here from a table."""

    def __init__(self, argument, output, temp, alias=0):
        self.analysis = types.SimpleNamespace(argument_size_in_bytes=argument, output_size_in_bytes=output,
                                              temp_size_in_bytes=temp, alias_size_in_bytes=alias)

    def memory_analysis(self):
        return self.analysis


CONFIG = micro("train.model_chunk=auto", "evaluate.batch=auto")  # three models
# Bytes of a training step by (models side by side, remat): a 1,000-byte state donated (aliased) to the output,
# activations of 300 per model without remat and 120 with it.
TRAIN_BYTES = {(chunk, remat): 1000 + 50 + (120 if remat else 300) * chunk
               for chunk in (1, 2, 3) for remat in (False, True)}


def train_step_at(cfg):
    chunk = cfg.train.model_chunk or 3
    return Compiled(1000, 1000, 50 + (120 if cfg.model.remat else 300) * chunk, alias=1000)


def test_training_chunk_is_the_widest_that_fits_and_remat_comes_on_when_one_model_does_not():
    for budget in range(1000, 3000, 10):
        fitting = lambda remat: [c for c in (1, 2, 3) if TRAIN_BYTES[c, remat] <= budget]
        if not fitting(True):
            with pytest.raises(ConfigError, match=r"one model's training step needs .* GiB even with model.remat, "
                                                  r"over the .* GiB budget \(train.memory_budget_gb\)"):
                memory.fit_training(with_budget(CONFIG, budget), 3, train_step_at, log=lambda _: None)
            continue
        remat = not fitting(False)
        chosen, step = memory.fit_training(with_budget(CONFIG, budget), 3, train_step_at, log=lambda _: None)
        widest = max(fitting(remat))
        assert (chosen.train.model_chunk, chosen.model.remat) == (0 if widest == 3 else widest, remat), budget
        assert memory.program_bytes(step) == TRAIN_BYTES[widest, remat]  # the chosen program, compiled once

@pytest.mark.parametrize("budget", [TRAIN_BYTES[2, False] - 1, TRAIN_BYTES[2, False]])
def test_a_training_chunk_set_by_hand_is_compiled_once_and_refused_over_the_budget(budget):
    fixed = with_budget(dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train, model_chunk=2)), budget)
    compiled_at = []
    compile_step = lambda cfg: compiled_at.append(cfg) or train_step_at(cfg)
    if budget < TRAIN_BYTES[2, False]:
        with pytest.raises(ConfigError, match=r"^the training step at train.batch_size = 4, train.model_chunk = 2 needs "
                                              r"[0-9.e+-]+ GiB per device, over the [0-9.e+-]+ GiB budget "
                                              r"\(train.memory_budget_gb; .*\); expected a smaller train.batch_size"):
            memory.fit_training(fixed, 3, compile_step)
    else:
        chosen, step = memory.fit_training(fixed, 3, compile_step)
        assert chosen == fixed and memory.program_bytes(step) == TRAIN_BYTES[2, False]
    assert compiled_at == [fixed]  # no search, no remat: the sizes are the config's


def test_evaluation_batch_is_the_widest_that_fits_and_the_model_chunk_halves_when_one_item_does_not():
    per_item = lambda chunk, batch: 400 + (chunk or 3) * (30 + 7 * batch)  # arguments + activations
    chunk_at = lambda chunk, batch: Compiled(400, 0, per_item(chunk, batch) - 400)
    for budget in range(400, 30000, 37):
        fitting = [(c, b) for c in (0, 2, 1) for b in range(1, 1025) if per_item(c, b) <= budget]
        first_chunk = next((c for c in (0, 2, 1) if any(x == c for x, _ in fitting)), None)
        if first_chunk is None:
            with pytest.raises(ConfigError, match=r"one evaluation item needs .* GiB, over the .* GiB budget"):
                memory.fit_evaluation(with_budget(CONFIG, budget), 3, 3200, chunk_at, log=lambda _: None)
            continue
        widest = max(b for c, b in fitting if c == first_chunk)
        chunk, batch, program = memory.fit_evaluation(with_budget(CONFIG, budget), 3, 3200, chunk_at, log=lambda _: None)
        assert (chunk, batch) == (first_chunk, widest), budget
        assert memory.program_bytes(program) == per_item(chunk, batch)
    # A batch set by hand: compiled once at the config's sizes ("auto" models alone means all of them) and
    # refused when over the budget.
    fixed = dataclasses.replace(CONFIG, evaluate=dataclasses.replace(CONFIG.evaluate, batch=64))
    compiled_at = []
    compile_chunk = lambda chunk, batch: compiled_at.append((chunk, batch)) or chunk_at(chunk, batch)
    chunk, batch, program = memory.fit_evaluation(with_budget(fixed, per_item(0, 64)), 3, 3200, compile_chunk)
    assert (chunk, batch, memory.program_bytes(program)) == (0, 64, per_item(0, 64))
    with pytest.raises(ConfigError, match=r"^the evaluation at evaluate.batch = 64 needs .* GiB per device, over the .* "
                                          r"GiB budget .*; expected a smaller evaluate.batch"):
        memory.fit_evaluation(with_budget(fixed, per_item(0, 64) - 1), 3, 3200, compile_chunk)
    assert compiled_at == [(0, 64), (0, 64)]
