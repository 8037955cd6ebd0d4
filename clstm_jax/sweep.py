"""Many models, one program: the vmapped, sharded, checkpointed training sweep.

A sweep is a list of models (experiments.sweep_models) that differ in training SNRs,
masks (fusion depth, modalities) and seed. Their parameters and Adam states
are stacked on a leading model axis and one `jit(vmap(train_step))` trains
them all. Every step draws one clean batch of same-label pairs, shared by all
models, then each model's noise at its own SNRs.

Keys (one root, `train.seed`, split by purpose with fold_in):
- pairs of step s:            fold_in(fold_in(root, PAIRS), s), shared by every model;
- noise of model m at step s: fold_in(fold_in(fold_in(root, NOISE), seed_m), s);
- parameters of model m:      fold_in(fold_in(root, INIT), seed_m).
So models that differ only in fusion depth or SNR start from the same
parameters and see the same pairs and the same standard-normal noise draws
(scaled to their own SNR): a paired design, and a model trains identically
alone or inside any sweep.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from clstm_jax import checkpoint, distributed, memory
from clstm_jax.config import Config, ConfigError, ModelSpec, from_record
from clstm_jax.experiments import sweep_models
from clstm_jax.data.features import BinStats, bin_stats, load_bin_stats, make_batch, save_bin_stats
from clstm_jax.data.paths import resolve_data_dir
from clstm_jax.data.splits import DataSet, PairTable, Split, load_dataset, pair_table, sample_pairs
from clstm_jax.masks import make_masks
from clstm_jax.model import apply, init
from clstm_jax.train import make_optimizer, train_step

INIT, PAIRS, NOISE, VALIDATION, TEST, TEST_NOISE = 0, 1, 2, 3, 4, 5


class Interrupted(KeyboardInterrupt):
    """The user stopped a sweep (Ctrl-C); the message says where, and how to resume."""
MODEL_AXIS = "models"


class SplitArrays(NamedTuple):
    """A split on device: images uint8 (N, 28, 28), waves int16 (M, L), wave_lengths int32 (M,), its PairTable,
    and the training split's BinStats its spectrograms are standardised with (None unless
    features.normalization = "standardize")."""

    images: jax.Array
    waves: jax.Array
    wave_lengths: jax.Array
    table: PairTable
    stats: BinStats | None = None


class Models(NamedTuple):
    """Per-model constants, stacked on the model axis: masks, SNRs (inf = orig), noise keys."""

    masks: object
    audio_snr: jax.Array
    visual_snr: jax.Array
    noise_keys: jax.Array


def purpose_key(seed: int, purpose: int) -> jax.Array:
    """The root key of one purpose (INIT, PAIRS, NOISE, VALIDATION, TEST, TEST_NOISE), from a seed."""
    return jax.random.fold_in(jax.random.key(seed), purpose)


def split_arrays(split: Split, stats: BinStats | None = None) -> SplitArrays:
    return SplitArrays(
        jnp.asarray(split.images), jnp.asarray(split.waves), jnp.asarray(split.wave_lengths),
        pair_table(split.image_labels, split.wave_labels), stats,
    )


def feature_stats(config: Config, train: Split) -> BinStats | None:
    """The clean training split's per-bin statistics when the features are standardised, else None."""
    if config.features.normalization != "standardize":
        return None
    return bin_stats(train.waves, train.wave_lengths, config.features)


def run_feature_stats(files: RunFiles, config: Config, train: Split) -> BinStats | None:
    """feature_stats of a run: read from the run directory when stored there, else computed and stored
    (process 0 writes), so that evaluation standardises with exactly the training run's values."""
    if config.features.normalization != "standardize":
        return None
    if files.feature_stats.exists():
        return load_bin_stats(files.feature_stats)
    stats = feature_stats(config, train)
    if distributed.is_primary():
        save_bin_stats(files.feature_stats, stats)
    return stats


