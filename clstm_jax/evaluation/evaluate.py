"""Every model of a run x the test-SNR grid, in one jitted, vectorised program.

The evaluation set is a fixed subset of test pairs (or, with `full`, every
test pair), shared by every model and grid point. An item is one (example,
grid point); its noise key is fold_in(root, example, audio SNR bits, visual
SNR bits), so it depends on the example and the SNRs only: every model sees
the same noisy input, whatever the chunking, grid or model list, and one
example can be re-created exactly for inspection (`evaluation_inputs`).
Items are streamed in chunks of `evaluate.batch`; each chunk runs all models
(`multi_model.over_models`: vmapped, or in chunks of `train.model_chunk`, sharded over
devices) on the same inputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from clstm_jax.config import Config
from clstm_jax.core import compiler, interrupts
from clstm_jax.core.errors import ConfigError, RunError
from clstm_jax.core.snr import snr_label, snr_value
from clstm_jax.core.stats import wilson_interval
from clstm_jax.data.features import FeatureConfig, make_batch
from clstm_jax.data.splits import PairTable, sample_pairs
from clstm_jax.evaluation import outcomes
from clstm_jax.evaluation.resumable import KeptChunks, digest
from clstm_jax.evaluation.run import Run
from clstm_jax.model.clstm import ModelConfig
from clstm_jax.model.families import apply, concat, sizes
from clstm_jax.model.multi_model import over_models
from clstm_jax.model.spec import ModelSpec
from clstm_jax.training import programs
from clstm_jax.training.device_data import SplitArrays, load_checked_data, split_arrays
from clstm_jax.training.keys import TEST, TEST_NOISE, purpose_key
from clstm_jax.training.run_dir import check_run_data

EVAL_DIR = "eval"
STEM = "accuracy"  # RUN/eval/accuracy.npz and .csv (clstm_jax/evaluation/outcomes.py)


@dataclass(frozen=True)
class Evaluation:
    """Per-example correctness of every model at every grid point, and what it was measured on.

    correct: bool (models, audio SNRs, visual SNRs, examples); labels (examples,).
    """

    names: tuple[str, ...]
    audio_snrs: np.ndarray
    visual_snrs: np.ndarray
    correct: np.ndarray
    labels: np.ndarray
    mode: str  # "subset" or "full"
    step: int  # training step of the evaluated checkpoint
    item_seconds: float | None = None  # measured seconds per item (all models), compilation excluded: plans a study

    @property
    def counts(self) -> np.ndarray:
        return self.correct.sum(axis=-1)

    @property
    def examples(self) -> int:
        return self.correct.shape[-1]

    @property
    def accuracy(self) -> np.ndarray:
        return self.counts / self.examples

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Wilson 95% interval of each accuracy."""
        return wilson_interval(self.counts, self.examples)

    def save(self, directory: Path, specs: tuple[ModelSpec, ...]) -> None:
        """accuracy.npz (arrays) and accuracy.csv (one row per model and grid point), both or neither.

        specs: the evaluated models, in the order of `names` (their fields fill the CSV).
        """
        low, high = self.interval()
        arrays = dict(names=np.array(self.names), audio_snrs=self.audio_snrs, visual_snrs=self.visual_snrs,
                      accuracy=self.accuracy, correct=self.counts, ci_low=low, ci_high=high, labels=self.labels,
                      mode=self.mode, step=self.step,
                      **({"item_seconds": self.item_seconds} if self.item_seconds is not None else {}))
        rows = ([spec.name, spec.family, spec.fusion, spec.modalities, snr_label(spec.audio_snr),
                 snr_label(spec.visual_snr), spec.seed, snr_label(a), snr_label(v), int(self.counts[m, i, j]),
                 self.examples, f"{self.accuracy[m, i, j]:.6f}", f"{low[m, i, j]:.6f}", f"{high[m, i, j]:.6f}"]
                for m, spec in enumerate(specs) for i, a in enumerate(self.audio_snrs)
                for j, v in enumerate(self.visual_snrs))
        outcomes.save(directory, STEM, "the evaluation", self.correct, arrays, CSV_COLUMNS, rows)


CSV_COLUMNS = ("model", "family", "fusion", "modalities", "train_audio_snr", "train_visual_snr", "seed",
               "test_audio_snr", "test_visual_snr", "correct", "examples", "accuracy", "ci_low", "ci_high")


def load_evaluation(run_dir: str | Path) -> Evaluation:
    """The evaluation stored in RUN/eval/accuracy.npz."""
    path = Path(run_dir) / EVAL_DIR / f"{STEM}.npz"
    if not path.exists():
        raise RunError(f"{path}: no evaluation yet; run `clstm-jax evaluate {run_dir}`")
    correct, z = outcomes.load(path)
    return Evaluation(tuple(z["names"].tolist()), z["audio_snrs"], z["visual_snrs"], correct, z["labels"],
                      str(z["mode"]), int(z["step"]), float(z["item_seconds"]) if "item_seconds" in z else None)


