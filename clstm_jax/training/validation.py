"""Validation during training: a fixed subset at each model's own SNRs, and each model's best state kept."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.config import Config
from clstm_jax.core import distributed
from clstm_jax.data.features import BinStats, make_batch
from clstm_jax.data.splits import sample_pairs
from clstm_jax.model.families import apply, concat, split
from clstm_jax.model.multi_model import over_models
from clstm_jax.training import programs
from clstm_jax.training.device_data import SplitArrays
from clstm_jax.training.keys import VALIDATION, purpose_key
from clstm_jax.training.run_dir import RunFiles
from clstm_jax.training.stacking import Models, group_states

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over the ten digits, where training starts
# A mean training loss this many times chance's is a diverged model, not one still learning: the micro
# sweep at learning rate 1e6 averaged 2e13-6e13 over its first two steps (tests/test_sweep.py).
DIVERGED = 100


def validation_batch(split: SplitArrays, n: int, seed: int) -> tuple:
    """A fixed subset of n validation pairs: (images, waves, lengths, labels), host-chosen once."""
    image_idx, audio_idx, labels = sample_pairs(purpose_key(seed, VALIDATION), split.table, n)
    return split.images[image_idx], split.waves[audio_idx], split.wave_lengths[audio_idx], labels


def correct_counts(params: dict, models: dict[str, Models], pairs: tuple, pairs_index: jax.Array, counted: jax.Array,
                   stats: BinStats | None, config: Config, groups: int = 1) -> jax.Array:
    """Correct predictions per model (models,) on one chunk of validation pairs at each model's own SNRs.

    params, models: keyed by family group (clstm_jax/training/stacking.py); the counts follow the models' order.
    counted: bool (pairs,), False for the pairs a last chunk repeats to keep its shape (programs.chunks).
    Noise keys depend on the chunk only, so every model sees the same draws. stats: see SplitArrays.
    """
    images, waves, lengths, labels = pairs
    key = jax.random.fold_in(purpose_key(config.train.seed, VALIDATION), pairs_index)

    def model_correct(group, params, masks, audio_snr, visual_snr):
        image, spectrogram = make_batch(key, images, waves, lengths, audio_snr, visual_snr, config.features, stats)
        logits = apply(params, masks, image, spectrogram, config.model, group)  # (B, T, 10)
        return jnp.sum((jnp.argmax(logits[:, -1], axis=-1) == labels) & counted)

    return concat({group: over_models(partial(model_correct, group), (params[group], m.masks, m.audio_snr, m.visual_snr),
                                      config.train.model_chunk, groups) for group, m in models.items()})


def chunk_size(config: Config) -> int:
    """Validation pairs per call: four training batches, at most all of them."""
    return min(config.train.batch_size * 4, config.train.validation_examples)


def chunk_args(params: dict, models: dict[str, Models], pairs: tuple, stats: BinStats | None,
               chunk: programs.Chunk, size: int) -> tuple:
    """The counting program's arguments for one chunk of the (placed) validation pairs."""
    return (params, models, tuple(x[chunk.ids] for x in pairs), chunk.start // size,
            np.arange(len(chunk.ids)) < chunk.size, stats)


def counting_program(config: Config, placement: programs.Placement, state: dict, models: dict[str, Models],
                     pairs: tuple, stats: BinStats | None) -> programs.Program:
    """correct_counts compiled once for every chunk of the validation pairs (the last one wraps round)."""
    params = {group: gs["params"] for group, gs in group_states(state).items()}
    size = chunk_size(config)
    args = chunk_args(params, models, pairs, stats, programs.chunks(len(pairs[-1]), size)[0], size)
    return programs.fixed(partial(correct_counts, config=config, groups=placement.groups), config, args)


