"""A/B timing of `train.model_chunk`: seconds per sweep step of N models, chunkings interleaved.

The machine's speed drifts (it is shared), so every chunking is compiled first
and then the chunkings take turns, one step each, for several rounds; the
table gives the median and the spread per chunking.

    python benchmarks/model_chunk.py --preset cpu --models 16 --chunks 0 1 2 4 --rounds 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from clstm_jax.config import load_config
from clstm_jax.core import environment
from clstm_jax.study.bench import bench_specs
from clstm_jax.study.plan import build
from clstm_jax.training.device_data import load_checked_data

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(f"# {environment.summary(environment.describe())}")  # what this ran on

    configs = {c: load_config(SWEEPS / "snr_grid.toml", [f"preset={args.preset}", f"train.model_chunk={c}"])
               for c in args.chunks}
    first = configs[args.chunks[0]]
    data = load_checked_data(first, args.data_dir)
    programs = {}
    for chunk, config in configs.items():
        step = build("train step", config, bench_specs(args.models), data, log=lambda _: None)
        state, train, models = step.args
        state = jax.block_until_ready(step(state, train, models))  # warm-up
        programs[chunk] = [step, state, train, models]
    times = {chunk: [] for chunk in args.chunks}
    for _ in range(args.rounds):
        for chunk, program in programs.items():
            step, state, train, models = program
            start = time.perf_counter()
            program[1] = jax.block_until_ready(step(state, train, models))
            times[chunk].append(time.perf_counter() - start)
    batch = first.train.batch_size
    print(f"{args.models} models, preset {args.preset}, batch {batch}, {args.rounds} interleaved rounds")
    print("model_chunk  median s/step  min   max   model-ex/s (median)")
    for chunk, t in times.items():
        median = float(np.median(t))
        print(f"{chunk:>11}  {median:13.2f}  {min(t):.2f}  {max(t):.2f}  {args.models * batch / median:10.0f}")


if __name__ == "__main__":
    main()