def all_pairs(table: PairTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every same-label pair of a split: (image indices, recording indices, labels), label by label."""
    t = jax.tree.map(np.asarray, table)
    parts = []
    for label in range(len(t.image_count)):
        images = t.image_order[t.image_start[label]: t.image_start[label] + t.image_count[label]]
        waves = t.audio_order[t.audio_start[label]: t.audio_start[label] + t.audio_count[label]]
        i, a = np.meshgrid(images, waves, indexing="ij")
        parts.append((i.ravel(), a.ravel(), np.full(i.size, label)))
    return tuple(np.concatenate(column).astype(np.int32) for column in zip(*parts))


def test_examples(table: PairTable, examples: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed evaluation set: `examples` pairs drawn once from the test split (seeded), or all when None."""
    if examples is None:
        return all_pairs(table)
    return tuple(np.asarray(x) for x in sample_pairs(purpose_key(seed, TEST), table, examples))


@lru_cache(maxsize=2)
def test_set(config: Config, examples: int | None, data_dir: str | None, run_dir: Path | None = None) -> tuple:
    """(test split on device, image indices, recording indices, labels) of a run's evaluation set, loaded once.

    run_dir: refuse data other than the run's own (sweep.check_run_data). The split carries no
    BinStats: callers attach the run's (`Run.feature_stats`)."""
    data = load_checked_data(config, data_dir)
    if run_dir is not None:
        check_run_data(run_dir, data.identity, "evaluation")
    test = split_arrays(data.splits["test"])
    return (test, *test_examples(test.table, examples, config.evaluate.seed))


def grid_snrs(config: Config) -> np.ndarray:
    """The test-SNR grid's values (float32, "orig" as inf), in the config's order: both axes of the grid."""
    return np.array([snr_value(s, "evaluate.snrs") for s in config.evaluate.snrs], np.float32)


def snr_bits(snr: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(jnp.asarray(snr, jnp.float32), jnp.uint32)


def item_inputs(root: jax.Array, split: SplitArrays, image_idx, audio_idx, example_ids, audio_snr, visual_snr,
                features: FeatureConfig) -> tuple[jax.Array, jax.Array]:
    """Noisy inputs of a list of items (one example at one SNR pair each): images (n, 28, 28), spectrograms (n, T, F)."""

    def one(image_i, audio_i, example, a, v):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, example), snr_bits(a)), snr_bits(v))
        image, spec = make_batch(key, split.images[image_i][None], split.waves[audio_i][None],
                                 split.wave_lengths[audio_i][None], a, v, features, split.stats)
        return image[0], spec[0]

    return jax.vmap(one)(image_idx, audio_idx, example_ids, audio_snr, visual_snr)


@lru_cache(maxsize=1)
def item_inputs_program():
    """`item_inputs` jitted with the project's compiler options; built at first use, when the backend is chosen."""
    return compiler.jit(item_inputs, static_argnames="features")


def chunk_correct(params, masks, split: SplitArrays, items: tuple, root: jax.Array,
                  features: FeatureConfig, model: ModelConfig, model_chunk: int = 0, groups: int = 1) -> jax.Array:
    """Whether each model gets each item right: bool (models, items). items: image, audio, example, label, a, v.

    params, masks: keyed by family group (Run). The inputs are made once and shared by every model;
    model_chunk, groups: see multi_model.over_models.
    """
    image_idx, audio_idx, example_ids, labels, audio_snr, visual_snr = items
    images, spectrograms = item_inputs(root, split, image_idx, audio_idx, example_ids, audio_snr, visual_snr, features)
    right = lambda group, p, m: jnp.argmax(apply(p, m, images, spectrograms, model, group)[:, -1], axis=-1) == labels
    return concat({group: over_models(partial(right, group), (params[group], masks[group]), model_chunk, groups)
                   for group in params})


