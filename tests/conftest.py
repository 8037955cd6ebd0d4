"""Shared fixtures: the real data directory (read-only) and its splits."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER_SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")


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
