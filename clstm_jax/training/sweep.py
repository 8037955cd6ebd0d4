"""Many models, one program: the vmapped, sharded, checkpointed training sweep.

A sweep is a list of models (experiments.sweep_models) that differ in training SNRs,
masks (fusion depth, modalities), family and seed. The parameters and Adam states
of each family group (clstm_jax/model/families.py) are stacked on a leading model axis
(clstm_jax/training/stacking.py), and one jitted step trains every group, each a
`vmap(train_step)` (clstm_jax/model/multi_model.py). Every step
draws one clean batch of same-label pairs, shared by all models, then each
model's noise at its own SNRs (the keys: clstm_jax/training/keys.py).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from tqdm import tqdm

from clstm_jax.config import Config
from clstm_jax.config.experiments import sweep_models
from clstm_jax.core import compiler, distributed, environment, interrupts
from clstm_jax.core.errors import ConfigError
from clstm_jax.core.tensorboard import LOG_DIR, Board
from clstm_jax.data.features import make_batch
from clstm_jax.data.splits import sample_pairs
from clstm_jax.model import families
from clstm_jax.model.families import group_counts, ordered
from clstm_jax.model.multi_model import over_models
from clstm_jax.model.spec import ModelSpec
from clstm_jax.training import checkpoint, programs
from clstm_jax.training.device_data import SplitArrays, load_checked_data, run_feature_stats, split_arrays
from clstm_jax.training.keys import PAIRS, purpose_key
from clstm_jax.training.run_dir import RunFiles, claim_run_dir, discard_new_run, keep_metrics_until, run_lock
from clstm_jax.training.stacking import Models, build_models, group_states, initial_state
from clstm_jax.training.step import make_optimizer, train_step
from clstm_jax.training.validation import Validator, counting_program, keep_best, validation_batch


class Interrupted(KeyboardInterrupt):
    """The user stopped a sweep (Ctrl-C); the message says where, and how to resume."""


def sweep_step(state: dict, train: SplitArrays, models: dict[str, Models], config: Config, groups: int = 1) -> dict:
    """One Adam step of every model of every family group (jit this; state is donated). groups: devices of
    the model mesh."""
    step = state["step"]
    pair_key = jax.random.fold_in(purpose_key(config.train.seed, PAIRS), step)
    image_idx, audio_idx, labels = sample_pairs(pair_key, train.table, config.train.batch_size)  # (B,) each
    images, waves, lengths = train.images[image_idx], train.waves[audio_idx], train.wave_lengths[audio_idx]
    optimizer = make_optimizer(config.train.learning_rate)

    def model_step(group, params, opt_state, masks, audio_snr, visual_snr, noise_key):
        image, spectrogram = make_batch(jax.random.fold_in(noise_key, step), images, waves, lengths,
                                        audio_snr, visual_snr, config.features, train.stats)
        return train_step(params, opt_state, masks, image, spectrogram, labels, config.model, optimizer, group)

    new = {}
    for group, gs in group_states(state).items():  # one vmapped stack per group; the same pairs for all
        m = models[group]
        per_model = (gs["params"], gs["opt_state"], m.masks, m.audio_snr, m.visual_snr, m.noise_keys)
        params, opt_state, loss = over_models(partial(model_step, group), per_model, config.train.model_chunk, groups)  # loss (models,)
        new[group] = {**gs, "params": params, "opt_state": opt_state, "loss_sum": gs["loss_sum"] + loss}
    return {**new, "step": step + 1}


def run_sweep(config: Config, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
              specs: list[ModelSpec] | None = None) -> dict:
    """Train every model into run_dir (resuming from its latest checkpoint); returns the final state.

    specs: the models; default the config's (`experiments.sweep_models`; `study` passes its own list).
    One job at a time per run directory (run_dir.run_lock).
    """
    with run_lock(Path(run_dir)):
        return train_models(config, Path(run_dir), data_dir, progress, specs)


def train_models(config: Config, run_dir: Path, data_dir: str | None, progress: bool, specs: list[ModelSpec] | None) -> dict:
    """run_sweep's work, with the run directory held: the run directory claimed, the models placed, the last
    checkpoint restored, the step compiled, then the steps."""
    specs = ordered(specs if specs is not None else sweep_models(config))
    interrupts.doing("loading the data")
    data = load_checked_data(config, data_dir)
    resuming = claim_run_dir(run_dir, config, data.identity)
    files = RunFiles(run_dir)
    if distributed.is_primary():
        record_start(config, files, specs, resuming)
    placement = programs.Placement(families.mesh(specs))
    state, models, train, validation = place(config, specs, placement, data.splits, files)
    mngr = checkpoint.manager(run_dir)
    try:
        state = restored_state(config, mngr, state, files, resuming)
        step_fn = compiled_step(config, run_dir, specs, placement, state, train, models, resuming, progress)
        config = step_fn.config if step_fn else config  # "auto" sizes resolved (a finished run runs nothing)
        count_fn = counting_program(config, placement, state, models, validation, train.stats) if step_fn else None
        return train_steps(config, run_dir, specs, mngr, state, step_fn, train, models,
                           partial(Validator, models, validation, train.stats, count_fn,
                                   compiler.jit(keep_best, donate_argnums=0), config, [s.name for s in specs], files),
                           progress)
    finally:
        checkpoint.close(mngr)  # waits for a checkpoint still being written



def primary_log():
    """print in the first process, nothing in the others (their lines would repeat its)."""
    return print if distributed.is_primary() else lambda _: None


def record_start(config: Config, files: RunFiles, specs: list[ModelSpec], resuming: bool) -> None:
    """What the first process writes before training: the environment (and what changed since the run's last
    record), the models, and a warning when the data was not verified."""
    if not config.data.verify:
        print(f"data.verify = false: the data was not checked against the published checksums "
              f"(recorded in {files.data})")
    changed = environment.record(files.environment, "resume" if resuming else "start")
    if changed:
        print(changed, flush=True)
    files.models.write_text(json.dumps([{"name": s.name, **asdict(s)} for s in specs], indent=2, default=str) + "\n")


def place(config: Config, specs: list[ModelSpec], placement: programs.Placement, splits: dict, files: RunFiles):
    """The initial state, the models' constants, the training split and the validation pairs, on the devices."""
    params, models = build_models(config, specs)
    state = placement.state(initial_state(config, params))
    models = placement.per_model(models)
    stats = run_feature_stats(files, config, splits["train"])
    train = placement.shared(split_arrays(splits["train"], stats))
    validation = placement.shared(validation_batch(split_arrays(splits["validation"]), config.train.validation_examples,
                                                   config.train.seed))
    return state, models, train, validation


