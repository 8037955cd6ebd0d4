"""Shared fixtures: the real data directory (read-only) and its splits."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

# One persistent XLA compilation cache for the whole test session, subprocesses included: most tests
# compile the same small programs (the MICRO sweep's step, init, validation), and XLA:CPU takes seconds
# for each. A fresh directory per session, so that no test depends on what an earlier run compiled.
_CACHE = tempfile.mkdtemp(prefix="clstm-jax-test-xla-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
jax.config.update("jax_compilation_cache_dir", _CACHE)  # in case jax was imported before these lines
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
atexit.register(shutil.rmtree, _CACHE, True)
# The suite's programs are small and most are compiled once, so LLVM's optimisation is much of their
# cost. Level 1 of the CPU backend's 0-3 (default 2) compiled the tiny study's training step in 7.0 s
# instead of 11.1 s, and ran the whole study fixture in 121 s instead of 141 s; level 0 compiles faster
# still but runs the evaluations twice as slowly (201 s). Subprocesses inherit the flag. What the tests
# compare is unchanged: values against references with tolerances, bit-identity between runs made with
# the same flags.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=1".strip()

ROOT = Path(__file__).resolve().parents[1]
PAPER_SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")
MICRO = [  # the smallest sweep that runs the whole pipeline: seconds per test
    "preset=tiny", "features.hop_length=6000", "model.frames=3", "model.channels=2", "model.dense=8",
    "train.batch_size=4", "train.validation_examples=8", "train.validate_every=2",
]


def micro(*overrides, experiment="fusion.toml"):
    """The config of sweeps/<experiment> at the MICRO size, then `overrides`."""
    from clstm_jax.config import load_config

    return load_config(ROOT / "sweeps" / experiment, [*MICRO, *overrides])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets: $CLSTM_JAX_DATA, else ../shared/data beside the project. Never written to."""
    path = Path(os.environ.get("CLSTM_JAX_DATA") or ROOT.parent / "shared" / "data")
    if not (path / "mnist").is_dir() or not (path / "fsdd" / "recordings").is_dir():
        pytest.fail(f"the tests need the datasets: set CLSTM_JAX_DATA (looked in {path})")
    return path


@pytest.fixture(scope="session")
def paper_splits(data_dir):
    from clstm_jax.data.splits import load_splits

    return load_splits(data_dir, PAPER_SPEAKERS)
