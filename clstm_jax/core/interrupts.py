"""Ctrl-C and SIGTERM anywhere in a command: one line saying where it stopped and how to go on, exit 130.

A checkpoint is complete or absent (orbax commits one by renaming it, and a restore verifies its checksum),
so training may stop at any instant and a re-run of the same command resumes from what is on disk.
An evaluation keeps its finished chunks (clstm_jax/evaluation/resumable.py), so a re-run continues it too. What this
module adds:

- `install()`, called by the `clstm-jax` entry point (clstm_jax/__main__.py) before anything else is
  imported, turns SIGTERM into the same KeyboardInterrupt as Ctrl-C, so that one arriving while the
  modules are still importing is handled too;
- `doing(what)` names what a command is doing, for the line that says where it stopped;
- a signal that lands inside a garbage-collector callback (JAX installs one) is sent again 50 ms later:
  Python prints an exception raised there as "Exception ignored", drops it, and the job would run on;
- `check()` re-raises an interrupt that was dropped anyway (in a `__del__`, say). Long loops call it once
  per iteration;
- `deferred()` holds an interrupt until a block ends: orbax drives an asyncio loop from the main thread
  while it reads or writes a checkpoint, and an interrupt raised inside it (in `call_soon_threadsafe`)
  left a traceback from its threads in about one try in ten; libsndfile reads a recording through cffi
  callbacks, where Python prints an exception as "Exception ignored" and drops it;
- a second Ctrl-C stops the process at once;
- the process ends with `os._exit(130)` (and `os._exit(2)` after a user-facing error): the interpreter's
  normal teardown, with XLA's and tensorstore's threads still running, crashed in some tries, and after a
  failed checkpoint read it printed orbax's abandoned coroutines as "Exception ignored" tracebacks.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading

_doing = "starting"
_requested = False
_deferring = 0  # depth of `deferred()` blocks
_pending = False  # an interrupt arrived in a deferred block and is raised when it ends
_kept: list[BaseException] = []  # see keep_until_exit
RESUME = "what was written before is kept: re-run the same command to go on"


def _in_gc_callback(frame) -> bool:
    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _on_signal(signum, frame) -> None:
    global _requested, _pending
    if _requested:  # a second signal while the first is being handled: stop now
        print(f"clstm-jax: stopped at once while {_doing}; {RESUME}", file=sys.stderr, flush=True)
        os._exit(130)
    if _in_gc_callback(frame):  # Python would print and drop an exception raised here: send it again shortly
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    _requested = True
    if _deferring:
        _pending = True  # raised when the deferred block ends
        return
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (a scheduler's SIGTERM stops a job as Ctrl-C does)."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def check() -> None:
    """Raise KeyboardInterrupt when a signal came whose exception Python swallowed (see the module's docstring)."""
    if _requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred():
    """Hold an interrupt that arrives in the block until it ends, then raise it (usable as a decorator)."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and _pending:
        _pending = False
        raise KeyboardInterrupt


def doing(what: str) -> None:
    """Name what the command does from now on ("loading the data", "evaluating", ...), for the interrupt's line."""
    global _doing
    _doing = what


def keep_until_exit(err: BaseException) -> None:
    """Keep an interrupt, and with its traceback the frames and arrays it stopped in, alive until the process
    ends with os._exit: freeing them while XLA's threads still used their buffers aborted the process once
    ("double free or corruption", exit -6) after the interrupt's line was printed."""
    _kept.append(err)


def message(err: BaseException) -> str:
    """The interrupt's line: its own words when it has some (the sweep's name the step and checkpoint), else where."""
    return f"clstm-jax: {str(err) or f'interrupted while {_doing}; {RESUME}'}"
