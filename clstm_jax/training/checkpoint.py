"""Orbax checkpoints of a run: the whole stacked sweep state, saved periodically and at the end.

Each checkpoint carries a checksum of its arrays (CHECKSUM_FILE in the step's folder), which a restore
verifies. A checkpoint that cannot be read or fails its checksum is named in one line and the next older
one is tried; nothing is deleted. Checkpoints written before checksums existed restore unverified.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sys
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax import lax

from clstm_jax.core import distributed, interrupts
from clstm_jax.core.errors import ConfigError, OutputError

CHECKSUM_FILE = "clstm_jax_checksum.json"


@interrupts.deferred()
def manager(run_dir: Path, keep: int = 2) -> ocp.CheckpointManager:
    """A synchronous CheckpointManager over `run_dir/checkpoints`, keeping the newest `keep` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    # One item of the standard handler: reading a checkpoint's tree (item_metadata) needs no registry then,
    # and orbax does not warn 'Item "default" ... could not be restored' on every load.
    return ocp.CheckpointManager(Path(run_dir).resolve() / "checkpoints", options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


KEPT = "the checkpoints already there are kept: make room and re-run the same command to resume"


@contextlib.contextmanager
def quiet_orbax():
    """Orbax and tensorstore log each failed read, often with a traceback per thread: the caller says it in one line."""
    loggers, hook = [logging.getLogger(name) for name in ("absl", "asyncio")], threading.excepthook
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    threading.excepthook = lambda args: None
    unraisable, sys.unraisablehook = sys.unraisablehook, lambda args: None  # orbax's abandoned read coroutines
    try:
        yield
    finally:
        gc.collect()  # collect those coroutines while their "Exception ignored" stays quiet
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        threading.excepthook, sys.unraisablehook = hook, unraisable


@contextlib.contextmanager
def writing(mngr: ocp.CheckpointManager, what: str):
    """Orbax writes from worker threads; when a write fails (a full disk), each thread logs its own
    traceback. Here they stay quiet, and the OS error becomes one OutputError naming the directory."""
    try:
        with quiet_orbax():
            yield
    except OSError as err:
        raise OutputError(f"{mngr.directory}: cannot write {what} ({err.strerror or err}); {KEPT}") from None
    except ValueError as err:  # tensorstore reports a failed write as a ValueError
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        raise OutputError(f"{mngr.directory}: cannot write {what} (no space left: RESOURCE_EXHAUSTED); {KEPT}") from None


@jax.jit
def checksums(state: dict) -> jax.Array:
    """One uint32 per array: the sum of its 32-bit words w_i times (2i + 1), modulo 2^32.

    Any single changed word changes it (the weights are odd), and as an integer sum it does not depend on
    the order of the additions, so every sharding of the state gives the same value.
    """
    def one(x):
        x = jnp.ravel(x)
        words = lax.bitcast_convert_type(x, jnp.uint32) if x.dtype.itemsize == 4 else x.astype(jnp.uint32)
        return jnp.sum(words * (2 * jnp.arange(x.size, dtype=jnp.uint32) + 1), dtype=jnp.uint32)

    return jnp.stack([one(x) for x in jax.tree.leaves(state)])


@interrupts.deferred()
def save(mngr: ocp.CheckpointManager, step: int, state: dict) -> None:
    """Save `state` (a pytree of arrays) as checkpoint `step`, then its checksum; returns when both are on disk."""
    sums = distributed.to_host(checksums(state)).tolist()
    with writing(mngr, f"the checkpoint of step {step}"):
        mngr.save(step, args=ocp.args.StandardSave(state), force=True)
        mngr.wait_until_finished()
        if distributed.is_primary():
            (Path(mngr.directory) / str(step) / CHECKSUM_FILE).write_text(json.dumps({"uint32_sums": sums}) + "\n")


@interrupts.deferred()
def close(mngr: ocp.CheckpointManager) -> None:
    """Wait for any write still running, then release the manager."""
    with writing(mngr, "the last checkpoint"):
        mngr.close()


def restore_step(mngr: ocp.CheckpointManager, step: int, abstract: dict) -> dict:
    """Checkpoint `step` restored into `abstract`'s shapes and shardings, and verified against its checksum."""
    stored = mngr.item_metadata(step)  # the saved tree's structure
    if "params" in stored and set(abstract) == {"step", "masked"}:
        # Written before the family groups (clstm_jax/model/families.py): one masked stack, not keyed by group.
        flat = mngr.restore(step, args=ocp.args.StandardRestore({**abstract["masked"], "step": abstract["step"]}))
        state = {"step": flat.pop("step"), "masked": flat}
    else:
        state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    recorded = Path(mngr.directory) / str(step) / CHECKSUM_FILE
    if recorded.exists():
        expected = json.loads(recorded.read_text())["uint32_sums"]
        if distributed.to_host(checksums(state)).tolist() != expected:
            raise ValueError("its arrays do not match the checksum recorded when it was written")
    return state


UNREADABLE = (OSError, ValueError, KeyError, TypeError)  # what orbax and tensorstore raise on damaged files


@interrupts.deferred()
def restore_latest(mngr: ocp.CheckpointManager, like: dict, log=print, set_aside: Path | None = None) -> dict | None:
    """The newest intact checkpoint, restored into arrays shaped and sharded like `like`; None when there is none.

    A checkpoint that cannot be read or fails its checksum is named (through `log`, one line each) and the
    next older one is tried; when every one fails, ConfigError says what to do. Nothing is deleted: with
    `set_aside` (a resume, which will write checkpoints again), unusable ones are moved into that folder,
    so that new checkpoints never mix with them.
    """
    steps = sorted(mngr.all_steps(), reverse=True)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    for k, step in enumerate(steps):
        try:
            with quiet_orbax():
                state = restore_step(mngr, step, abstract)
        except Exception as err:  # orbax wraps tensorstore's read errors in a bare Exception
            if not isinstance(err, UNREADABLE) and not isinstance(err.__cause__, UNREADABLE):
                raise
            err = err.__cause__ if isinstance(err.__cause__, UNREADABLE) else err
            reason = " ".join(str(err).split())[:160]
            older = f"trying step {steps[k + 1]}" if k + 1 < len(steps) else "no older checkpoint is left"
            log(f"checkpoint of step {step} in {mngr.directory} cannot be used ({type(err).__name__}: {reason}); {older}")
            continue
        if set_aside is not None and k > 0:
            distributed.barrier("checkpoints read")  # every process has read before the primary moves folders
            if distributed.is_primary():
                set_aside.mkdir(parents=True, exist_ok=True)
                for bad in steps[:k]:
                    (Path(mngr.directory) / str(bad)).rename(set_aside / str(bad))
                log(f"resuming from step {step}; the unusable checkpoint(s) of step {', '.join(map(str, steps[:k]))} "
                    f"moved to {set_aside}")
            distributed.barrier("checkpoints set aside")
            mngr.reload()
        return state
    if not steps:
        return None
    raise ConfigError(f"{mngr.directory}: none of its {len(steps)} checkpoint(s) can be used (each named above); "
                      "they are kept as they are: move the run aside and train again, or restore the folder from a backup")
