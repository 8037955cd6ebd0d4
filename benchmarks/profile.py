"""Where a program's time goes: the run's own programs profiled, XLA's operations put into kinds of work.

Each program (the training step, validation's count of a chunk, an evaluation chunk) is built as the run
builds it (`plan.build`, clstm_jax/training/programs.py), warmed up, then called under `jax.profiler` for a few calls.
Every operation XLA:CPU ran is classed by what its HLO does, read from the compiled program's text, and
its traced time summed over the threads that ran it:

- products: convolutions and dots. XLA:CPU hands them to Eigen's thread pool and its trace times only
  their dispatch (a 3x3 convolution of 0.2 GFLOP shows as 0.1 ms), so their time is not in the table:
  it is in the wall time, which the table gives beside the traced kinds;
- gate arithmetic: elementwise fusions with a sigmoid or tanh (the cell update, forward and backward);
- patches and folds: fusions that build the backward's 9 shifted copies, or fold a gradient back over them
  (concatenate, pad, slice);
- pools: fusions with a max pool's reductions or its gradient's selects;
- data: the noise draws (threefry), FFTs and the pair gathers of the input pipeline;
- optimizer: Adam's update (square roots);
- loop and copies: the scan's stacking (dynamic-update-slice), copies, and the while loops' own bookkeeping;
- other: the rest.

    python benchmarks/profile.py --preset cpu --models 1 16 42 --calls 3
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import jax

from clstm_jax.config import load_config
from clstm_jax.core import environment
from clstm_jax.study.bench import PROGRAMS, bench_specs
from clstm_jax.study.plan import build
from clstm_jax.training.device_data import load_checked_data

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
KINDS = ("products", "gate arithmetic", "patches and folds", "pools", "data", "optimizer", "loop and copies", "other")


def computations(hlo: str) -> dict[str, str]:
    """name -> body of every computation in an HLO module's text."""
    bodies, name, lines = {}, None, []
    for line in hlo.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            name, lines = header.group(1), []
        elif line.startswith("}") and name:
            bodies[name] = "\n".join(lines)
            name = None
        elif name:
            lines.append(line)
    return bodies


def classify(hlo: str) -> dict[str, str]:
    """instruction name -> kind (KINDS), for every instruction that calls a fused computation or is one."""
    bodies = computations(hlo)
    kinds = {}
    for body in bodies.values():
        for match in re.finditer(r"%?([\w.\-]+) = [^\n]*? (\w[\w\-]*)\(", body):
            name, op = match.group(1), match.group(2)
            called = re.search(r"calls=%?([\w.\-]+)", body[match.start(): body.find("\n", match.start())])
            inner = bodies.get(called.group(1), "") if called else ""
            kinds[name] = kind_of(op, inner)
    return kinds


def kind_of(op: str, inner: str) -> str:
    text = f"{op}\n{inner}"
    if op in ("convolution", "dot") or re.search(r" (convolution|dot)\(", inner):
        return "products"
    if re.search(r"threefry|fft\(|custom-call", text) or op in ("fft", "gather"):
        return "data"
    if re.search(r" (logistic|tanh)\(", inner) or op in ("logistic", "tanh"):
        return "gate arithmetic"
    if re.search(r" (sqrt|rsqrt)\(", inner):
        return "optimizer"
    if re.search(r" (select|compare)\(", inner) and re.search(r" reduce\(", inner) or "reduce-window" in text:
        return "pools"
    if re.search(r" (concatenate|pad|slice)\(", inner) or op in ("concatenate", "pad", "slice"):
        return "patches and folds"
    if op in ("while", "conditional", "call"):
        return "container"  # spans the operations inside it, counted on their own
    if op in ("copy", "dynamic-update-slice", "dynamic-slice", "tuple", "get-tuple-element", "bitcast") or \
            re.search(r" dynamic-(update-)?slice\(", inner):
        return "loop and copies"
    return "other"


def profile(program, calls: int, donated: bool) -> tuple[dict[str, float], float]:
    """(thread seconds per call of each kind of work, from XLA:CPU's trace of `calls` calls; wall seconds per call)."""
    from jax._src.lib import _profile_data

    kinds = classify(program.executable.as_text())
    args = list(program.args)
    if donated:
        args[0] = jax.tree.map(lambda x: x.copy(), args[0])

    def call():
        out = program(*args)
        if donated:
            args[0] = out
        return out

    jax.block_until_ready(call())
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            start = time.perf_counter()
            for _ in range(calls):
                jax.block_until_ready(call())
            wall = (time.perf_counter() - start) / calls
        trace = next(Path(folder).rglob("*.xplane.pb"))
        data = _profile_data.ProfileData.from_file(str(trace))
    seconds = defaultdict(float)
    for plane in data.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = event.name.split(":")[0]
                if kinds.get(name, "container") != "container":
                    seconds[kinds[name]] += event.duration_ns * 1e-9 / calls
    return dict(seconds), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--models", type=int, nargs="+", default=[1, 16, 42])
    parser.add_argument("--programs", nargs="+", choices=list(PROGRAMS), default=list(PROGRAMS))
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(f"# {environment.summary(environment.describe())}")
    config = load_config(SWEEPS / "snr_grid.toml", [f"preset={args.preset}", *args.set])
    data = load_checked_data(config, args.data_dir)
    shown = KINDS[1:]  # products: dispatch only (see the module docstring)
    print("| program | models | wall ms / call | " + " | ".join(shown) + " | traced in all |")
    print("|---" * (len(shown) + 4) + "|")
    for name in args.programs:
        for n in args.models:
            program = build(PROGRAMS[name], config, bench_specs(n), data, log=lambda _: None)
            seconds, wall = profile(program, args.calls, donated=name == "training")
            total = sum(seconds.get(kind, 0) for kind in shown)
            cells = [f"{1e3 * seconds.get(kind, 0):.0f} ({100 * seconds.get(kind, 0) / total:.0f}%)" for kind in shown]
            print(f"| {name} | {n} | {1e3 * wall:.0f} | " + " | ".join(cells) + f" | {1e3 * total:.0f} |", flush=True)


if __name__ == "__main__":
    main()
