"""`clstm-jax plan`: what a sweep or study costs, priced from its compiled programs before it runs.

Two programs do nearly all the work: the training step (every model, one
batch) and the evaluation chunk (every model, `evaluate.batch` grid items).
Each is compiled ahead of time at the config's size and model count, with the
sharding the run uses, on the current backend; nothing is trained.

- Memory per device is XLA's memory analysis of the program as it will run.
- FLOPs come from XLA's cost analysis, which counts the body of a loop once.
  So they are taken from small compilations with the time loop unrolled, at
  3, 4 and 5 frames (the recordings cut to the samples those frames read),
  and extended to the config's frames by the quadratic through them
  (`FIT_FRAMES`). A test checks the extension against a full unrolled
  compilation.
- With `timed_calls`, each program also runs a few times (after one warm-up
  call), and the wall time of the run is projected from it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.config import Config
from clstm_jax.evaluation.evaluate import chunk_correct, test_examples
from clstm_jax.evaluation.modality_use import CONDITIONS, POINTS
from clstm_jax.model import families
from clstm_jax.model.families import group_counts
from clstm_jax.model.spec import ModelSpec
from clstm_jax.training import programs
from clstm_jax.training.device_data import SplitArrays, feature_stats, load_checked_data, split_arrays
from clstm_jax.training.keys import TEST_NOISE, purpose_key
from clstm_jax.training.stacking import build_models, group_states, initial_state
from clstm_jax.training.sweep import sweep_step
from clstm_jax.training.validation import chunk_args as validation_chunk_args
from clstm_jax.training.validation import chunk_size as validation_chunk_size
from clstm_jax.training.validation import correct_counts, validation_batch

# Frames of the unrolled compilations that give the FLOPs of longer sequences. XLA's count for the training
# step grows with the square of the frames (its second difference is constant from 3 frames on: the
# backward pass writes each step into buffers as long as the sequence), so a quadratic through three
# points is exact; measured in tests/test_plan.py.
FIT_FRAMES = (3, 4, 5)


def with_frames(config: Config, frames: int) -> Config:
    """The config with `frames` spectrogram frames and its time loop unrolled. The hop stays; the recordings
    are cut (end-aligned, as `data.pad_length` cuts them) to the samples those frames read."""
    f = config.features
    return dataclasses.replace(config, data=dataclasses.replace(config.data, pad_length=f.window_length + (frames - 1) * f.hop_length),
                               model=dataclasses.replace(config.model, frames=frames, unroll=frames))


def cut(split: SplitArrays, pad_length: int) -> SplitArrays:
    """The split's recordings end-aligned to pad_length samples (loading with that data.pad_length gives the same)."""
    if not pad_length or pad_length >= split.waves.shape[1]:
        return split
    return split._replace(waves=split.waves[:, -pad_length:], wave_lengths=jnp.minimum(split.wave_lengths, pad_length))


def arguments(name: str, config: Config, data, placement: programs.Placement) -> Callable:
    """The arguments of the "train step", the "validation chunk" or an "evaluation chunk", as the run places
    them: a function of the models (specs) giving a function of a batch size (the size unused by the first
    two: theirs is the config's; for evaluation, the chunk's items). The data they share is prepared once,
    so one call serves every model of a sequential benchmark."""
    stats = feature_stats(config, data.splits["train"])
    if name in ("train step", "validation chunk"):
        if name == "train step":
            shared = placement.shared(cut(split_arrays(data.splits["train"], stats), config.data.pad_length))
        else:
            validation = cut(split_arrays(data.splits["validation"]), config.data.pad_length)
            shared = placement.shared(validation_batch(validation, config.train.validation_examples, config.train.seed))

        def fixed_size(specs: list[ModelSpec]) -> Callable:
            args = (train_args(config, specs, placement, shared) if name == "train step" else
                    validation_args(config, specs, placement, shared, stats))
            return lambda _: args

        return fixed_size
    test = placement.shared(cut(split_arrays(data.splits["test"], stats), config.data.pad_length))
    table, root = split_arrays(data.splits["test"]).table, placement.shared(purpose_key(config.evaluate.seed, TEST_NOISE))

    def for_models(specs: list[ModelSpec]) -> Callable:
        params, models = build_models(config, specs)
        masks = placement.per_model({group: m.masks for group, m in models.items()})
        params = placement.per_model(params)

        def at(n: int) -> tuple:
            image_idx, audio_idx, labels = test_examples(table, n, config.evaluate.seed)
            snr = np.full(n, 0.5, np.float32)
            return params, masks, test, (image_idx, audio_idx, np.arange(n), labels, snr, snr), root

        return at

    return for_models


