"""Seconds per Adam training step of the C-LSTM, per 3x3 convolution path.

    python benchmarks/conv_paths.py --channels 16 --frames 23 --models 1 --conv lax shifted

Batch 32 (per model), initial fusion, random inputs. Each cell compiles once,
runs one warm-up step, then times `--repeats` steps (median). With --models 1
the step is the plain jitted `train_step`; with M > 1 it is vmapped over M
models (stacked parameters, optimiser states and inputs), as a sweep trains
them. Prints one markdown table row per cell, with the temporary memory XLA
allocates for the compiled step.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.core import compiler, environment
from clstm_jax.model.clstm import ModelConfig, init
from clstm_jax.model.masks import make_masks
from clstm_jax.training.step import make_optimizer, train_step


def time_step(channels: int, frames: int, models: int, conv: str = "auto", remat: bool = False, batch: int = 32,
              repeats: int = 3, **model_fields) -> tuple[float, float]:
    """(median seconds per step, XLA temporary memory of the compiled step in MB); model_fields: more ModelConfig."""
    cfg = ModelConfig(channels=channels, frames=frames, conv=conv, remat=remat, **model_fields)
    optimizer = make_optimizer()
    keys = jax.random.split(jax.random.key(0), models)
    params = jax.vmap(init, in_axes=(0, None))(keys, cfg)  # (models, ...)
    masks = make_masks(jax.tree.map(lambda x: x[0], params), cfg.visual_group, "initial")
    masks = jax.tree.map(lambda m: jnp.broadcast_to(m, (models, *jnp.shape(m))), masks)  # (models, ...)
    opt_state = jax.vmap(optimizer.init)(params)
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.random((models, batch, 28, 28), np.float32))
    spectrogram = jnp.asarray(rng.random((models, batch, frames, cfg.bins), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, (models, batch)))
    one_step = partial(train_step, cfg=cfg, optimizer=optimizer)
    if models == 1:  # one model: the plain step, no model axis
        params, opt_state, masks, image, spectrogram, labels = jax.tree.map(
            lambda x: x[0], (params, opt_state, masks, image, spectrogram, labels)
        )
    step = compiler.jit(one_step if models == 1 else jax.vmap(one_step), donate_argnums=(0, 1))
    step = step.lower(params, opt_state, masks, image, spectrogram, labels).compile()
    temp_mb = step.memory_analysis().temp_size_in_bytes / 2**20
    params, opt_state, loss = step(params, opt_state, masks, image, spectrogram, labels)  # warm-up
    loss.block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, masks, image, spectrogram, labels)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), temp_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--frames", type=int, nargs="+", default=[23, 90])
    parser.add_argument("--models", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--conv", nargs="+", default=["lax", "shifted"])
    parser.add_argument("--remat", action="store_true", help="rematerialise the scan step")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {environment.summary(environment.describe())}")  # what this ran on
    print(f"# batch {args.batch}")
    print("| C | frames | models | conv | remat | s / step | s / step / model | temp memory (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for channels in args.channels:
        for frames in args.frames:
            for models in args.models:
                for conv in args.conv:
                    seconds, temp_mb = time_step(channels, frames, models, conv, args.remat, args.batch, args.repeats)
                    print(
                        f"| {channels} | {frames} | {models} | {conv} | {args.remat} | {seconds:.2f} "
                        f"| {seconds / models:.2f} | {temp_mb:,.0f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
