"""Per-example outcomes on disk, for the grid evaluation and the modality-use measurement alike.

One STEM.npz holds the bool outcomes packed to bits (`correct_bits`, with `examples` to unpack them)
and the arrays that say what was measured; STEM.csv beside it has the same numbers, one row per model
and cell, for any tool. Both are written aside and moved in together (output.staged: a failure keeps
the previous pair), and the interrupted measurement's STEM.partial.npz (clstm_jax/evaluation/resumable.py)
goes once they are in place.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import numpy as np

from clstm_jax.core.output import staged


def partial_name(stem: str) -> str:
    """The file an interrupted measurement keeps its finished chunks in."""
    return f"{stem}.partial.npz"


def save(directory: Path, stem: str, what: str, correct: np.ndarray, arrays: dict, header: list[str],
         rows: Iterable[list]) -> None:
    """STEM.npz (correct packed to bits along its last axis, and `arrays`) and STEM.csv (header, rows)."""
    with staged(directory, what) as aside:
        np.savez(aside / f"{stem}.npz", correct_bits=np.packbits(correct, axis=-1), examples=correct.shape[-1],
                 **arrays)
        with open(aside / f"{stem}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    (directory / partial_name(stem)).unlink(missing_ok=True)


def load(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(correct as bool, the other arrays of the file) from a STEM.npz that `save` wrote."""
    with np.load(path) as z:
        arrays = {key: z[key] for key in z.files}
    correct = np.unpackbits(arrays.pop("correct_bits"), axis=-1, count=int(arrays["examples"])).astype(bool)
    return correct, arrays