def train_args(config: Config, specs: list[ModelSpec], placement: programs.Placement, train) -> tuple:
    params, models = build_models(config, specs)
    return placement.state(initial_state(config, params)), train, placement.per_model(models)


def validation_args(config: Config, specs: list[ModelSpec], placement: programs.Placement, pairs, stats) -> tuple:
    params, models = build_models(config, specs)
    state = placement.state(initial_state(config, params))
    size = validation_chunk_size(config)
    return validation_chunk_args({group: gs["params"] for group, gs in group_states(state).items()},
                                 placement.per_model(models), pairs, stats, programs.chunks(len(pairs[-1]), size)[0], size)


def build(name: str, config: Config, specs: list[ModelSpec], data, log=print) -> programs.Program:
    """The program called `name` (PROGRAMS) for these models, compiled at the config's sizes as the run
    resolves them ("auto" fitted, sizes that do not fit the budget refused)."""
    placement = programs.Placement(families.mesh(specs))
    per_device = max(group_counts(specs)) // placement.groups
    args_at = arguments(name, config, data, placement)(specs)
    if name == "train step":
        return programs.training(sweep_step, config, placement, args_at(0), per_device, log)
    if name == "validation chunk":
        return programs.fixed(partial(correct_counts, config=config, groups=placement.groups), config, args_at(0))
    total = len(config.evaluate.snrs) ** 2 * config.evaluate.examples
    return programs.measurement(partial(chunk_correct, features=config.features, model=config.model), config,
                                placement, args_at, per_device, total, log)


def sized(config: Config, specs: list[ModelSpec], data, log=print) -> dict[str, programs.Program]:
    """name -> the program compiled as the run compiles it (its config carries the sizes chosen): the two
    that plan prices."""
    return {name: build(name, config, specs, data, log) for name in PRICED}


PROGRAMS = ("train step", "validation chunk", "evaluation chunk")
PRICED = ("train step", "evaluation chunk")  # validation is priced as evaluation chunks (`calls`)


def flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    return float((analysis[0] if isinstance(analysis, list) else analysis)["flops"])


def calls(config: Config, specs: list[ModelSpec], study: bool) -> dict:
    """How often the run calls each program, and what the call counts stand for (evaluate.batch resolved)."""
    cfg = config.evaluate
    grid_items = len(cfg.snrs) ** 2 * cfg.examples
    # Validation, and in a study modality use (and Fig. 7's audio swap, 2 conditions x 3 models: left out),
    # are forward passes of every model too: priced here as evaluation chunks of the same size.
    validation_items = config.train.validation_examples * math.ceil(config.train.steps / config.train.validate_every)
    use_items = len(POINTS) * len(CONDITIONS) * cfg.point_examples if study else 0
    return {
        "train step": {"calls": config.train.steps,
                       "what": f"{config.train.steps} steps of {config.train.batch_size} pairs per model"},
        "evaluation chunk": {
            "calls": math.ceil((grid_items + validation_items + use_items) / cfg.batch),
            "what": f"{grid_items:,} grid items + {validation_items:,} validation pairs"
                    + (f" + {use_items:,} modality-use items" if study else "") + f", {cfg.batch} per call",
        },
    }


