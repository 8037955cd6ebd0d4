"""Time to the first training step of a resumed cpu-preset sweep, with and without the compilation cache.

    .venv/bin/python benchmarks/resume_cache.py --data-dir ../shared/data

Trains the 16-model cpu sweep (sweeps/snr_grid.toml, `preset=cpu`) for 4 steps, checkpointing every 2,
into a scratch directory, with a fresh compilation cache there. Then, --repeats times each and in turn,
copies that run with its step-4 checkpoint removed and resumes it from step 2 (`clstm-jax sweep`, as a
user re-runs it): once with the cache off (`CLSTM_JAX_COMPILATION_CACHE=off`), once with the cache the
first run filled. Prints, per mode, the median seconds from launching the process to its first training
step (tqdm's bar reaching 3/4, read from stderr as it is written) and to its end (2 steps, a validation
and a checkpoint), and the environment it ran on (clstm_jax.core.environment).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clstm_jax.core import environment

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ["preset=cpu", "train.length=4", "train.length_unit=batches", "train.checkpoint_every=2",
            "train.validate_every=2", "runtime.tensorboard=false"]


def sweep(out: Path, data_dir: str, cache: str) -> tuple[float, float]:
    """Run `clstm-jax sweep` into out; returns (seconds to the first step's bar update past 2, seconds in all)."""
    command = [sys.executable, "-m", "clstm_jax", "sweep", str(ROOT / "sweeps/snr_grid.toml"), "--out", str(out),
               "--data-dir", data_dir, *[arg for s in SETTINGS for arg in ("--set", s)]]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "CLSTM_JAX_COMPILATION_CACHE": cache})
    first, seen = None, b""
    while chunk := process.stderr.read1(4096):
        seen += chunk
        if first is None and b" 3/4 " in seen:
            first = time.perf_counter() - began
    if process.wait():
        raise SystemExit(f"sweep failed:\n{seen.decode(errors='replace')[-2000:]}")
    return first, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(environment.summary(environment.describe()))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        cache = str(scratch / "xla")
        template = scratch / "template"
        _, filled = sweep(template, args.data_dir, cache)
        print(f"first run (4 steps, filling an empty cache): {filled:.1f} s")
        shutil.rmtree(template / "checkpoints" / "4")
        times: dict[str, list[tuple[float, float]]] = {"off": [], "warm": []}
        for repeat in range(args.repeats):
            for mode in times:
                run = scratch / f"{mode}-{repeat}"
                shutil.copytree(template, run)
                times[mode].append(sweep(run, args.data_dir, "off" if mode == "off" else cache))
        print("| cache | to the first step (s) | whole resumed process (s) |\n|---|---|---|")
        for mode, runs in times.items():
            print(f"| {mode} | {statistics.median(r[0] for r in runs):.1f} | {statistics.median(r[1] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
