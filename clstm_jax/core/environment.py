"""What a run, a benchmark or a plan ran on: the package and its commit, Python, JAX, the devices, the CPU.

A run directory keeps one record per start and per resume (RUN/environment.jsonl); results.md, `bench`,
`plan` and the benchmarks print `summary()` at their top, so every figure carries its machine.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import jaxlib

# The CPU flags that decide which kernels XLA (and PyTorch) can use: vector widths, FMA, bf16/fp16, AMX.
SIMD_FLAG = re.compile(r"^(sse4_\d|avx\w*|fma|f16c|amx\w*)$")
# What a resume compares with the run's last record (not the time or the event).
COMPARED = ("clstm_jax", "commit", "python", "jax", "jaxlib", "backend", "devices", "cpu")


def git_commit(package_dir: Path = Path(__file__).resolve().parents[1]) -> str | None:
    """The checkout's commit, "+dirty" when it has uncommitted changes; None when not installed from a checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != package_dir.resolve().parent:  # an install inside someone's checkout
        return None
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def cpu() -> dict:
    """The CPU's model name and its SIMD flags (Linux: /proc/cpuinfo; elsewhere what `platform` knows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "flags": [], "cores": None}
    field = lambda name: next((line.split(":", 1)[1].strip() for line in text.splitlines()
                               if line.split(":", 1)[0].strip() == name), "")
    flags = sorted(flag for flag in field("flags").split() if SIMD_FLAG.match(flag))
    return {"model": field("model name") or platform.machine(), "flags": flags, "cores": text.count("processor\t:")}


def describe() -> dict:
    """This process's environment as a JSON-ready dict."""
    devices = jax.devices()
    return {
        "clstm_jax": importlib.metadata.version("clstm_jax"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "processes": jax.process_count(),
        "cpu": cpu(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }


def summary(env: dict | None = None) -> str:
    """One line: package, commit, Python, JAX, devices, CPU model and flags."""
    env = env or describe()
    commit = f" (git {env['commit'][:12]}{'+dirty' if env['commit'].endswith('+dirty') else ''})" if env["commit"] else ""
    flags = " ".join(env["cpu"]["flags"]) or "flags unknown"
    return (f"clstm_jax {env['clstm_jax']}{commit}, Python {env['python']}, jax {env['jax']} / jaxlib {env['jaxlib']}, "
            f"{env['backend']}: {env['devices']}; CPU {env['cpu']['model']} ({flags})")


def differences(old: dict, new: dict) -> list[str]:
    """'name: old -> new' for each compared field that differs."""
    show = lambda value: value["model"] + " " + " ".join(value["flags"]) if isinstance(value, dict) else str(value)
    return [f"{key} {show(old.get(key))} -> {show(new.get(key))}" for key in COMPARED if old.get(key) != new.get(key)]


def record(path: Path, event: str) -> str | None:
    """Append this process's environment to a run's record (`event`: "start" or "resume"); on a resume made on
    another environment than the record's last, the one line that says what changed (a resume is not refused)."""
    env = describe()
    records = read(path)
    last = records[-1] if records else None
    with open(path, "a") as f:
        f.write(json.dumps({"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **env}) + "\n")
    changed = differences(last, env) if last is not None else []
    return f"resuming on another environment than the run's last ({'; '.join(changed)})" if changed else None


def read(path: Path) -> list[dict]:
    """Every record of a run's environment.jsonl, oldest first ([] when it has none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
