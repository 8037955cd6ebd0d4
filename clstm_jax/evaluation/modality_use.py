"""Does a model use both inputs? Its accuracy with one input replaced by another digit's, or zeroed (SPEC 8b).

Every model of a run is scored at two points, its own training SNRs and the
clean corner (orig, orig), on the first `evaluate.point_examples` pairs of the
run's seeded evaluation draw with the evaluation's own noise
(`evaluate.evaluation_inputs`; the grid's `evaluate.examples` pairs are their
first ones), under five conditions:

- matched: the example as it is;
- audio mismatched: the recording replaced by that of `evaluate.other_digit`
  (the next example of the subset with another label, noisy at the same SNR);
- audio zeroed: the spectrogram exactly zero;
- image mismatched, image zeroed: the same for the image.

A model that uses a modality loses accuracy when that modality carries
another digit. Stored as RUN/eval/modality_use.npz and .csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from clstm_jax.core import interrupts
from clstm_jax.core.snr import ORIG, snr_label
from clstm_jax.evaluation import outcomes
from clstm_jax.evaluation.evaluate import EVAL_DIR, evaluation_inputs, other_digit
from clstm_jax.evaluation.resumable import KeptChunks, digest
from clstm_jax.evaluation.run import Run
from clstm_jax.model.clstm import ModelConfig
from clstm_jax.model.families import apply, concat, sizes, split
from clstm_jax.model.multi_model import over_models
from clstm_jax.training import programs

POINTS = ("training", "clean")
CONDITIONS = ("matched", "audio mismatched", "audio zeroed", "image mismatched", "image zeroed")
STEM = "modality_use"  # RUN/eval/modality_use.npz and .csv (clstm_jax/evaluation/outcomes.py)


@dataclass(frozen=True)
class ModalityUse:
    """correct: bool (models, points, conditions, examples); step: the evaluated checkpoint's training step."""

    names: tuple[str, ...]
    correct: np.ndarray
    labels: np.ndarray
    step: int

    @property
    def accuracy(self) -> np.ndarray:
        return self.correct.mean(axis=-1)

    def of(self, index: int, point: str, condition: str) -> np.ndarray:
        """Outcomes of model `index` at a point under a condition, bool (examples,)."""
        return self.correct[index, POINTS.index(point), CONDITIONS.index(condition)]

    def save(self, directory: Path, specs) -> None:
        """modality_use.npz and .csv (one row per model, point and condition), both or neither."""
        arrays = dict(names=np.array(self.names), labels=self.labels, step=self.step, points=np.array(POINTS),
                      conditions=np.array(CONDITIONS))
        rows = ([spec.name, spec.family, spec.fusion, spec.modalities, snr_label(spec.audio_snr),
                 snr_label(spec.visual_snr), spec.seed, point, *(snr_label(x) for x in point_snrs(spec, point)),
                 condition, int(self.correct[m, p, k].sum()), self.correct.shape[-1],
                 f"{self.correct[m, p, k].mean():.6f}"]
                for m, spec in enumerate(specs) for p, point in enumerate(POINTS)
                for k, condition in enumerate(CONDITIONS))
        header = ["model", "family", "fusion", "modalities", "train_audio_snr", "train_visual_snr", "seed", "point",
                  "test_audio_snr", "test_visual_snr", "condition", "correct", "examples", "accuracy"]
        outcomes.save(directory, STEM, "the modality-use measurement", self.correct, arrays, header, rows)


def point_snrs(spec, point: str) -> tuple[float, float]:
    """The test (audio, visual) SNRs of a point: the model's training SNRs, or clean."""
    return (spec.audio_snr, spec.visual_snr) if point == "training" else (ORIG, ORIG)


def load_modality_use(run_dir: str | Path) -> ModalityUse | None:
    """The stored measurement, or None when there is none."""
    path = Path(run_dir) / EVAL_DIR / f"{STEM}.npz"
    if not path.exists():
        return None
    correct, z = outcomes.load(path)
    return ModalityUse(tuple(z["names"].tolist()), correct, z["labels"], int(z["step"]))


def condition_inputs(images: jnp.ndarray, spectrograms: jnp.ndarray, labels: np.ndarray) -> dict:
    """condition -> (images, spectrograms): the examples with one input swapped for another digit's, or zeroed."""
    other = other_digit(labels)
    return {
        "matched": (images, spectrograms),
        "audio mismatched": (images, spectrograms[other]),
        "audio zeroed": (images, jnp.zeros_like(spectrograms)),
        "image mismatched": (images[other], spectrograms),
        "image zeroed": (jnp.zeros_like(images), spectrograms),
    }


