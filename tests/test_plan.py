"""`clstm-jax plan`: FLOPs against a full unrolled compilation, memory against the arrays, the CLI's output."""

import json

import jax
import jax.numpy as jnp
import pytest
from conftest import MICRO, micro

from clstm_jax.cli import main
from clstm_jax.config.experiments import sweep_models
from clstm_jax.study.plan import build, calls, flops, plan, with_frames
from clstm_jax.training.device_data import load_checked_data

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)

# 6 frames: one past the fitted 3, 4 and 5. The CLI test prices the same config, so that its compilations
# come from the suite's compilation cache.
PRICED = ["model.frames=6", "features.hop_length=1500", "data.pad_length=7900"]


@pytest.fixture(scope="module")
def priced(data_dir):
    config = micro(*PRICED)
    return config, plan(config, sweep_models(config), data_dir, log=lambda line: None)


def test_flops_equal_a_full_unrolled_compilation(priced, data_dir):
    """The FLOPs extended from 3, 4 and 5 frames equal XLA's count of the program unrolled at all 6 frames."""
    config, result = priced
    data = load_checked_data(config, data_dir)
    for name in ("train step", "evaluation chunk"):
        unrolled = build(name, with_frames(config, 6), sweep_models(config), data, log=lambda _: None)
        assert result["programs"][name]["flops_per_call"] == pytest.approx(flops(unrolled.executable), rel=1e-4), name


def test_argument_memory_is_the_bytes_of_the_inputs(priced, data_dir):
    config, result = priced
    nbytes = lambda tree: sum(jnp.asarray(x).nbytes for x in jax.tree.leaves(tree))  # 64-bit numpy ints arrive as int32
    built = lambda name: build(name, config, sweep_models(config), load_checked_data(config, data_dir), log=lambda _: None).args
    assert result["programs"]["train step"]["argument_bytes"] == nbytes(built("train step"))
    params, masks, test, items, root = built("evaluation chunk")
    # The chunk never reads the test split's pair table (it is given the pairs), and jit drops unused arguments.
    assert result["programs"]["evaluation chunk"]["argument_bytes"] == \
        nbytes((params, masks, test._replace(table=None), items, root))
    assert result["programs"]["train step"]["calls"] == config.train.steps
    grid = len(config.evaluate.snrs) ** 2 * config.evaluate.examples
    validation = config.train.validation_examples * -(-config.train.steps // config.train.validate_every)
    assert result["programs"]["evaluation chunk"]["calls"] == -(-(grid + validation) // config.evaluate.batch)
    assert calls(config, sweep_models(config), study=True)["evaluation chunk"]["calls"] > \
        result["programs"]["evaluation chunk"]["calls"]  # a study adds modality use


def test_plan_cli_prints_json_and_refuses_a_negative_time(data_dir, capsys):
    overrides = sum((["--set", o] for o in (*MICRO, *PRICED)), [])
    timed = set()
    for calls_timed in (0, 1):  # --time 0 prices without running; --time 1 adds the measured rate
        assert main(["plan", "sweeps/fusion.toml", *overrides, "--json", "--time", str(calls_timed),
                     "--data-dir", str(data_dir)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert set(out["programs"]) == {"train step", "evaluation chunk"}
        assert [row["models"] for row in out["programs"].values()] == [3, 3]
        timed |= {(calls_timed, key) for row in out["programs"].values() for key in row
                  if key in ("seconds_per_call", "projected_seconds")}
    assert timed == {(1, "seconds_per_call"), (1, "projected_seconds")}
    assert main(["plan", "sweeps/fusion.toml", "--time", "-1", "--data-dir", str(data_dir)]) == 2
    assert "--time -1: expected a number of timed calls" in capsys.readouterr().err
