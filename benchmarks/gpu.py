"""The GPU run kit: one command that measures the paper-size path and writes the figures into docs/performance.md.

    python benchmarks/gpu.py --data-dir ../shared/data                 # on a GPU: paper size
    python benchmarks/gpu.py --size tiny --data-dir ../shared/data     # anywhere: the same parts, small, to check the kit

Parts, each in its own process with a 10-minute limit (a part that fails or runs out of memory is
reported and the kit goes on):

- plan:  `clstm-jax plan` of the study at this size, with two timed calls of each program;
- conv:  seconds per training step, `lax` against `shifted` convolutions, for 1 and 16 vmapped models;
- dtype: the same step in float32 against bfloat16 (`model.compute_dtype`), and float32 at
         `model.matmul_precision = highest` (no TF32);
- chunk: the sweep step of 16 models at several `train.model_chunk` values and at "auto";
- study: the study end to end, cut to 2% of its training steps and 32 test pairs per grid point.

At the paper size the kit writes its tables between the `gpu-kit` markers of docs/performance.md
(replacing an earlier kit's), with the device, the command and the date, and prints them too. Any other
size only prints them, so that checking the kit never rewrites the tracked figures (`--write` to write
anyway, `--no-write` to keep even the paper size's out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE = ROOT / "docs" / "performance.md"
START, END = "<!-- gpu-kit:start -->", "<!-- gpu-kit:end -->"
PART_SECONDS = 600
# Per size: the preset, the step's shape for the conv and dtype parts, and the model counts.
SIZES = {
    "paper": {"preset": "paper", "channels": 64, "frames": 90, "batch": 32, "models": (1, 16), "remat": True,
              "chunks": ("0", "4", "1", "auto")},
    "tiny": {"preset": "tiny", "channels": 4, "frames": 3, "batch": 8, "models": (1, 4), "remat": False,
             "chunks": ("0", "1", "auto")},
}
PARTS = ("plan", "conv", "dtype", "chunk", "study")


def device_line() -> str:
    import jax

    from clstm_jax.core import environment

    device = jax.devices()[0]
    return f"{device.platform}: {device.device_kind} x {jax.device_count()}; {environment.summary(environment.describe())}"


def timed_steps(step, args: list, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up; the first argument is donated and threaded."""
    import jax
    import numpy as np

    args[0] = jax.block_until_ready(step(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        args[0] = jax.block_until_ready(step(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def part_plan(size: dict, data_dir: str) -> str:
    out = subprocess.run([sys.executable, "-m", "clstm_jax", "plan", str(ROOT / "sweeps" / "study.toml"),
                          "--set", f"preset={size['preset']}", "--json", "--time", "2", "--data-dir", data_dir],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    rows = ["| program | models | calls | GFLOP / call | memory / device (GiB) | s / call | projected (min) |",
            "|---|---|---|---|---|---|---|"]
    for name, row in result["programs"].items():
        memory = (row["argument_bytes"] + row["output_bytes"] + row["temp_bytes"]) / 2**30
        rows.append(f"| {name} | {row['models']} | {row['calls']:,} | {row['flops_per_call'] / 1e9:,.1f} | {memory:.2f} "
                    f"| {row['seconds_per_call']:.3g} | {row['projected_seconds'] / 60:,.1f} |")
    return "\n".join(rows)


def step_table(size: dict, cells: list[tuple[str, int, dict]]) -> str:
    """Seconds per training step of benchmarks/conv_paths.py's step, one row per (label, models, ModelConfig fields)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from conv_paths import time_step

    rows = ["| setting | models | s / step | s / step / model | temp memory (MB) |", "|---|---|---|---|---|"]
    for label, models, fields in cells:
        seconds, temp_mb = time_step(size["channels"], size["frames"], models, remat=size["remat"], batch=size["batch"],
                                     repeats=3, **fields)
        rows.append(f"| {label} | {models} | {seconds:.3f} | {seconds / models:.3f} | {temp_mb:,.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


def part_conv(size: dict, data_dir: str) -> str:
    return step_table(size, [(f"conv {conv}", m, {"conv": conv}) for m in size["models"] for conv in ("lax", "shifted", "hybrid")])


def part_dtype(size: dict, data_dir: str) -> str:
    settings = [("float32", {"compute_dtype": "float32"}), ("bfloat16", {"compute_dtype": "bfloat16"}),
                ("float32, precision highest", {"compute_dtype": "float32", "matmul_precision": "highest"})]
    return step_table(size, [(label, m, {"conv": "auto", **fields}) for m in size["models"] for label, fields in settings])


def part_chunk(size: dict, data_dir: str) -> str:
    from clstm_jax.config import load_config
    from clstm_jax.study.bench import bench_specs
    from clstm_jax.study.plan import build
    from clstm_jax.training import memory
    from clstm_jax.training.device_data import load_checked_data

    n = size["models"][-1]
    rows = ["| train.model_chunk | chosen | s / step | model-examples / s | memory / device (GiB) |", "|---|---|---|---|---|"]
    for chunk in size["chunks"]:
        config = load_config(ROOT / "sweeps" / "snr_grid.toml", [f"preset={size['preset']}", f"train.model_chunk={chunk}"])
        program = build("train step", config, bench_specs(n), load_checked_data(config, data_dir), log=lambda _: None)
        config, step = program.config, program.executable
        seconds = timed_steps(step, list(program.args), 3)
        chosen = f"{config.train.model_chunk}" + (", remat" if config.model.remat else "")
        rows.append(f"| {chunk} | {chosen} | {seconds:.3f} | {n * config.train.batch_size / seconds:,.0f} "
                    f"| {memory.program_bytes(step) / 2**30:.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


def part_study(size: dict, data_dir: str) -> str:
    from clstm_jax.config import load_config

    steps = load_config(ROOT / "sweeps" / "study.toml", [f"preset={size['preset']}"]).train.steps
    short = max(2, steps // 50)
    overrides = [f"preset={size['preset']}", f"train.length={short}", "train.length_unit=batches",
                 f"train.validate_every={short}", f"train.checkpoint_every={short}", "evaluate.examples=32",
                 "evaluate.point_examples=64", "train.model_chunk=auto", "evaluate.batch=auto"]
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "clstm_jax", "study", str(ROOT / "sweeps" / "study.toml"), "--out",
                   f"{out}/study", "--data-dir", data_dir] + sum((["--set", o] for o in overrides), [])
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=sys.stderr)
        seconds = time.perf_counter() - start
        timing = next((line for line in Path(f"{out}/study/results.md").read_text().splitlines() if "took" in line), "")
    return (f"`clstm-jax study sweeps/study.toml --set {' --set '.join(overrides)}`: {short} of {steps} steps, "
            f"{seconds / 60:.1f} min wall in all.\n\n{timing}")


def run_part(part: str, size_name: str, data_dir: str) -> tuple[str, float]:
    """(markdown, seconds) of one part, run in its own process under the time limit."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, __file__, "--part", part, "--size", size_name, "--data-dir", data_dir],
                              capture_output=True, text=True, timeout=PART_SECONDS)
    except subprocess.TimeoutExpired:
        return f"did not finish in {PART_SECONDS} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"failed (exit {done.returncode}): `{last}`", seconds
    return done.stdout.strip(), seconds


def write_section(text: str) -> None:
    doc = PERFORMANCE.read_text()
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + text + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    PERFORMANCE.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="paper")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # one part, in this process (used by the kit)
    parser.add_argument("--data-dir", required=True)
    writing = parser.add_mutually_exclusive_group()
    writing.add_argument("--write", action="store_true", default=None,
                         help="write the tables into docs/performance.md (the default at the paper size only)")
    writing.add_argument("--no-write", dest="write", action="store_false",
                         help="print the tables; leave docs/performance.md alone")
    args = parser.parse_args()
    size = SIZES[args.size]
    if args.part:
        print(globals()[f"part_{args.part}"](size, args.data_dir))
        return
    lines = [START, f"## GPU run kit ({args.size} size)", "",
             f"`python benchmarks/gpu.py --size {args.size} --data-dir DATA` on {datetime.date.today()}; {device_line()}."
             + ("" if args.size == "paper" else " A check of the kit at a small size, not a GPU measurement."), ""]
    for part in args.parts:
        print(f"gpu kit: {part} ...", file=sys.stderr, flush=True)
        text, seconds = run_part(part, args.size, args.data_dir)
        lines += [f"### {part} ({seconds:.0f} s)", "", text, ""]
        print(f"### {part} ({seconds:.0f} s)\n\n{text}\n", flush=True)
    lines.append(END)
    if should_write(args.write, args.size):
        write_section("\n".join(lines))
        print(f"gpu kit: tables written into {PERFORMANCE}", file=sys.stderr)


def should_write(asked: bool | None, size: str) -> bool:
    """Whether the tables go into docs/performance.md: as asked, else only for the paper size (a GPU measurement)."""
    return size == "paper" if asked is None else asked


if __name__ == "__main__":
    main()