def chunk_correct(params, masks, images, spectrograms, labels, model: ModelConfig, counts: dict[str, int],
                  model_chunk: int = 0, groups: int = 1) -> jax.Array:
    """Whether each model gets each example right: bool (models, examples). images, spectrograms: each
    model's own inputs, stacked on the model axis in the models' order; counts: models per family group."""
    right = lambda group, p, m, x, s: jnp.argmax(apply(p, m, x, s, model, group)[:, -1], axis=-1) == labels
    images, spectrograms = split(images, counts), split(spectrograms, counts)
    return concat({group: over_models(partial(right, group), (params[group], masks[group], images[group], spectrograms[group]),
                                      model_chunk, groups) for group in params})


def measure(run: Run, data_dir: str | None = None, progress: bool = True, keep: Path | None = None) -> ModalityUse:
    """Every model of the run at its training point and the clean corner, under every condition.

    Each model's inputs are stacked on the model axis and all models run in one program per call, as
    `evaluate` runs them (clstm_jax/training/programs.py): `evaluate.batch` examples per call, the models in chunks of
    `train.model_chunk` ("auto" sizes fitted as for the evaluation), split over the model mesh.
    keep: a folder (RUN/eval) to keep finished chunks in, as `evaluate` does.
    """
    cfg = run.config
    counts = sizes(run.params)
    interrupts.doing("measuring modality use")
    placement = programs.Placement.for_counts(*counts.values())
    params, masks = placement.per_model((run.params, {group: m.masks for group, m in run.models.items()}))
    n, M = cfg.evaluate.point_examples, len(run.specs)

    def point_inputs(point: str) -> tuple[dict, np.ndarray]:
        """condition -> (images, spectrograms) stacked over the models (each at its own SNRs), and the labels."""
        pairs = [(s.audio_snr, s.visual_snr) if point == "training" else (ORIG, ORIG) for s in run.specs]
        inputs = {pair: evaluation_inputs(run, *pair, None, data_dir, n) for pair in dict.fromkeys(pairs)}
        swapped = {pair: condition_inputs(*x) for pair, x in inputs.items()}
        stacked = {c: tuple(jnp.stack(z) for z in zip(*(swapped[pair][c] for pair in pairs))) for c in CONDITIONS}
        return stacked, next(iter(inputs.values()))[2]

    def chunk_args(stacked: dict, condition: str, labels: np.ndarray, ids: np.ndarray) -> tuple:
        images, spectrograms = stacked[condition]
        return (params, masks, *placement.per_model((images[:, ids], spectrograms[:, ids])), placement.shared(labels[ids]))

    with tqdm(total=len(POINTS) * len(CONDITIONS) * n, unit="item", disable=not progress, dynamic_ncols=True,
              desc=f"modality use ({M} models x {len(POINTS)} points x {len(CONDITIONS)} conditions x {n} examples)") as bar:
        bar.set_postfix_str("compiling the program")
        inputs = {POINTS[0]: point_inputs(POINTS[0])}
        stacked, labels = inputs[POINTS[0]]
        program = programs.measurement(partial(chunk_correct, model=cfg.model, counts=counts), cfg, placement,
                                       lambda b: chunk_args(stacked, CONDITIONS[0], labels, np.arange(min(b, n))),
                                       max(counts.values()) // placement.groups, n, log=bar.write)
        batch = min(program.config.evaluate.batch, n)  # the program's shape: a batch over n was compiled at n
        calls = [chunk for p in range(len(POINTS)) for k in range(len(CONDITIONS))
                 for chunk in programs.chunks(n, batch, where=(p, k))]
        settings = {"models": list(run.names), "step": run.step, "examples": n, "labels": digest(labels),
                    "seed": cfg.evaluate.seed, "batch": batch, "model_chunk": program.config.train.model_chunk}
        kept = KeptChunks(keep and keep / outcomes.partial_name(STEM), settings, (M, len(POINTS), len(CONDITIONS), n))

        def compute(chunk: programs.Chunk):
            nonlocal inputs
            point, condition = POINTS[chunk.where[0]], CONDITIONS[chunk.where[1]]
            if point not in inputs:
                inputs = {point: point_inputs(point)}
            return program(*chunk_args(inputs[point][0], condition, labels, chunk.ids))

        programs.measure_chunks(kept, calls, compute, bar, "measuring modality use")
    return ModalityUse(tuple(run.names), kept.outcomes, np.asarray(labels), run.step)
