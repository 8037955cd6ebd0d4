"""A trained run as one compressed file to share: `publish(run_dir, out)` and `load_run(out)`.

The file (`.tar.xz`) is the run directory without what only training needs: its records (config,
data identity, models, feature statistics, metrics), its evaluation and report, and instead of the
orbax checkpoints (parameters, Adam state and best parameters of every model, about 4x the
parameters) each model's best-validation parameters in one `best_params.npz`. `load_run` opens the
file as it opens a run directory (clstm_jax/evaluation/run.py): it unpacks it once into the per-user cache.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

import jax
import numpy as np

from clstm_jax.core.errors import OutputError
from clstm_jax.core.output import check_writable
from clstm_jax.core.tensorboard import LOG_DIR
from clstm_jax.evaluation.run import PUBLISHED_PARAMS, PUBLISHED_SUFFIX, load_run

# Left out of a published run: training's state and logs, an interrupted job's leftovers, a held lock.
# Also left out at any depth: TensorBoard's event files (LOG_DIR: training's curves, the report's figures again).
LEFT_OUT = ("checkpoints", "unusable-checkpoints", "lock", "environment.jsonl", PUBLISHED_PARAMS)


def shared_files(run_dir: Path) -> list[Path]:
    """The run's files that a published run keeps, relative to run_dir, sorted."""
    kept = []
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if (path.is_file() and relative.parts[0] not in LEFT_OUT and LOG_DIR not in relative.parts
                and not relative.name.startswith(".") and not relative.name.endswith(".partial.npz")):
            kept.append(relative)
    return kept


def publish(run_dir: str | Path, out: str | Path) -> Path:
    """Write run_dir as one `.tar.xz` at `out` (refused if `out` exists); returns its path.

    The run must have a checkpoint; its best parameters are those `load_run` gives. A file written
    here reads back bit for bit (tests/test_publish.py)."""
    run_dir, out = Path(run_dir), Path(out)
    if not out.name.endswith(PUBLISHED_SUFFIX):
        raise OutputError(f"{out}: a published run is a {PUBLISHED_SUFFIX} file; expected a name ending in it")
    if out.exists():
        raise OutputError(f"{out}: already exists; nothing was written (remove it, or choose another name)")
    check_writable(out.parent)
    run = load_run(run_dir)
    leaves = jax.tree_util.tree_flatten_with_path(run.params)[0]
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".publishing-") as aside:
        params = Path(aside) / PUBLISHED_PARAMS
        np.savez(params, step=np.int64(run.step), **arrays)
        partial = Path(aside) / out.name
        with tarfile.open(partial, "w:xz", preset=9) as archive:
            for relative in shared_files(run_dir):
                archive.add(run_dir / relative, arcname=str(relative))
            archive.add(params, arcname=PUBLISHED_PARAMS)
        os.replace(partial, out)
    return out

