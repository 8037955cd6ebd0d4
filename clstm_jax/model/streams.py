"""The paper's own late-fusion networks (appendix A.2): separate visual and audio streams, as pure functions.

Unlike the masked C-LSTM (clstm_jax.model.clstm, clstm_jax.model.masks), whose late variants give each modality
half of one network's channels, each stream here has the full width C (docs/model.md, "The A.2
networks", lists every choice A.2 leaves open and the parameter counts):

second  image  -> conv 3x3, C, ReLU -> 2x2 max pool                       (once: the image is static)
        a_t    -> LSTM, C units -> u_t
        C-LSTM at S/2, C channels: z_t = Kx * v + Kh * h_{t-1} + Wu u_t + b  (Wu u_t broadcast over positions)
        -> 2x2 max pool -> dense + ReLU -> dense, at every step
fc      image  -> (conv 3x3, C, ReLU -> 2x2 max pool) x 2 -> flatten     (once)
        a_t    -> LSTM, C units -> LSTM, C units -> u_t
        [v, u_t] -> dense + ReLU -> dense, at every step

Both return logits at every step, (B, T, classes), like the C-LSTM; the prediction is the last step's
(A.2's "last timestep of the output of the LSTM layers").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from clstm_jax.model.clstm import (
    ModelConfig,
    check_inputs,
    conv3x3,
    conv_kernel,
    gate_bias,
    lstm_update,
    matmul,
    max_pool2,
)
from clstm_jax.model.masks import total_count

STREAM_FUSIONS = ("second", "fc")


def init(key: jax.Array, cfg: ModelConfig, fusion: str) -> dict:
    """Parameters of the A.2 network of `fusion` ("second" or "fc"): a plain dict of arrays.

    Initialisation as clstm_jax.model.clstm.init: LeCun-normal kernels (fan-in 3x3xC_in for convolutions),
    zero biases except the forget gates' (cfg.forget_bias).
    """
    if fusion not in STREAM_FUSIONS:
        raise ValueError(f"fusion = {fusion!r}; expected one of {', '.join(STREAM_FUSIONS)} (A.2 has no other stream network)")
    C, G, S = cfg.channels, 4 * cfg.channels, cfg.image_size
    normal = jax.nn.initializers.lecun_normal()
    keys = iter(jax.random.split(key, 8))
    conv = lambda c_in, c_out: {"kernel": conv_kernel(next(keys), c_in, c_out), "bias": jnp.zeros(c_out)}
    lstm = lambda n_in: {"input_kernel": normal(next(keys), (n_in, G)), "hidden_kernel": normal(next(keys), (C, G)),
                         "bias": gate_bias(C, cfg.forget_bias)}
    dense = lambda n_in, n_out: {"kernel": normal(next(keys), (n_in, n_out)), "bias": jnp.zeros(n_out)}
    pooled = (S // 4) ** 2 * C
    if fusion == "second":
        return {
            "conv": conv(1, C),
            "lstm": lstm(cfg.bins),
            "clstm": {"input_kernel": conv_kernel(next(keys), C, G), "hidden_kernel": conv_kernel(next(keys), C, G),
                      "audio_kernel": normal(next(keys), (C, G)), "bias": gate_bias(C, cfg.forget_bias)},
            "dense": dense(pooled, cfg.dense),
            "output": dense(cfg.dense, cfg.classes),
        }
    return {
        "conv1": conv(1, C),
        "conv2": conv(C, C),
        "lstm1": lstm(cfg.bins),
        "lstm2": lstm(C),
        "dense": dense(pooled + C, cfg.dense),  # rows: the flattened conv stream, then the LSTM's u_t
        "output": dense(cfg.dense, cfg.classes),
    }


def apply(params: dict, image: jax.Array, spectrogram: jax.Array, cfg: ModelConfig) -> jax.Array:
    """Logits at every step, (B, T, classes), of the A.2 network whose parameters these are.

    image: (B, S, S); spectrogram: (B, T, bins). The family is read from the parameters' names.
    """
    check_inputs(image, spectrogram, cfg)
    conv_relu = lambda x, p: jax.nn.relu(conv3x3(x, p["kernel"], cfg) + p["bias"])
    lstm_input = lambda x, p: matmul(x, p["input_kernel"], cfg) + p["bias"]  # every frame at once
    lstm_step = lambda z, p, h, c: lstm_update(z + matmul(h, p["hidden_kernel"], cfg), c)
    B, C = image.shape[0], cfg.channels
    frames = jnp.moveaxis(spectrogram, 1, 0)  # (T, B, bins)
    zeros = lambda *shape: jnp.zeros((B, *shape, C), image.dtype)

    if "clstm" in params:  # second-layer fusion
        visual = max_pool2(conv_relu(image[..., None], params["conv"]))  # (B, S/2, S/2, C)
        p = params["clstm"]
        visual_term = conv3x3(visual, p["input_kernel"], cfg) + p["bias"]  # (B, S/2, S/2, 4C)
        half = visual.shape[1]

        def step(carry, z_audio):
            u, cu, h, c = carry
            u, cu = lstm_step(z_audio, params["lstm"], u, cu)  # (B, C)
            z = visual_term + matmul(u, p["audio_kernel"], cfg)[:, None, None, :] + conv3x3(h, p["hidden_kernel"], cfg)
            h, c = lstm_update(z, c)
            return (u, cu, h, c), max_pool2(h).reshape(B, -1)

        carry = (zeros(), zeros(), zeros(half, half), zeros(half, half))
        _, features = lax.scan(step, carry, lstm_input(frames, params["lstm"]), unroll=cfg.unroll)
        hidden = matmul(features, params["dense"]["kernel"], cfg)  # (T, B, dense)
    else:  # fc fusion
        visual = max_pool2(conv_relu(max_pool2(conv_relu(image[..., None], params["conv1"])), params["conv2"]))
        visual = visual.reshape(B, -1)  # (B, (S/4)^2 C)
        kernel = params["dense"]["kernel"]
        visual_rows, audio_rows = kernel[: visual.shape[1]], kernel[visual.shape[1] :]

        def step(carry, z_audio):
            u1, c1, u2, c2 = carry
            u1, c1 = lstm_step(z_audio, params["lstm1"], u1, c1)
            u2, c2 = lstm_step(lstm_input(u1, params["lstm2"]), params["lstm2"], u2, c2)
            return (u1, c1, u2, c2), u2

        _, audio = lax.scan(step, (zeros(), zeros(), zeros(), zeros()), lstm_input(frames, params["lstm1"]),
                            unroll=cfg.unroll)  # (T, B, C)
        # [v, u_t] @ W = v @ W_v + u_t @ W_u: the visual half once, not at every step.
        hidden = matmul(visual, visual_rows, cfg) + matmul(audio, audio_rows, cfg)  # (T, B, dense)
    hidden = jax.nn.relu(hidden + params["dense"]["bias"])
    logits = matmul(hidden, params["output"]["kernel"], cfg) + params["output"]["bias"]
    return jnp.moveaxis(logits, 0, 1)


def parameter_summary(cfg: ModelConfig) -> dict[str, dict[str, int]]:
    """{"a2-second": {"total": N, "live": N}, "a2-fc": ...}: every parameter of a stream network is live."""
    counts = {}
    for fusion in STREAM_FUSIONS:
        total = total_count(jax.eval_shape(lambda key: init(key, cfg, fusion), jax.random.key(0)))
        counts[f"a2-{fusion}"] = {"total": total, "live": total}
    return counts