def check_shapes(config: Config, pad_length: int) -> None:
    """The model's frames and bins must be what the features produce; raised before training."""
    try:
        frames, bins = config.features.n_frames(pad_length), config.features.n_bins
    except ValueError as err:  # recordings shorter than the window
        raise ConfigError(f"data.pad_length: {err}") from None
    if (config.model.frames, config.model.bins) != (frames, bins):
        raise ConfigError(
            f"model.frames = {config.model.frames}, model.bins = {config.model.bins}, but the features give "
            f"{frames} frames of {bins} bins ({pad_length}-sample recordings, window {config.features.window_length}, "
            f"hop {config.features.hop_length}); set model.frames = {frames} and model.bins = {bins}"
        )


def load_checked_data(config: Config, data_dir: str | None = None) -> DataSet:
    """The config's splits and their identity, after checking that the model's frames and bins match the features."""
    root = resolve_data_dir(data_dir or config.data.data_dir or None)
    data = load_dataset(root, config.data.speakers or None, config.data.split_seed, config.data.pad_length or None,
                        config.data.verify)
    check_shapes(config, data.identity["pad_length"])
    return data


def init_params(config: Config, specs: list[ModelSpec]) -> dict:
    """Stacked initial parameters (models, ...), each from its model's seed."""
    seeds = jnp.array([spec.seed for spec in specs])
    init_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(purpose_key(config.train.seed, INIT), seeds)
    return init_models(init_keys, config.model)


# One compiled program: run eagerly, vmap(init) dispatches (and compiles) each random op on its own.
init_models = jax.jit(jax.vmap(init, in_axes=(0, None)), static_argnums=1)


def model_constants(config: Config, specs: list[ModelSpec]) -> Models:
    """The per-model constants (masks, SNRs, noise keys), stacked on the model axis."""
    shapes = jax.eval_shape(lambda key: init(key, config.model), jax.random.key(0))  # make_masks reads shapes only
    masks = [make_masks(shapes, config.model.visual_group, spec.fusion, spec.modalities) for spec in specs]
    seeds = jnp.array([spec.seed for spec in specs])
    return Models(
        jax.tree.map(lambda *m: jnp.stack(m), *masks),
        jnp.array([spec.audio_snr for spec in specs], jnp.float32),
        jnp.array([spec.visual_snr for spec in specs], jnp.float32),
        jax.vmap(jax.random.fold_in, in_axes=(None, 0))(purpose_key(config.train.seed, NOISE), seeds),
    )


def build_models(config: Config, specs: list[ModelSpec]) -> tuple[dict, Models]:
    """Stacked initial parameters and the per-model constants of a sweep."""
    return init_params(config, specs), model_constants(config, specs)


def initial_state(config: Config, params: dict) -> dict:
    """The whole sweep state: everything a resume needs, stacked on the model axis where per model."""
    optimizer = make_optimizer(config.train.learning_rate)
    n_models = jax.tree.leaves(params)[0].shape[0]
    return {
        "params": params,
        "opt_state": jax.vmap(optimizer.init)(params),
        "best_params": jax.tree.map(jnp.copy, params),  # its own buffers: the state is donated
        "best_accuracy": jnp.full(n_models, -1.0, jnp.float32),
        "best_step": jnp.zeros(n_models, jnp.int32),
        "loss_sum": jnp.zeros(n_models, jnp.float32),  # training loss summed since the last validation
        "step": jnp.zeros((), jnp.int32),
    }


