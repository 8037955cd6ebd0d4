"""The A.2 stream networks (clstm_jax/model/streams.py) against a plain per-step numpy loop written from
docs/model.md ("The A.2 networks"), and their parameter counts by hand."""

import jax
import numpy as np
import pytest

from clstm_jax.model import streams
from clstm_jax.model.clstm import ModelConfig

CFG = ModelConfig(channels=3, frames=4, bins=5, image_size=8, dense=6, classes=10)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def conv(x, kernel):
    """3x3 'same' cross-correlation, zero padded: x (B, H, W, Cin), kernel (3, 3, Cin, Cout)."""
    _, H, W, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(padded[:, dy:dy + H, dx:dx + W, :] @ kernel[dy, dx] for dy in range(3) for dx in range(3))


def pool(x):
    B, H, W, C = x.shape
    return x.reshape(B, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))


def lstm(z, c):
    """Gates (i, f, g, o) on the last axis."""
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def reference(p, image, spectrogram, fusion):
    """Logits (B, T, 10), one time step at a time, float64."""
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), p)
    relu = lambda x: np.maximum(x, 0)
    B, T, _ = spectrogram.shape
    C = CFG.channels
    x = image[..., None].astype(np.float64)
    if fusion == "second":
        v = pool(relu(conv(x, p["conv"]["kernel"]) + p["conv"]["bias"]))
        u, cu = np.zeros((B, C)), np.zeros((B, C))
        h, c = np.zeros(v.shape[:3] + (C,)), np.zeros(v.shape[:3] + (C,))
    else:
        v = pool(relu(conv(x, p["conv1"]["kernel"]) + p["conv1"]["bias"]))
        v = pool(relu(conv(v, p["conv2"]["kernel"]) + p["conv2"]["bias"])).reshape(B, -1)
        u1, c1, u2, c2 = (np.zeros((B, C)) for _ in range(4))
    logits = []
    for t in range(T):
        a = spectrogram[:, t].astype(np.float64)
        if fusion == "second":
            q = p["lstm"]
            u, cu = lstm(a @ q["input_kernel"] + u @ q["hidden_kernel"] + q["bias"], cu)
            k = p["clstm"]
            z = conv(v, k["input_kernel"]) + conv(h, k["hidden_kernel"]) + (u @ k["audio_kernel"])[:, None, None] + k["bias"]
            h, c = lstm(z, c)
            features = pool(h).reshape(B, -1)
        else:
            q1, q2 = p["lstm1"], p["lstm2"]
            u1, c1 = lstm(a @ q1["input_kernel"] + u1 @ q1["hidden_kernel"] + q1["bias"], c1)
            u2, c2 = lstm(u1 @ q2["input_kernel"] + u2 @ q2["hidden_kernel"] + q2["bias"], c2)
            features = np.concatenate([v, u2], axis=1)
        hidden = relu(features @ p["dense"]["kernel"] + p["dense"]["bias"])
        logits.append(hidden @ p["output"]["kernel"] + p["output"]["bias"])
    return np.stack(logits, axis=1)


@pytest.mark.parametrize("conv_path", ["shifted", "lax"])
@pytest.mark.parametrize("fusion", streams.STREAM_FUSIONS)
def test_stream_networks_equal_a_numpy_loop(fusion, conv_path):
    import dataclasses

    cfg = dataclasses.replace(CFG, conv=conv_path)
    params = streams.init(jax.random.key(1), cfg, fusion)
    params = jax.tree.map(lambda x: x + 0.1 * np.sign(np.asarray(x)) + 0.05, params)  # nonzero biases too
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 8, 8)).astype(np.float32)
    spectrogram = rng.normal(size=(2, 4, 5)).astype(np.float32)
    got = np.asarray(jax.jit(streams.apply, static_argnums=3)(params, image, spectrogram, cfg))
    np.testing.assert_allclose(got, reference(params, image, spectrogram, fusion), rtol=1e-5, atol=1e-5)


def test_parameter_counts_by_hand():
    """At the paper's size: C = 64, 201 bins, 28 x 28 images, dense 128, 10 classes."""
    cfg = ModelConfig()
    count = lambda fusion: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(
        jax.eval_shape(lambda key: streams.init(key, cfg, fusion), jax.random.key(0))))
    conv1 = 3 * 3 * 1 * 64 + 64                    # 640
    lstm_audio = (201 + 64) * 4 * 64 + 4 * 64       # 68,096
    dense_out = 128 * 10 + 10                       # 1,290
    clstm = 2 * (3 * 3 * 64 * 256) + 64 * 256 + 256  # 311,552
    assert count("second") == conv1 + lstm_audio + clstm + (7 * 7 * 64 * 128 + 128) + dense_out == 783_114
    conv2 = 3 * 3 * 64 * 64 + 64                    # 36,928
    lstm2 = (64 + 64) * 256 + 256                   # 33,024
    assert count("fc") == conv1 + conv2 + lstm_audio + lstm2 + ((7 * 7 * 64 + 64) * 128 + 128) + dense_out == 549_706
    with pytest.raises(ValueError, match="fusion = 'initial'; expected one of second, fc"):
        streams.init(jax.random.key(0), cfg, "initial")
