"""Where the data lives: `--data-dir`, then `$CLSTM_JAX_DATA`, then a per-user cache.

The first of the three that is *given* is used; an explicit choice never
silently falls back to another directory. Layout inside the data directory:

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    fsdd/recordings/{digit}_{speaker}_{index}.wav
"""

from __future__ import annotations

import os
from pathlib import Path

from clstm_jax.core.errors import DataError

ENV_VAR = "CLSTM_JAX_DATA"

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def cache_dir() -> Path:
    """The per-user cache directory (`$XDG_CACHE_HOME/clstm_jax`, else `~/.cache/clstm_jax`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clstm_jax"


def choose_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data directory and where the choice came from (flag, environment or cache)."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "--data-dir"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    return cache_dir(), "the per-user cache (no --data-dir, no $" + ENV_VAR + ")"


def mnist_path(root: Path, name: str) -> Path | None:
    """The existing `.gz` or raw file for one MNIST file name, or None."""
    for candidate in (root / "mnist" / f"{name}.gz", root / "mnist" / name):
        if candidate.is_file():
            return candidate
    return None


def missing_parts(root: Path) -> list[str]:
    """What a data directory lacks, as paths relative to it (empty when complete)."""
    missing = [f"mnist/{name}[.gz]" for name in MNIST_FILES if mnist_path(root, name) is None]
    if not (root / "fsdd" / "recordings").is_dir():
        missing.append("fsdd/recordings/")
    return missing


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory to read, or a DataError saying what was looked for, where, and how to fetch it."""
    root, source = choose_data_dir(data_dir)
    missing = missing_parts(root)
    if missing:
        raise DataError(
            f"no dataset in {root} (chosen by {source}): missing {', '.join(missing)}. "
            f"Fetch it with `clstm-jax data fetch --data-dir {root}`, or point --data-dir "
            f"or ${ENV_VAR} at a directory that holds mnist/ and fsdd/recordings/."
        )
    return root
