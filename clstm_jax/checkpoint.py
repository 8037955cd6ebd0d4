"""Orbax checkpoints of a run: the whole stacked sweep state, saved periodically and at the end."""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


def manager(run_dir: Path, keep: int = 2) -> ocp.CheckpointManager:
    """A synchronous CheckpointManager over `run_dir/checkpoints`, keeping the newest `keep` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(Path(run_dir).resolve() / "checkpoints", options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: dict) -> None:
    """Save `state` (a pytree of arrays) as checkpoint `step`; returns when it is on disk."""
    mngr.save(step, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager, like: dict) -> dict | None:
    """The newest checkpoint, restored into arrays shaped and sharded like `like`; None when there is none."""
    step = mngr.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
