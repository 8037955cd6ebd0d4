"""Orbax checkpoints of a run: the whole stacked sweep state, saved periodically and at the end."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from clstm_jax.output import OutputError


def manager(run_dir: Path, keep: int = 2) -> ocp.CheckpointManager:
    """A synchronous CheckpointManager over `run_dir/checkpoints`, keeping the newest `keep` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(Path(run_dir).resolve() / "checkpoints", options=options)


KEPT = "the checkpoints already there are kept: make room and re-run the same command to resume"


@contextlib.contextmanager
def writing(mngr: ocp.CheckpointManager, what: str):
    """Orbax writes from worker threads; when a write fails (a full disk), each thread logs its own
    traceback. Here they stay quiet, and the OS error becomes one OutputError naming the directory."""
    absl, hook = logging.getLogger("absl"), threading.excepthook
    level = absl.level
    absl.setLevel(logging.CRITICAL)
    threading.excepthook = lambda args: None
    try:
        yield
    except OSError as err:
        raise OutputError(f"{mngr.directory}: cannot write {what} ({err.strerror or err}); {KEPT}") from None
    except ValueError as err:  # tensorstore reports a failed write as a ValueError
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        raise OutputError(f"{mngr.directory}: cannot write {what} (no space left: RESOURCE_EXHAUSTED); {KEPT}") from None
    finally:
        absl.setLevel(level)
        threading.excepthook = hook


def save(mngr: ocp.CheckpointManager, step: int, state: dict) -> None:
    """Save `state` (a pytree of arrays) as checkpoint `step`; returns when it is on disk."""
    with writing(mngr, f"the checkpoint of step {step}"):
        mngr.save(step, args=ocp.args.StandardSave(state), force=True)
        mngr.wait_until_finished()


def close(mngr: ocp.CheckpointManager) -> None:
    """Wait for any write still running, then release the manager."""
    with writing(mngr, "the last checkpoint"):
        mngr.close()


def restore_latest(mngr: ocp.CheckpointManager, like: dict) -> dict | None:
    """The newest checkpoint, restored into arrays shaped and sharded like `like`; None when there is none."""
    step = mngr.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    stored = mngr.item_metadata(step)  # the saved tree's structure (None where orbax cannot read it)
    if stored is not None and "params" in stored and set(abstract) == {"step", "masked"}:
        # Written before the family groups (clstm_jax/families.py): one masked stack, not keyed by group.
        flat = mngr.restore(step, args=ocp.args.StandardRestore({**abstract["masked"], "step": abstract["step"]}))
        return {"step": flat.pop("step"), "masked": flat}
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