def evaluate(run: Run, examples: int | None = None, full: bool = False, data_dir: str | None = None,
             progress: bool = True, keep: Path | None = None) -> Evaluation:
    """Every model x every (audio, visual) grid point on the shared evaluation set.

    examples: subset size (default the config's evaluate.examples); full: every test pair, streamed.
    keep: a folder (RUN/eval) to keep finished chunks in, so that an interrupted evaluation continues where
    it stopped (clstm_jax/evaluation/resumable.py); `Evaluation.save` there removes them.
    """
    if not run.complete:
        raise RunError(f"{run.path}: trained {run.step} of {run.config.train.steps} steps; "
                          "finish it (re-run the same sweep command to resume) before evaluating")
    cfg = run.config.evaluate
    n_asked = None if full else (cfg.examples if examples is None else examples)
    if n_asked is not None and n_asked <= 0:
        raise ConfigError(f"--examples {n_asked}: expected a positive number of test pairs")
    interrupts.doing("loading the test data")
    test, image_idx, audio_idx, labels = test_set(run.config, n_asked, data_dir, run.path)
    test = test._replace(stats=run.feature_stats)
    snrs = grid_snrs(run.config)
    n, A, V, M = len(labels), len(snrs), len(snrs), len(run.specs)

    placement = programs.Placement.for_counts(*sizes(run.params).values())
    params, masks = placement.per_model((run.params, {group: m.masks for group, m in run.models.items()}))
    test = placement.shared(test)
    root = placement.shared(purpose_key(cfg.seed, TEST_NOISE))
    total = A * V * n

    def items_at(ids: np.ndarray) -> tuple:
        grid, example = ids // n, ids % n
        return image_idx[example], audio_idx[example], example, labels[example], snrs[grid // V], snrs[grid % V]

    interrupts.doing("compiling the evaluation")
    if progress:  # the bar starts after it
        print(f"compiling the evaluation ({M} models)", file=sys.stderr, flush=True)  # beside the bar
    chunk_fn = partial(chunk_correct, features=run.config.features, model=run.config.model)
    program = programs.measurement(chunk_fn, run.config, placement, lambda b: (params, masks, test, items_at(np.arange(b) % total), root),
                                   max(sizes(run.params).values()) // placement.groups, total,
                                   log=print if progress else lambda _: None)
    batch = program.config.evaluate.batch
    settings = {"models": list(run.names), "step": run.step, "mode": "full" if full else "subset", "examples": n,
                "labels": digest(labels), "snrs": snrs.tolist(), "seed": cfg.seed,
                "batch": batch, "model_chunk": program.config.train.model_chunk}
    kept = KeptChunks(keep and keep / outcomes.partial_name(STEM), settings, (M, total))  # item j: grid point j // n, example j % n
    with tqdm(total=total, desc=f"evaluate ({M} models x {A}x{V} SNRs x {n} examples)",
              unit="item", disable=not progress, dynamic_ncols=True) as bar:
        bar.set_postfix_str("first chunk")
        items, seconds = programs.measure_chunks(kept, programs.chunks(total, batch),
                                                 lambda chunk: program(params, masks, test, items_at(chunk.ids), root),
                                                 bar, "evaluating")
    correct = kept.outcomes
    return Evaluation(tuple(run.names), snrs, snrs, correct.reshape(M, A, V, n), labels,
                      "full" if full else "subset", run.step, seconds / items if items else None)


def other_digit(labels: np.ndarray) -> np.ndarray:
    """For each example, the index of the next example (cyclically) with another label: a fixed pairing
    with an input of another digit, e.g. to replace a recording with a mismatched one."""
    labels = np.asarray(labels)
    if np.unique(labels).size < 2:
        raise ValueError(f"all {labels.size} examples have label {labels[0]}: no other digit to pair with")
    n = labels.size
    out = np.empty(n, np.int64)
    for i in range(n):
        k = 1
        while labels[(i + k) % n] == labels[i]:
            k += 1
        out[i] = (i + k) % n
    return out


def evaluation_inputs(run: Run, audio_snr, visual_snr, example_ids=None, data_dir: str | None = None,
                      examples: int | None = None) -> tuple:
    """The exact inputs `evaluate` used (subset mode): (images, spectrograms, labels) at one SNR pair.

    example_ids: positions in the run's fixed test subset (default all of it).
    examples: the subset's size (default evaluate.examples). The seeded draw is the same for every size,
    so a larger subset begins with the smaller one, noise included (keys are per example and SNR pair),
    up to float32 rounding where XLA vectorises the two batch sizes differently (tests/test_study.py).
    SNRs may be numbers or "orig", on the grid or off it.
    """
    cfg = run.config.evaluate
    test, image_idx, audio_idx, labels = test_set(run.config, examples or cfg.examples, data_dir, run.path)
    test = test._replace(stats=run.feature_stats)
    ids = np.arange(len(labels)) if example_ids is None else np.atleast_1d(np.asarray(example_ids))
    if ids.min() < 0 or ids.max() >= len(labels):
        raise ConfigError(f"example {int(ids.max() if ids.max() >= len(labels) else ids.min())}: "
                         f"expected 0 <= example < {len(labels)} (evaluate.examples)")
    a = np.full(len(ids), snr_value(audio_snr, "audio_snr"), np.float32)
    v = np.full(len(ids), snr_value(visual_snr, "visual_snr"), np.float32)
    images, spectrograms = item_inputs_program()(purpose_key(cfg.seed, TEST_NOISE), test, image_idx[ids], audio_idx[ids],
                                           ids, a, v, features=run.config.features)
    return images, spectrograms, labels[ids]