def restored_state(config: Config, mngr, state: dict, files: RunFiles, resuming: bool) -> dict:
    """The latest usable checkpoint's state when resuming (metrics cut back to its step), else `state`."""
    interrupts.doing("restoring the checkpoint")
    primary = distributed.is_primary()
    if resuming and (restored := checkpoint.restore_latest(mngr, state, primary_log(), files.unusable_checkpoints)) is not None:
        if primary:
            keep_metrics_until(files.metrics, int(restored["step"]))
            print(f"resuming {files.root} from step {int(restored['step'])} of {config.train.steps}", flush=True)
        return restored
    if primary and files.metrics.exists():
        files.metrics.unlink()
    return state


def compiled_step(config: Config, run_dir: Path, specs: list[ModelSpec], placement: programs.Placement, state: dict,
                  train: SplitArrays, models: dict, resuming: bool, progress: bool) -> programs.Program | None:
    """The training step compiled for every model (None when the run has no step left). A step refused before
    its first run (it does not fit memory) leaves no trace of a new run that a re-run would meet."""
    if int(state["step"]) >= config.train.steps:
        return None
    primary = distributed.is_primary()
    interrupts.doing("compiling the training step")
    if progress and primary:  # beside the bar, which starts after it
        print(f"compiling the training step ({len(specs)} models)", file=sys.stderr, flush=True)
    try:
        return programs.training(sweep_step, config, placement, (state, train, models),
                                 max(group_counts(specs)) // placement.groups, primary_log())
    except ConfigError:
        if primary and not resuming:
            discard_new_run(run_dir)
        raise


def train_steps(config: Config, run_dir: Path, specs: list[ModelSpec], mngr, state: dict, step_fn, train: SplitArrays,
                models: dict, validator: Callable[..., Validator], progress: bool) -> dict:
    """The steps left, with validation, checkpoints, TensorBoard scalars and a progress bar; Ctrl-C stops at a
    step with one line saying how to resume. validator: a Validator less its bar and board."""
    primary = distributed.is_primary()
    total = config.train.steps
    start = done = int(state["step"])
    names = [s.name for s in specs]
    log_losses = config.runtime.tensorboard  # every process takes part in reading the losses; the first writes
    board = Board(run_dir / LOG_DIR, log_losses and primary)
    loss_sums = lambda: np.concatenate([distributed.to_host(gs["loss_sum"]) for gs in group_states(state).values()])
    previous = loss_sums() if log_losses else None
    try:
        with tqdm(total=total, initial=start, desc=f"sweep ({len(specs)} models)", unit="step", disable=not (progress and primary),
                  dynamic_ncols=True) as bar:
            validate = validator(bar, board)
            steps_since, step_times = 0, []
            bar.set_postfix_str("first step")
            for step in range(start, total):
                interrupts.check()
                began = time.perf_counter()
                state = step_fn(state, train, models)
                state["step"].block_until_ready()  # wait for the step, so that the rate and ETA are true
                seconds = time.perf_counter() - began if step > start else None  # a process's first step also warms up
                if seconds is not None:
                    step_times.append(seconds)
                steps_since += 1
                done = step + 1
                if log_losses:
                    sums = loss_sums()
                    board.training_step(done, dict(zip(names, (sums - previous).tolist())), config.train.learning_rate,
                                        seconds, seconds and len(specs) * config.train.batch_size / seconds)
                    previous = sums
                bar.update(1)
                bar.set_postfix_str(f"{bar.format_dict['rate'] or 0:.2f} step/s, "
                                    f"{(bar.format_dict['rate'] or 0) * len(specs) * config.train.batch_size:,.0f} model-ex/s")
                if done % config.train.validate_every == 0 or done == total:
                    state = validate(state, steps_since, float(np.median(step_times)) if step_times else None)
                    steps_since, step_times = 0, []
                    previous = np.zeros_like(previous) if log_losses else None  # validation restarts the sums
                if done % config.train.checkpoint_every == 0 or done == total:
                    checkpoint.save(mngr, done, state)
    except KeyboardInterrupt:
        saved = mngr.latest_step()
        raise Interrupted(f"interrupted after step {done} of {total}; re-run the same command to resume"
                          + (f" (from the checkpoint of step {saved})" if saved is not None else "")) from None
    finally:
        board.close()
    return state
