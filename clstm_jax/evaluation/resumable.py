"""Finished chunks of a long measurement kept on disk, so that an interrupted one continues where it stopped.

`evaluate` and modality use run a fixed sequence of chunks (items at fixed offsets, one program at one
size), each a pure function of its inputs: a chunk computed after a resume is the chunk an uninterrupted
run computes, bit for bit. So the outcomes of the finished chunks and their count are all a resume needs.
They are written beside the results (`eval/*.partial.npz`, aside then moved in: output.staged) at most every SAVE_SECONDS and when the measurement is interrupted, together with the settings
they were made with; a resume uses them only when the settings are the same, else it starts over and
says why. Saving the finished measurement removes them (`Evaluation.save`, `ModalityUse.save`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from clstm_jax.core import interrupts
from clstm_jax.core.output import staged

SAVE_SECONDS = 30.0


def digest(array: np.ndarray) -> str:
    """A short fingerprint of an array's bytes, for the settings of kept chunks (the labels of a draw)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


class KeptChunks:
    """Outcomes (bool, `shape`) filled chunk by chunk; `done` counts the finished chunks.

    path: where they are kept (None: nowhere, for a measurement that is not saved); settings: what they
    depend on (JSON-serialisable), compared on resume.
    """

    def __init__(self, path: Path | None, settings: dict, shape: tuple[int, ...],
                 log=lambda line: print(line, file=sys.stderr)):
        self.path, self.settings = path, json.loads(json.dumps(settings))
        self.outcomes, self.done = np.zeros(shape, bool), 0
        self.saved_at = time.monotonic()
        if path is None or not path.exists():
            return
        with np.load(path) as z:
            stored = json.loads(str(z["settings"]))
            if stored != self.settings:
                differing = sorted(k for k in set(stored) | set(self.settings) if stored.get(k) != self.settings.get(k))
                log(f"{path}: kept chunks made with other settings ({', '.join(differing)}); starting over")
                return
            self.outcomes = np.unpackbits(z["bits"], count=int(np.prod(shape))).astype(bool).reshape(shape)
            self.done = int(z["done"])
        log(f"{path}: resuming after {self.done} finished chunks")

    def finished(self, done: int) -> None:
        """`done` chunks are now finished (their outcomes written into `outcomes`); saved every SAVE_SECONDS."""
        self.done = done
        if time.monotonic() - self.saved_at >= SAVE_SECONDS:
            self.save()

    def save(self) -> None:
        if self.path is None or self.done == 0:
            return
        with staged(self.path.parent, "the finished chunks") as aside:  # a failure keeps the previous ones
            np.savez(aside / self.path.name, settings=json.dumps(self.settings, sort_keys=True), done=self.done,
                     bits=np.packbits(self.outcomes.ravel()))
        self.saved_at = time.monotonic()

    def interrupted(self, what: str, total: int) -> KeyboardInterrupt:
        """Save, and the interrupt saying how much is kept."""
        self.save()
        kept = f"{self.done} of {total} chunks kept in {self.path}" if self.path and self.done else "nothing kept"
        return KeyboardInterrupt(f"interrupted while {what} ({kept}); {interrupts.RESUME}")
