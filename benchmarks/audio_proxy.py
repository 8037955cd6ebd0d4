"""A cheap proxy of the audio-only C-LSTM, for screening audio features and sizes (docs/training.md).

In an audio-only model the image is zero and the audio term Wa a_t is the same
at every position, so away from the borders the C-LSTM is a plain 2-layer LSTM
of C units. This script trains that LSTM (C units per layer, dense 64 + ReLU,
10 classes, last-step loss, Adam, batch 16, fresh noise every step as the
sweep does) on the project's own features (`features.make_batch`), one model
per training SNR, and prints the best validation accuracy over the checks
every 160 steps (all validation recordings, at the training SNR). It runs in
seconds where the C-LSTM takes minutes, and ranks feature choices as the
C-LSTM does (both tables in docs/training.md).

    python benchmarks/audio_proxy.py --pad 5800 --hop 600 --compression log --normalization utterance --snrs inf 2 0.5
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import optax

from clstm_jax.core import environment
from clstm_jax.data.features import FeatureConfig, bin_stats, make_batch
from clstm_jax.data.paths import resolve_data_dir
from clstm_jax.data.splits import load_splits


def init(key, bins: int, channels: int, forget_bias: float) -> dict:
    keys = jax.random.split(key, 6)
    normal = jax.nn.initializers.lecun_normal()
    bias = jnp.zeros(4 * channels).at[channels : 2 * channels].set(forget_bias)
    return {
        "W1": normal(keys[0], (bins, 4 * channels)), "U1": normal(keys[1], (channels, 4 * channels)), "b1": bias,
        "W2": normal(keys[2], (channels, 4 * channels)), "U2": normal(keys[3], (channels, 4 * channels)), "b2": bias,
        "D": normal(keys[4], (channels, 64)), "d": jnp.zeros(64), "O": normal(keys[5], (64, 10)), "o": jnp.zeros(10),
    }


def lstm_cell(z, c):
    i, f, g, o = jnp.split(z, 4, -1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def logits(p: dict, spectrograms: jax.Array) -> jax.Array:
    """(B, T, bins) -> last-step logits (B, 10)."""
    zeros = jnp.zeros((spectrograms.shape[0], p["U1"].shape[0]))

    def step(carry, a):
        h1, c1, h2, c2 = carry
        h1, c1 = lstm_cell(a @ p["W1"] + h1 @ p["U1"] + p["b1"], c1)
        h2, c2 = lstm_cell(h1 @ p["W2"] + h2 @ p["U2"] + p["b2"], c2)
        return (h1, c1, h2, c2), None

    (_, _, h2, _), _ = jax.lax.scan(step, (zeros,) * 4, jnp.moveaxis(spectrograms, 0, 1))
    return jax.nn.relu(h2 @ p["D"] + p["d"]) @ p["O"] + p["o"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pad", type=int, default=5800, help="data.pad_length")
    parser.add_argument("--hop", type=int, default=600, help="features.hop_length (window 400)")
    parser.add_argument("--compression", default="log")
    parser.add_argument("--normalization", default="utterance")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--forget-bias", type=float, default=1.0)
    parser.add_argument("--snrs", type=float, nargs="+", default=[float("inf"), 2.0, 0.5])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    print(f"# {environment.summary(environment.describe())}")  # what this ran on

    splits = load_splits(resolve_data_dir(args.data_dir), None, 0, args.pad)
    cfg = FeatureConfig(hop_length=args.hop, compression=args.compression, normalization=args.normalization)
    stats = bin_stats(splits["train"].waves, splits["train"].wave_lengths, cfg) if cfg.normalization == "standardize" else None
    train, val = (dataclasses.replace(s, waves=jnp.asarray(s.waves), wave_lengths=jnp.asarray(s.wave_lengths))
                  for s in (splits["train"], splits["validation"]))
    optimizer = optax.adam(args.lr)

    def features(key, split, idx, snr):
        no_image = jnp.zeros((len(idx), 28, 28), jnp.uint8)
        return make_batch(key, no_image, split.waves[idx], split.wave_lengths[idx], snr, jnp.inf, cfg, stats)[1]

    @jax.jit
    def train_step(p, opt_state, key, snr):
        pick, noise = jax.random.split(key)
        idx = jax.random.randint(pick, (args.batch,), 0, len(train.waves))
        spectrograms, labels = features(noise, train, idx, snr), jnp.asarray(train.wave_labels)[idx]
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, spectrograms), labels).mean()
        updates, opt_state = optimizer.update(jax.grad(loss)(p), opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    @jax.jit
    def accuracy(p, snr):
        idx = jnp.arange(len(val.waves))
        return jnp.mean(logits(p, features(jax.random.key(99), val, idx, snr)).argmax(-1) == jnp.asarray(val.wave_labels))

    best = []
    for snr in args.snrs:
        p = init(jax.random.key(0), cfg.n_bins, args.channels, args.forget_bias)
        opt_state, top = optimizer.init(p), 0.0
        for t in range(args.steps):
            p, opt_state = train_step(p, opt_state, jax.random.key(t + 1), snr)
            if (t + 1) % 160 == 0:
                top = max(top, float(accuracy(p, snr)))
        best.append(top)
    print(f"pad {args.pad} hop {args.hop} {args.compression}/{args.normalization} C {args.channels} "
          f"{args.steps} x {args.batch} lr {args.lr}: " + "  ".join(f"SNR {s:g}: {a:.3f}" for s, a in zip(args.snrs, best)))


if __name__ == "__main__":
    main()