def over_models(fn, per_model: tuple, chunk: int, groups: int = 1):
    """fn(*one model's slices) for every model; per_model: pytrees with a leading model axis.

    chunk = 0 vmaps all models at once. Otherwise the model axis is split into
    `groups` equal blocks (one per device of the mesh: vmapped, so each device
    keeps its own models) and within a block `chunk` models at a time are
    vmapped while the chunks follow one another (lax.map). Same numbers either
    way; on CPU a small working set is faster, on GPU one wide vmap.
    """
    if chunk == 0:
        return jax.vmap(fn)(*per_model)
    blocks = jax.tree.map(lambda x: x.reshape(groups, x.shape[0] // groups, *x.shape[1:]), per_model)
    out = jax.vmap(lambda block: jax.lax.map(lambda args: fn(*args), block, batch_size=chunk))(blocks)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)


def sweep_step(state: dict, train: SplitArrays, models: Models, config: Config, groups: int = 1) -> dict:
    """One Adam step of every model (jit this; state is donated). groups: devices of the model mesh."""
    step = state["step"]
    pair_key = jax.random.fold_in(purpose_key(config.train.seed, PAIRS), step)
    image_idx, audio_idx, labels = sample_pairs(pair_key, train.table, config.train.batch_size)  # (B,) each
    images, waves, lengths = train.images[image_idx], train.waves[audio_idx], train.wave_lengths[audio_idx]
    optimizer = make_optimizer(config.train.learning_rate)

    def model_step(params, opt_state, masks, audio_snr, visual_snr, noise_key):
        image, spectrogram = make_batch(jax.random.fold_in(noise_key, step), images, waves, lengths,
                                        audio_snr, visual_snr, config.features, train.stats)
        return train_step(params, opt_state, masks, image, spectrogram, labels, config.model, optimizer)

    per_model = (state["params"], state["opt_state"], models.masks, models.audio_snr, models.visual_snr, models.noise_keys)
    params, opt_state, loss = over_models(model_step, per_model, config.train.model_chunk, groups)  # loss (models,)
    return {**state, "params": params, "opt_state": opt_state, "loss_sum": state["loss_sum"] + loss, "step": step + 1}


def validation_batch(split: SplitArrays, n: int, seed: int) -> tuple:
    """A fixed subset of n validation pairs: (images, waves, lengths, labels), host-chosen once."""
    image_idx, audio_idx, labels = sample_pairs(purpose_key(seed, VALIDATION), split.table, n)
    return split.images[image_idx], split.waves[audio_idx], split.wave_lengths[audio_idx], labels


def correct_counts(params: dict, models: Models, pairs: tuple, pairs_index: jax.Array, stats: BinStats | None,
                   config: Config, groups: int = 1) -> jax.Array:
    """Correct predictions per model (models,) on one chunk of validation pairs at each model's own SNRs.

    Noise keys depend on the chunk only, so every model sees the same draws. stats: see SplitArrays.
    """
    images, waves, lengths, labels = pairs
    key = jax.random.fold_in(purpose_key(config.train.seed, VALIDATION), pairs_index)

    def model_correct(params, masks, audio_snr, visual_snr):
        image, spectrogram = make_batch(key, images, waves, lengths, audio_snr, visual_snr, config.features, stats)
        logits = apply(params, masks, image, spectrogram, config.model)  # (B, T, 10)
        return jnp.sum(jnp.argmax(logits[:, -1], axis=-1) == labels)

    per_model = (params, models.masks, models.audio_snr, models.visual_snr)
    return over_models(model_correct, per_model, config.train.model_chunk, groups)


def model_mesh(n_models: int) -> Mesh:
    """A 1-D mesh over as many devices as divide the model count evenly (so no model is padded)."""
    return Mesh(np.array(distributed.devices_per_process(n_models)), (MODEL_AXIS,))


def shard_state(state: dict, mesh: Mesh) -> dict:
    """Put per-model leaves (leading model axis) across the mesh, scalars replicated."""
    per_model = NamedSharding(mesh, PartitionSpec(MODEL_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: distributed.to_global(x, per_model if x.ndim else replicated), state)


@dataclass(frozen=True)
class RunFiles:
    """The files of a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def models(self) -> Path:
        return self.root / "models.json"

    @property
    def feature_stats(self) -> Path:
        return self.root / "feature_stats.npz"

    @property
    def data(self) -> Path:
        return self.root / "data.json"


def config_record(config: Config) -> dict:
    return json.loads(json.dumps(asdict(config)))


def claim_run_dir(run_dir: Path, config: Config, data_identity: dict) -> bool:
    """Write the resolved config and the data's identity into a new run directory, or check that they
    match an existing one.

    Returns True when resuming. A different config or dataset is refused and nothing in the directory
    is touched. Every process reads before process 0 writes, so all of them take the same branch.
    """
    files = RunFiles(run_dir)
    record = config_record(config)
    stored = None  # the stored config, keys added since it was written at their defaults
    if files.config.exists():
        stored = config_record(from_record(json.loads(files.config.read_text()), str(files.config)))
    distributed.barrier("claim_run_dir")
    if stored is not None:
        if stored != record:
            differing = sorted(diff_keys(stored, record))
            raise ConfigError(
                f"{run_dir} holds a run with a different config (differs in {', '.join(differing)}); "
                "nothing there was changed. Use a new --out directory, or re-run with the same config to resume."
            )
        check_run_data(run_dir, data_identity, "resume")
        return True
    if distributed.is_primary():
        run_dir.mkdir(parents=True, exist_ok=True)
        files.config.write_text(json.dumps(record, indent=2) + "\n")
        files.data.write_text(json.dumps(data_identity, indent=2) + "\n")
    return False


def check_run_data(run_dir: Path, data_identity: dict, action: str) -> None:
    """Refuse to `action` a run on data other than its own (RUN/data.json), naming what differs.

    Runs written before data.json existed are not checked."""
    path = RunFiles(run_dir).data
    if not path.exists():
        return
    stored = json.loads(path.read_text())
    if stored != data_identity:
        differing = sorted(diff_keys(stored, data_identity))
        raise ConfigError(
            f"{run_dir} was trained on other data than {action} would use (differs in {', '.join(differing)}; "
            f"the run's record: {path}); nothing there was changed. Point --data-dir at the run's data."
        )


def diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += diff_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.append(prefix + key)
    return keys


def run_sweep(config: Config, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
              specs: list[ModelSpec] | None = None) -> dict:
    """Train every model into run_dir (resuming from its latest checkpoint); returns the final state.

    specs: the models; default the config's (`experiments.sweep_models`; `study` passes its own list).
    """
    run_dir = Path(run_dir)
    specs = specs if specs is not None else sweep_models(config)
    data = load_checked_data(config, data_dir)
    splits = data.splits
    resuming = claim_run_dir(run_dir, config, data.identity)
    files = RunFiles(run_dir)
    primary = distributed.is_primary()
    if primary and not config.data.verify:
        print(f"data.verify = false: the data was not checked against the published checksums "
              f"(recorded in {files.data})")
    if primary:
        files.models.write_text(json.dumps([{"name": s.name, **asdict(s)} for s in specs], indent=2, default=str) + "\n")

    mesh = model_mesh(len(specs))
    params, models = build_models(config, specs)
    state = shard_state(initial_state(config, params), mesh)
    models = distributed.to_global(models, NamedSharding(mesh, PartitionSpec(MODEL_AXIS)))
    replicated = NamedSharding(mesh, PartitionSpec())
    stats = run_feature_stats(files, config, splits["train"])
    train = distributed.to_global(split_arrays(splits["train"], stats), replicated)
    validation = validation_batch(split_arrays(splits["validation"]), config.train.validation_examples, config.train.seed)
    validation = distributed.to_global(validation, replicated)

    mngr = checkpoint.manager(run_dir)
    if resuming and (restored := checkpoint.restore_latest(mngr, state)) is not None:
        state = restored
        if primary:
            keep_metrics_until(files.metrics, int(state["step"]))
            print(f"resuming {run_dir} from step {int(state['step'])} of {config.train.steps}", flush=True)
    elif primary and files.metrics.exists():
        files.metrics.unlink()

    groups = len(mesh.devices)
    step_program = lambda cfg: jax.jit(partial(sweep_step, config=cfg, groups=groups), donate_argnums=0)
    config = memory.fit_training(config, len(specs) // groups, lambda cfg: step_program(cfg).lower(state, train, models).compile(),
                                 log=print if primary else lambda _: None)
    step_fn = step_program(config)
    count_fn = jax.jit(partial(correct_counts, config=config, groups=len(mesh.devices)))  # index traced: one compile
    best_fn = jax.jit(keep_best, donate_argnums=0)
    total = config.train.steps
    start = int(state["step"])
    names = [s.name for s in specs]
    done = start
    try:
        with tqdm(total=total, initial=start, desc=f"sweep ({len(specs)} models)", unit="step", disable=not (progress and primary),
                  dynamic_ncols=True) as bar:
            steps_since = 0
            bar.set_postfix_str("compiling (the first step also compiles the program)")
            for step in range(start, total):
                state = step_fn(state, train, models)
                state["step"].block_until_ready()  # wait for the step, so that the rate and ETA are true
                steps_since += 1
                done = step + 1
                bar.update(1)
                bar.set_postfix_str(f"{bar.format_dict['rate'] or 0:.2f} step/s, "
                                    f"{(bar.format_dict['rate'] or 0) * len(specs) * config.train.batch_size:,.0f} model-ex/s")
                if done % config.train.validate_every == 0 or done == total:
                    state = validate(state, models, validation, train.stats, count_fn, best_fn, config, names, steps_since, files, bar)
                    steps_since = 0
                if done % config.train.checkpoint_every == 0 or done == total:
                    checkpoint.save(mngr, done, state)
    except KeyboardInterrupt:
        saved = mngr.latest_step()
        raise Interrupted(f"interrupted after step {done} of {total}; re-run the same command to resume"
                          + (f" (from the checkpoint of step {saved})" if saved is not None else "")) from None
    finally:
        checkpoint.close(mngr)  # waits for a checkpoint still being written
    return state


def keep_best(state: dict, accuracy: jax.Array) -> dict:
    """Keep each model's parameters where its validation accuracy improved; reset the loss sum (jit this)."""
    improved = accuracy > state["best_accuracy"]
    pick = lambda new, old: jnp.where(improved.reshape(-1, *([1] * (new.ndim - 1))), new, old)
    return {
        **state,
        "best_params": jax.tree.map(pick, state["params"], state["best_params"]),
        "best_accuracy": jnp.where(improved, accuracy, state["best_accuracy"]),
        "best_step": jnp.where(improved, state["step"], state["best_step"]),
        "loss_sum": jnp.zeros_like(state["loss_sum"]),
    }


def validate(state, models, validation, stats, count_fn, best_fn, config, names, steps_since, files, bar) -> dict:
    """Validation accuracy per model; keep each model's best state; one metrics line and one progress line."""
    n = validation[0].shape[0]
    chunk = config.train.batch_size * 4
    correct = sum(
        count_fn(state["params"], models, tuple(x[i : i + chunk] for x in validation), i // chunk, stats)
        for i in range(0, n, chunk)
    )
    loss = distributed.to_host(state["loss_sum"]) / steps_since
    step = int(state["step"])
    if not np.all(np.isfinite(loss)):
        bad = [name for name, value in zip(names, loss) if not np.isfinite(value)]
        raise FloatingPointError(f"non-finite training loss at step {step} for {', '.join(bad)}")
    accuracy = correct.astype(jnp.float32) / n
    state = best_fn(state, accuracy)
    accuracy = distributed.to_host(accuracy)  # a collective: every process takes part
    if distributed.is_primary():
        record = {"step": step, "loss": dict(zip(names, loss.tolist())), "validation_accuracy": dict(zip(names, accuracy.tolist()))}
        with open(files.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        best, worst = int(np.argmax(accuracy)), int(np.argmin(accuracy))
        bar.write(f"step {step}: validation accuracy best {accuracy[best]:.3f} ({names[best]}), "
                  f"worst {accuracy[worst]:.3f} ({names[worst]}); mean loss {loss.mean():.3f}")
    return state


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop metrics lines written after the checkpoint we resume from (they will be written again)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in lines))
