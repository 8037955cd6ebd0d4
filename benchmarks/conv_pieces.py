"""The three products of one 3x3 'same' convolution, timed alone: XLA:CPU's forms against PyTorch's.

    python benchmarks/conv_pieces.py --torch-python /tmp/torch-peer/bin/python

At layer 1's shape (batch 32, 28x28, C -> 4C): the forward pass, the input
gradient and the kernel gradient, each in the forms docs/performance.md
compares, compiled with XLA's default fusions and with the project's options
(`clstm_jax/core/compiler.py`, YNNPACK off). Also the kernel gradient inside a
`lax.map` (as every sweep step runs its models) against the same one alone,
and the 9-copy patches alone. With --torch-python, PyTorch's (oneDNN)
forward, input and weight gradients run from their own virtual environment
right after, on the same machine. Medians of --repeats calls, in ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from clstm_jax.core import environment
from clstm_jax.model.clstm import ModelConfig, conv3x3_lax, conv3x3_shifted

TORCH_PIECES = r"""
import json, sys, time, torch, torch.nn.functional as F
C, B, repeats = (int(a) for a in sys.argv[1:4])
x, w = torch.rand(B, C, 28, 28), torch.rand(4 * C, C, 3, 3)
dz = torch.rand(B, 4 * C, 28, 28)
pieces = {"forward": lambda: F.conv2d(x, w, padding=1),
          "input gradient": lambda: torch.nn.grad.conv2d_input(x.shape, w, dz, padding=1),
          "kernel gradient": lambda: torch.nn.grad.conv2d_weight(x, w.shape, dz, padding=1)}
out = {}
for name, f in pieces.items():
    f(); times = []
    for _ in range(repeats):
        start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
    out[name] = sorted(times)[len(times) // 2] * 1e3
print(json.dumps(out))
"""


def median_ms(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def pieces(channels: int) -> dict:
    """name -> (function, argument shapes) of one convolution's products and their forms."""
    cfg = ModelConfig(channels=channels, conv="lax")
    conv = lambda x, k: conv3x3_lax(x, k, cfg)
    kernel_gradient = lambda f: lambda x, dz: jax.vjp(lambda k: f(x, k, cfg), jnp.zeros((3, 3, channels, 4 * channels)))[1](dz)[0]
    x, dz, kernel = (32, 28, 28, channels), (32, 28, 28, 4 * channels), (3, 3, channels, 4 * channels)
    return {
        "forward: lax.conv": (conv, (x, kernel)),
        "forward: 9-copy patches @ kernel": (lambda x, k: conv3x3_shifted(x, k, cfg), (x, kernel)),
        "input gradient: lax.conv, kernel turned 180 degrees": (lambda dz, k: conv(dz, jnp.flip(k, (0, 1)).swapaxes(2, 3)), (dz, kernel)),
        "input gradient: the shifted path's (dz @ K^T, fold)": (lambda x, k, dz: jax.vjp(lambda x: conv3x3_shifted(x, k, cfg), x)[1](dz)[0], (x, kernel, dz)),
        "kernel gradient: lax.conv's": (kernel_gradient(conv3x3_lax), (x, dz)),
        "kernel gradient: patches^T @ dz": (kernel_gradient(conv3x3_shifted), (x, dz)),
        "kernel gradient: lax.conv's, inside a lax.map of 1": (lambda x, dz: lax.map(lambda a: kernel_gradient(conv3x3_lax)(*a), (x[None], dz[None]))[0], (x, dz)),
        "the 9-copy patches alone": (lambda x: jnp.concatenate([jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))[:, dy:dy + 28, dx:dx + 28] for dy in range(3) for dx in range(3)], -1), (x,)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-python", help="the python of the peer's virtual environment (optional)")
    args = parser.parse_args()
    print(f"# {environment.summary(environment.describe())}")  # what this ran on
    rng = np.random.default_rng(0)
    print(f"# C = {args.channels}, batch 32, 28x28; jax {jax.__version__} ({jax.default_backend()}); median ms of {args.repeats}")
    print("| product | XLA defaults | project options (YNNPACK off) |")
    print("|---|---|---|")
    for name, (fn, shapes) in pieces(args.channels).items():
        inputs = [jnp.asarray(rng.random(shape, np.float32)) for shape in shapes]
        cells = [median_ms(jax.jit(fn, compiler_options=options), inputs, args.repeats)
                 for options in (None, {"xla_cpu_experimental_ynn_fusion_type": ""})]
        print(f"| {name} | {cells[0]:.1f} | {cells[1]:.1f} |", flush=True)
    if args.torch_python:
        out = subprocess.run([args.torch_python, "-c", TORCH_PIECES, str(args.channels), "32", str(args.repeats)],
                             check=True, capture_output=True, text=True).stdout
        for name, ms in json.loads(out.strip().splitlines()[-1]).items():
            print(f"| PyTorch {name} | {ms:.1f} | |")


if __name__ == "__main__":
    main()