def plan(config: Config, specs: list[ModelSpec], data_dir: str | None = None, study: bool = False,
         timed_calls: int = 0, log=print) -> dict:
    """The cost of training and evaluating `specs` under `config` (see the module docstring)."""
    data = load_checked_data(config, data_dir)
    log(f"plan: compiling the train step and the evaluation chunk ({len(specs)} models)")
    built = sized(config, specs, data, log)
    configs = {name: program.config for name, program in built.items()}
    counts = calls(configs["evaluation chunk"], specs, study)
    log(f"plan: compiling both programs unrolled at {FIT_FRAMES} frames (for their FLOPs)")
    unrolled = unrolled_flops(configs, specs, data)
    rows = {}
    for name, program in built.items():
        program_config, analysis = program.config, program.executable.memory_analysis()
        row = {
            "models": len(specs), **counts[name],
            "flops_per_call": unrolled[name],
            "devices": len(families.mesh(specs).devices),
            "argument_bytes": analysis.argument_size_in_bytes, "output_bytes": analysis.output_size_in_bytes,
            "temp_bytes": analysis.temp_size_in_bytes,
            "model_chunk": program_config.train.model_chunk, "remat": program_config.model.remat,
        }
        if name == "evaluation chunk":
            row["items_per_call"] = program_config.evaluate.batch
        if timed_calls:
            log(f"plan: timing {timed_calls} calls of the {name}")
            row["seconds_per_call"] = time_calls(program.executable, program.args, timed_calls, donated=name == "train step")
            row["projected_seconds"] = row["seconds_per_call"] * row["calls"]
        rows[name] = row
    return {"backend": jax.default_backend(), "preset": config.preset, "steps": config.train.steps,
            "frames": config.model.frames, "channels": config.model.channels, "programs": rows}


def unrolled_flops(configs: dict[str, Config], specs: list[ModelSpec], data) -> dict[str, float]:
    """XLA's FLOPs of each program (name -> its config) with every time step counted: compiled unrolled at
    the config's frames when they are few, else at 3, 4 and 5 frames and extended by the quadratic through them."""
    def count(frames: int) -> dict[str, float]:
        return {name: flops(build(name, with_frames(config, frames), specs, data, lambda _: None).executable)
                for name, config in configs.items()}

    T = next(iter(configs.values())).model.frames
    if T <= 5:
        return count(T)
    points = {t: count(t) for t in FIT_FRAMES}
    weight = {t: math.prod((T - u) / (t - u) for u in FIT_FRAMES if u != t) for t in FIT_FRAMES}
    return {name: sum(weight[t] * points[t][name] for t in FIT_FRAMES) for name in points[FIT_FRAMES[0]]}


def time_calls(compiled, args: tuple, n: int, donated: bool) -> float:
    """Median seconds per call after a warm-up call; a donated first argument is copied first (it may share
    buffers with another program's arguments) and threaded through."""
    args, times = list(args), []
    if donated:
        args[0] = jax.tree.map(lambda x: x.copy(), args[0])
    for i in range(n + 1):
        start = time.perf_counter()
        out = compiled(*args)
        jax.block_until_ready(out)
        if i:
            times.append(time.perf_counter() - start)
        if donated:
            args[0] = out
    return float(np.median(times))


def plan_table(result: dict) -> str:
    """The plan as text: one block per program."""
    gib = lambda n: f"{n / 2**30:.3g} GiB"
    lines = [f"{result['preset'] or 'custom'} preset on {result['backend']}: C = {result['channels']}, "
             f"{result['frames']} frames, {result['steps']:,} training steps"]
    for name, row in result["programs"].items():
        memory = row["argument_bytes"] + row["output_bytes"] + row["temp_bytes"]
        sizes = f"model_chunk {row['model_chunk'] or 'all'}" + (", remat" if row["remat"] else "")
        lines += [f"{name}: {row['models']} models ({sizes}), {row['calls']:,} calls ({row['what']})",
                  f"  {row['flops_per_call'] / 1e9:,.4g} GFLOP per call, {row['flops_per_call'] * row['calls'] / 1e12:,.4g} "
                  "TFLOP in all",
                  f"  memory per device ({row['devices']} device(s)): {gib(memory)} = arguments "
                  f"{gib(row['argument_bytes'])} + outputs {gib(row['output_bytes'])} + temporaries {gib(row['temp_bytes'])}"]
        if "seconds_per_call" in row:
            lines.append(f"  {row['seconds_per_call']:.3g} s per call measured: {row['projected_seconds'] / 60:,.1f} min "
                         "projected")
    return "\n".join(lines)
