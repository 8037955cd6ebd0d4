"""Many models, one program: the vmapped, sharded, checkpointed training sweep.

A sweep is a list of models (experiments.sweep_models) that differ in training SNRs,
masks (fusion depth, modalities), family and seed. The parameters and Adam states
of each family group (clstm_jax/families.py) are stacked on a leading model axis
(clstm_jax/stacking.py), and one jitted step trains every group, each a
`vmap(train_step)` (clstm_jax/multi_model.py). Every step
draws one clean batch of same-label pairs, shared by all models, then each
model's noise at its own SNRs (the keys: clstm_jax/keys.py).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from clstm_jax import checkpoint, compiler, distributed, environment, families, interrupts, programs
from clstm_jax.config import Config, ConfigError, ModelSpec
from clstm_jax.data.features import make_batch
from clstm_jax.data.splits import sample_pairs
from clstm_jax.device_data import SplitArrays, load_checked_data, run_feature_stats, split_arrays
from clstm_jax.experiments import sweep_models
from clstm_jax.families import group_counts, ordered
from clstm_jax.keys import PAIRS, purpose_key
from clstm_jax.multi_model import over_models
from clstm_jax.run_dir import RunFiles, claim_run_dir, discard_new_run, keep_metrics_until, run_lock
from clstm_jax.stacking import Models, build_models, group_states, initial_state
from clstm_jax.tensorboard import LOG_DIR, Board
from clstm_jax.train import make_optimizer, train_step
from clstm_jax.validation import counting_program, keep_best, validate, validation_batch


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

    def model_step(params, opt_state, masks, audio_snr, visual_snr, noise_key):
        image, spectrogram = make_batch(jax.random.fold_in(noise_key, step), images, waves, lengths,
                                        audio_snr, visual_snr, config.features, train.stats)
        return train_step(params, opt_state, masks, image, spectrogram, labels, config.model, optimizer)

    new = {}
    for group, gs in group_states(state).items():  # one vmapped stack per group; the same pairs for all
        m = models[group]
        per_model = (gs["params"], gs["opt_state"], m.masks, m.audio_snr, m.visual_snr, m.noise_keys)
        params, opt_state, loss = over_models(model_step, per_model, config.train.model_chunk, groups)  # loss (models,)
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
    """run_sweep's work, with the run directory held."""
    specs = ordered(specs if specs is not None else sweep_models(config))
    interrupts.doing("loading the data")
    data = load_checked_data(config, data_dir)
    splits = data.splits
    resuming = claim_run_dir(run_dir, config, data.identity)
    files = RunFiles(run_dir)
    primary = distributed.is_primary()
    if primary and not config.data.verify:
        print(f"data.verify = false: the data was not checked against the published checksums "
              f"(recorded in {files.data})")
    if primary:
        changed = environment.record(files.environment, "resume" if resuming else "start")
        if changed:
            print(changed, flush=True)
        files.models.write_text(json.dumps([{"name": s.name, **asdict(s)} for s in specs], indent=2, default=str) + "\n")

    placement = programs.Placement(families.mesh(specs))
    params, models = build_models(config, specs)
    state = placement.state(initial_state(config, params))
    models = placement.per_model(models)
    stats = run_feature_stats(files, config, splits["train"])
    train = placement.shared(split_arrays(splits["train"], stats))
    validation = placement.shared(validation_batch(split_arrays(splits["validation"]), config.train.validation_examples,
                                                   config.train.seed))

    mngr = checkpoint.manager(run_dir)
    interrupts.doing("restoring the checkpoint")
    log = print if primary else lambda _: None
    if resuming and (restored := checkpoint.restore_latest(mngr, state, log, files.unusable_checkpoints)) is not None:
        state = restored
        if primary:
            keep_metrics_until(files.metrics, int(state["step"]))
            print(f"resuming {run_dir} from step {int(state['step'])} of {config.train.steps}", flush=True)
    elif primary and files.metrics.exists():
        files.metrics.unlink()

    interrupts.doing("compiling the training step")
    if progress and primary and int(state["step"]) < config.train.steps:  # the bar starts after it
        print(f"compiling the training step ({len(specs)} models)", file=sys.stderr, flush=True)  # beside the bar
    try:  # a finished run has no step left to run, nor to compile
        step_fn = programs.training(sweep_step, config, placement, (state, train, models),
                                    max(group_counts(specs)) // placement.groups, log) \
            if int(state["step"]) < config.train.steps else None
    except ConfigError:  # refused before its first step: a new run leaves nothing that a re-run would meet
        if primary and not resuming:
            discard_new_run(run_dir)
        raise
    config = step_fn.config if step_fn else config  # "auto" sizes resolved (a finished run runs nothing)
    count_fn = counting_program(config, placement, state, models, validation, train.stats) if step_fn else None
    best_fn = compiler.jit(keep_best, donate_argnums=0)
    total = config.train.steps
    start = int(state["step"])
    names = [s.name for s in specs]
    done = start
    log_losses = config.runtime.tensorboard  # every process takes part in reading the losses; the first writes
    board = Board(run_dir / LOG_DIR, log_losses and primary)
    loss_sums = lambda: np.concatenate([distributed.to_host(gs["loss_sum"]) for gs in group_states(state).values()])
    previous = loss_sums() if log_losses else None
    try:
        with tqdm(total=total, initial=start, desc=f"sweep ({len(specs)} models)", unit="step", disable=not (progress and primary),
                  dynamic_ncols=True) as bar:
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
                    state = validate(state, models, validation, train.stats, count_fn, best_fn, config, names, steps_since, files, bar,
                                     float(np.median(step_times)) if step_times else None, board)
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
        checkpoint.close(mngr)  # waits for a checkpoint still being written
    return state
