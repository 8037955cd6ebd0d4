"""TensorBoard event files beside metrics.jsonl, written with tensorboardX (no TensorFlow needed).

A sweep writes, into RUN/tensorboard: per model and step the training loss (`loss/<model>`), per validation
each model's accuracy (`validation_accuracy/<model>`), and per step the learning rate, the step's seconds and
the model-examples per second. `report` adds its figures as images (REPORT/tensorboard). Look at them with
`tensorboard --logdir runs/`. `runtime.tensorboard = false` turns it off; metrics.jsonl is written either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LOG_DIR = "tensorboard"


class Board:
    """A run's TensorBoard writer, or a no-op when disabled (and on every process but the first)."""

    def __init__(self, logdir: Path, enabled: bool = True):
        self.writer = None
        if enabled:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(logdir), flush_secs=30)

    def training_step(self, step: int, losses: dict[str, float], learning_rate: float, seconds: float | None,
                      examples_per_second: float | None) -> None:
        """One training step: each model's loss, the learning rate, and (after the first, compiling step) its time."""
        if self.writer is None:
            return
        for name, loss in losses.items():
            self.writer.add_scalar(f"loss/{name}", loss, step)
        self.writer.add_scalar("train/learning_rate", learning_rate, step)
        if seconds is not None:
            self.writer.add_scalar("train/step_seconds", seconds, step)
            self.writer.add_scalar("train/model_examples_per_second", examples_per_second, step)

    def validation(self, step: int, accuracy: dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in accuracy.items():
            self.writer.add_scalar(f"validation_accuracy/{name}", value, step)

    def figures(self, pngs: list[Path], step: int) -> None:
        """The report's figures as images (tag: the file's name)."""
        if self.writer is None:
            return
        import matplotlib.image

        for png in pngs:
            image = matplotlib.image.imread(png)  # (H, W, 3 or 4) floats in [0, 1]
            self.writer.add_image(png.stem, np.asarray(image[..., :3]), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