def keep_best(state: dict, accuracy: jax.Array) -> dict:
    """Keep each model's parameters where its validation accuracy (models,) improved; reset the loss sum
    (jit this)."""
    groups = group_states(state)
    accuracy = split(accuracy, {group: gs["best_accuracy"].shape[0] for group, gs in groups.items()})
    new = {}
    for group, gs in groups.items():
        improved = accuracy[group] > gs["best_accuracy"]
        pick = lambda new, old: jnp.where(improved.reshape(-1, *([1] * (new.ndim - 1))), new, old)
        new[group] = {
            **gs,
            "best_params": jax.tree.map(pick, gs["params"], gs["best_params"]),
            "best_accuracy": jnp.where(improved, accuracy[group], gs["best_accuracy"]),
            "best_step": jnp.where(improved, state["step"], gs["best_step"]),
            "loss_sum": jnp.zeros_like(gs["loss_sum"]),
        }
    return {**state, **new}


def check_loss(loss: np.ndarray, names: list[str], step: int, steps: int) -> None:
    """Stop the run (FloatingPointError: one line, exit 2) when a model's mean training loss over the last
    `steps` steps is not finite or has grown to DIVERGED x chance's, before that step's checkpoint is written."""
    bad = [k for k, value in enumerate(loss) if not (np.isfinite(value) and value < DIVERGED * CHANCE_LOSS)]
    if not bad:
        return
    shown = ", ".join(f"{names[k]} ({loss[k]:.3g})" for k in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    what = "is not finite" if not np.all(np.isfinite(loss[bad])) else f"grew over {DIVERGED} x chance's {CHANCE_LOSS:.2f}"
    raise FloatingPointError(
        f"training diverged at step {step}: the mean loss of steps {step - steps + 1}-{step} {what} for {shown}; "
        f"stopped before the checkpoint of step {step} (earlier ones are kept). Expected a smaller train.learning_rate "
        "(in a new --out: it is part of the run's config)")


@dataclass(frozen=True)
class Validator:
    """A sweep's validation: what it reads besides the state, fixed for the sweep. Calling it measures each
    model's validation accuracy, keeps each model's best state, and writes one metrics line (with the median
    seconds of a training step since the last one, which `clstm-jax power` prices a study with), the
    accuracies on the TensorBoard `board` (tensorboard.Board) and one progress line on `bar`."""

    models: dict
    pairs: tuple  # the placed validation pairs (validation_batch)
    stats: BinStats | None
    count_fn: programs.Program  # counting_program
    best_fn: Callable  # keep_best, jitted
    config: Config
    names: list[str]
    files: RunFiles
    bar: Any  # tqdm
    board: Any = None

    def __call__(self, state: dict, steps_since: int, step_seconds: float | None = None) -> dict:
        step = int(state["step"])
        loss = np.concatenate([distributed.to_host(gs["loss_sum"]) for gs in group_states(state).values()]) / steps_since
        check_loss(loss, self.names, step, steps_since)
        accuracy = self.accuracy(state)
        state = self.best_fn(state, accuracy)
        accuracy = distributed.to_host(accuracy)  # a collective: every process takes part
        if distributed.is_primary():
            self.record(step, loss, accuracy, step_seconds)
        return state

    def accuracy(self, state: dict) -> jax.Array:
        """Each model's accuracy on the validation pairs, (models,)."""
        n, size = self.pairs[0].shape[0], chunk_size(self.config)
        params = {group: gs["params"] for group, gs in group_states(state).items()}
        correct = sum(self.count_fn(*chunk_args(params, self.models, self.pairs, self.stats, chunk, size))
                      for chunk in programs.chunks(n, size))
        return correct.astype(jnp.float32) / n

    def record(self, step: int, loss: np.ndarray, accuracy: np.ndarray, step_seconds: float | None) -> None:
        """The metrics line, the TensorBoard scalars and the progress line of one validation."""
        record = {"step": step, "loss": dict(zip(self.names, loss.tolist())),
                  "validation_accuracy": dict(zip(self.names, accuracy.tolist())),
                  **({"step_seconds": step_seconds} if step_seconds is not None else {})}
        with open(self.files.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None:
            self.board.validation(step, record["validation_accuracy"])
        best, worst = int(np.argmax(accuracy)), int(np.argmin(accuracy))
        self.bar.write(f"step {step}: validation accuracy best {accuracy[best]:.3f} ({self.names[best]}), "
                       f"worst {accuracy[worst]:.3f} ({self.names[worst]}); mean loss {loss.mean():.3f}")
