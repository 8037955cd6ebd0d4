"""clstm_jax against the PyTorch peer, side by side in one run: training step and forward pass.

    python benchmarks/peer.py --torch-python /tmp/torch-peer/bin/python

The peer (`../shared/peers/torch_clstm.py`, plain eager PyTorch) runs from its
own virtual environment, given by --torch-python; torch is never imported
here. Set it up once as the peer's docstring says:

    python3 -m venv /tmp/torch-peer && /tmp/torch-peer/bin/pip install torch==2.13.0 numpy

Every cell (C, frames T, models M, mode) is measured on the same random
inputs shape as the peer's: --batch pairs per model (32, the peer's own
default; the cpu preset trains on 16), 201 bins, initial fusion.
`train` is one Adam step (loss on the last step); `forward` is the logits
pass that `evaluate` runs. M models run one after another in the peer, and
in one jitted program in clstm_jax (`sweep.over_models` with --model-chunk,
the cpu preset's 1 by default). Peer and project take turns, one cell at a
time, for --rounds rounds, so that both see the same machine; the project's
programs are compiled before the first round. Prints one markdown row per
cell: median seconds per step (all M models), and peer / project (above 1:
clstm_jax is faster).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.core import compiler, environment
from clstm_jax.model.clstm import ModelConfig, apply, init
from clstm_jax.model.masks import make_masks
from clstm_jax.model.multi_model import over_models
from clstm_jax.training.step import make_optimizer, train_step

PEER_FILE = Path(__file__).resolve().parents[2] / "shared" / "peers" / "torch_clstm.py"
BINS = 201

# Run by the peer's interpreter: import the peer's network from its file, time `repeats` steps after one warm-up.
PEER_HARNESS = r"""
import importlib.util, json, sys, time
import torch
import torch.nn.functional as F
spec = importlib.util.spec_from_file_location("torch_clstm", sys.argv[1])
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)
C, T, B, M, repeats = (int(x) for x in sys.argv[2:7])
mode = sys.argv[7]
torch.manual_seed(0)
models = [peer.CLSTM(C) for _ in range(M)]
optimizers = [torch.optim.Adam(m.parameters(), 1e-3) for m in models]
image, spectrogram, labels = torch.rand(B, 1, 28, 28), torch.rand(B, T, 201), torch.arange(B) % 10

def train():
    for m, o in zip(models, optimizers):
        o.zero_grad()
        F.cross_entropy(m(image, spectrogram), labels).backward()
        o.step()

def forward():
    with torch.no_grad():
        for m in models:
            m(image, spectrogram)

step = train if mode == "train" else forward
step()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def peer_times(python: str, peer_file: Path, channels: int, frames: int, models: int, mode: str, repeats: int,
               batch: int) -> dict:
    args = [python, "-c", PEER_HARNESS, str(peer_file), str(channels), str(frames), str(batch), str(models),
            str(repeats), mode]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def project_program(channels: int, frames: int, models: int, mode: str, chunk: int, conv: str, batch: int,
                    remat: bool):
    """(compiled step, its arguments) for M models of the project's default path, on random inputs."""
    cfg = ModelConfig(channels=channels, frames=frames, bins=BINS, conv=conv, remat=remat)
    optimizer = make_optimizer()
    params = jax.vmap(init, in_axes=(0, None))(jax.random.split(jax.random.key(0), models), cfg)
    masks = make_masks(jax.tree.map(lambda x: x[0], params), cfg.visual_group, "initial")
    masks = jax.tree.map(lambda m: jnp.broadcast_to(m, (models, *jnp.shape(m))), masks)
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.random((models, batch, 28, 28), np.float32))
    spectrogram = jnp.asarray(rng.random((models, batch, frames, BINS), np.float32))
    labels = jnp.asarray(np.arange(batch) % 10)
    if mode == "train":
        one = lambda p, o, m, x, s: train_step(p, o, m, x, s, labels, cfg, optimizer, "masked")
        fn = lambda p, o, m, x, s: over_models(one, (p, o, m, x, s), chunk)
        args = (params, jax.vmap(optimizer.init)(params), masks, image, spectrogram)
        step = compiler.jit(fn, donate_argnums=(0, 1))
    else:
        fn = lambda p, m, x, s: over_models(partial(apply, cfg=cfg), (p, m, x, s), chunk)
        args = (params, masks, image, spectrogram)
        step = compiler.jit(fn)
    return step.lower(*args).compile(), list(args)


def project_times(program, mode: str, repeats: int) -> list[float]:
    step, args = program
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(step(*args))
        times.append(time.perf_counter() - start)
        if mode == "train":  # the state was donated: carry the new one
            args[0], args[1] = out[0], out[1]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-python", required=True, help="the python of the peer's virtual environment")
    parser.add_argument("--peer", type=Path, default=PEER_FILE, help="path of torch_clstm.py")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--frames", type=int, nargs="+", default=[23, 90])
    parser.add_argument("--models", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--modes", nargs="+", default=["train", "forward"], choices=["train", "forward"])
    parser.add_argument("--model-chunk", type=int, default=1, help="train.model_chunk of the project (cpu preset: 1)")
    parser.add_argument("--conv", default="auto", help="model.conv of the project")
    parser.add_argument("--batch", type=int, default=32, help="pairs per model and step (the peer's 32; cpu preset: 16)")
    parser.add_argument("--remat", action="store_true", help="model.remat in the project (the cpu preset's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per cell and round, each side")
    args = parser.parse_args()
    if not Path(args.torch_python).exists():
        parser.error(f"--torch-python {args.torch_python}: no such file; set up the peer's venv (see --help)")
    print(f"# {environment.summary(environment.describe())}")  # what this ran on
    if not args.peer.is_file():
        parser.error(f"--peer {args.peer}: no such file; expected ../shared/peers/torch_clstm.py")

    cells = list(itertools.product(args.channels, args.frames, args.models, args.modes))
    programs = {}
    for cell in cells:
        started = time.perf_counter()
        programs[cell] = project_program(*cell, args.model_chunk, args.conv, args.batch, args.remat)
        project_times(programs[cell], cell[3], 1)  # warm-up
        print(f"# compiled {cell} in {time.perf_counter() - started:.0f} s", flush=True)
    peer, ours, info = {c: [] for c in cells}, {c: [] for c in cells}, {}
    for _ in range(args.rounds):
        for cell in cells:
            result = peer_times(args.torch_python, args.peer, *cell, args.repeats, args.batch)
            info = result
            peer[cell] += result["times"]
            ours[cell] += project_times(programs[cell], cell[3], args.repeats)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"# {time.strftime('%Y-%m-%d')}, {cpu}, jax {jax.__version__} ({jax.default_backend()}), "
          f"torch {info.get('torch')} ({info.get('threads')} threads); batch {args.batch} per model; "
          f"project model_chunk {args.model_chunk}, conv {args.conv}, remat {args.remat}; {args.rounds} alternating rounds x "
          f"{args.repeats} steps")
    print("| mode | C | T | models | peer s/step | clstm_jax s/step | peer / clstm_jax |")
    print("|---|---|---|---|---|---|---|")
    for cell in cells:
        p, o = float(np.median(peer[cell])), float(np.median(ours[cell]))
        channels, frames, models, mode = cell
        print(f"| {mode} | {channels} | {frames} | {models} | {p:.3f} | {o:.3f} | {p / o:.2f} |", flush=True)


if __name__ == "__main__":
    main()
