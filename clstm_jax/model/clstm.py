"""The multimodal convolutional LSTM as pure functions: `init` and `apply`.

At each time step t (SPEC section 2), in each C-LSTM layer:

    z_t = Kx * x_t + Kh * h_{t-1} + Wa a_t + b        (* : 3x3 'same' convolution)
    i, f, g, o = split(z_t)                            (gate order i, f, g, o)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  h_t = sigmoid(o) tanh(c_t)

Layer 1 (28x28) reads the image (the same at every step) and the audio frame
a_t (Wa a_t broadcast over positions); layer 2 (14x14) reads layer 1's 2x2
max-pooled state and has no audio term. Then 2x2 max pool, flatten 7x7xC,
dense + ReLU, dense 10, at every step. The time loop is one `lax.scan`; the
terms that do not depend on h (the image convolution, every frame's audio
projection) are computed once, outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import chex
import jax
import jax.numpy as jnp
from jax import lax

from clstm_jax.core.choices import ComputeDtype, Conv, MatmulPrecision, check_fields
from clstm_jax.model.masks import Masks

# What `conv = "auto"` picks per backend, from benchmarks/peer.py and conv_paths.py (docs/performance.md).
# Measured on CPU only; elsewhere "shifted", because vmapping lax.conv over per-model kernels becomes a
# grouped convolution, and sweeps are vmapped.
AUTO_CONV = {"cpu": "hybrid"}


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and numerics of the C-LSTM."""

    channels: int = 64  # C: channels of each C-LSTM layer (paper: 64)
    visual_channels: int | None = None  # channels of the visual group per layer in the masked family; None = C // 2 (audio gets the rest)
    frames: int = 90  # spectrogram frames = scan length (18,262 samples, hop 200 -> 90)
    bins: int = 201  # frequency bins per frame (400-point FFT -> 201)
    image_size: int = 28  # image height = width (MNIST: 28; must be divisible by 4)
    dense: int = 128  # width of the dense ReLU layer
    classes: int = 10  # output classes
    forget_bias: float = 1.0  # initial bias of the forget gate (keeps the cell open early in training)
    # 3x3 convolution: "lax" (lax.conv), "shifted" (9 shifted copies + one matmul), "hybrid" (lax.conv forward,
    # the shifted path's backward), "auto" (per backend)
    conv: Conv = "auto"
    remat: bool = False  # rematerialise each scan step in the backward pass (less memory, ~1/3 more compute)
    # dtype of every matmul's and convolution's inputs; products accumulate in float32, and the cell state,
    # the gates' nonlinearities, the logits and the loss stay float32 (docs/model.md, "Precision")
    compute_dtype: ComputeDtype = "float32"
    # jax.lax.Precision of float32 matmuls and convolutions: "default" is JAX's (TF32 on recent NVIDIA GPUs,
    # bfloat16 passes on TPU, full float32 on CPU), "highest" is full float32 everywhere
    matmul_precision: MatmulPrecision = "default"
    unroll: int = 1  # time steps per iteration of the scan (lax.scan's unroll); the same values. XLA's cost analysis counts a loop body once, so `plan` unrolls

    def __post_init__(self):
        check_fields(self, "model")
        for name in ("channels", "frames", "bins", "dense", "classes", "unroll"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} = {getattr(self, name)}; expected a positive integer")
        if self.image_size % 4:
            raise ValueError(f"model.image_size = {self.image_size}; expected a multiple of 4 (two 2x2 pools)")
        if not 0 <= self.visual_group <= self.channels:
            raise ValueError(f"model.visual_channels = {self.visual_channels}; expected 0..{self.channels}")

    @property
    def visual_group(self) -> int:
        """Channels of the masked family's visual group below the fusion layer (the first ones); the audio group has the rest."""
        return self.channels // 2 if self.visual_channels is None else self.visual_channels

    def conv_path(self) -> str:
        """The convolution actually used: `conv`, with "auto" resolved for the default backend."""
        return AUTO_CONV.get(jax.default_backend(), "shifted") if self.conv == "auto" else self.conv


def init(key: jax.Array, cfg: ModelConfig, width: int | None = None) -> dict:
    """Parameters: a plain dict of arrays.

    Kernels use LeCun-normal initialisation (fan-in = 3x3xC_in for convolutions,
    bins for the audio projection); biases are zero except the forget gate's,
    which is `cfg.forget_bias`. Gate columns are ordered (i, f, g, o). Layers
    have `width` channels: default C; the width-matched family's are 2C (clstm_jax/model/families.py).
    """
    C = width or cfg.channels
    G = 4 * C
    pooled = (cfg.image_size // 4) ** 2 * C
    normal = jax.nn.initializers.lecun_normal()
    keys = iter(jax.random.split(key, 7))
    return {
        "layer1": {
            "input_kernel": conv_kernel(next(keys), 1, G),
            "hidden_kernel": conv_kernel(next(keys), C, G),
            "audio_kernel": normal(next(keys), (cfg.bins, G)),
            "bias": gate_bias(C, cfg.forget_bias),
        },
        "layer2": {
            "input_kernel": conv_kernel(next(keys), C, G),
            "hidden_kernel": conv_kernel(next(keys), C, G),
            "bias": gate_bias(C, cfg.forget_bias),
        },
        "dense": {"kernel": normal(next(keys), (pooled, cfg.dense)), "bias": jnp.zeros(cfg.dense)},
        "output": {"kernel": normal(next(keys), (cfg.dense, cfg.classes)), "bias": jnp.zeros(cfg.classes)},
    }


def conv_kernel(key: jax.Array, c_in: int, c_out: int) -> jax.Array:
    """A LeCun-normal 3x3 kernel (3, 3, c_in, c_out), fan-in 9 c_in.

    Drawn as (9 c_in, c_out) and reshaped: the same fan-in and bit-identical values, and XLA:CPU compiles
    a vmapped 2-D draw faster than a 4-D one (one (3, 3, 2, 8) kernel: 3.3 s -> 1.1 s).
    """
    return jax.nn.initializers.lecun_normal()(key, (9 * c_in, c_out)).reshape(3, 3, c_in, c_out)


def gate_bias(channels: int, forget_bias: float) -> jax.Array:
    """The bias of a (C-)LSTM's 4C gates (i, f, g, o): zero, except the forget gate's forget_bias."""
    return jnp.zeros(4 * channels).at[channels : 2 * channels].set(forget_bias)


def numerics(cfg: ModelConfig) -> dict:
    """Keyword arguments of every matmul and convolution: the precision, and float32 accumulation."""
    return {"precision": lax.Precision[cfg.matmul_precision.upper()], "preferred_element_type": jnp.float32}


def matmul(x: jax.Array, kernel: jax.Array, cfg: ModelConfig) -> jax.Array:
    """x @ kernel with inputs in cfg.compute_dtype, accumulated and returned in float32."""
    dtype = jnp.dtype(cfg.compute_dtype)
    return jnp.matmul(x.astype(dtype), kernel.astype(dtype), **numerics(cfg))


def conv3x3_lax(x: jax.Array, kernel: jax.Array, cfg: ModelConfig) -> jax.Array:
    """3x3 'same' convolution, x (B, H, W, Cin), kernel (3, 3, Cin, Cout) -> (B, H, W, Cout)."""
    dtype = jnp.dtype(cfg.compute_dtype)
    return lax.conv_general_dilated(
        x.astype(dtype), kernel.astype(dtype), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), **numerics(cfg)
    )


def conv3x3_shifted(x: jax.Array, kernel: jax.Array, cfg: ModelConfig) -> jax.Array:
    """The same convolution as 9 shifted copies concatenated on channels and one matmul.

    XLA:CPU differentiates this several times faster than lax.conv, and vmapped
    over per-model kernels it is a batched matmul rather than a grouped
    convolution.
    """
    _, H, W, C_in = x.shape
    padded = jnp.pad(x.astype(cfg.compute_dtype), ((0, 0), (1, 1), (1, 1), (0, 0)))
    shifts = [padded[:, dy : dy + H, dx : dx + W, :] for dy in range(3) for dx in range(3)]
    patches = jnp.concatenate(shifts, axis=-1)  # (B, H, W, 9 Cin), offset-major like the kernel
    return matmul(patches, kernel.reshape(9 * C_in, -1), cfg)  # (B, H, W, Cout)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv3x3_hybrid(x: jax.Array, kernel: jax.Array, cfg: ModelConfig) -> jax.Array:
    """The convolution of `lax.conv` forward and of the shifted path backward (a custom VJP).

    XLA:CPU runs lax.conv's forward pass 1.5-3x faster than the 9-copy matmul, but differentiates it inside
    the scan 10x slower (docs/performance.md). The backward pass here is the shifted path's, recomputed
    from x: the patches are built again rather than kept, so the forward pass stores only x.
    """
    return conv3x3_lax(x, kernel, cfg)


def _hybrid_forward(x, kernel, cfg):
    return conv3x3_lax(x, kernel, cfg), (x, kernel)


def _hybrid_backward(cfg, residuals, dz):
    return jax.vjp(lambda x, kernel: conv3x3_shifted(x, kernel, cfg), *residuals)[1](dz)


conv3x3_hybrid.defvjp(_hybrid_forward, _hybrid_backward)


def conv3x3(x: jax.Array, kernel: jax.Array, cfg: ModelConfig) -> jax.Array:
    """The 3x3 'same' convolution on the path cfg selects (`conv`, "auto" resolved per backend)."""
    return {"lax": conv3x3_lax, "shifted": conv3x3_shifted, "hybrid": conv3x3_hybrid}[cfg.conv_path()](x, kernel, cfg)


def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pool, stride 2: (B, H, W, C) -> (B, H/2, W/2, C)."""
    B, H, W, C = x.shape
    return x.reshape(B, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))


def lstm_update(z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Gates z (..., 4C) in order (i, f, g, o) and cell c (..., C) -> (h, c)."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def check_inputs(image: jax.Array, spectrogram: jax.Array, cfg: ModelConfig) -> None:
    """Where data enters a network (traced shapes: checked once per compilation, free at run time):
    image (B, S, S) and spectrogram (B, frames, bins), one batch size. The CLI has already refused a config
    whose frames or bins differ from the features' (device_data.check_shapes); this guards the Python API."""
    S = cfg.image_size
    chex.assert_shape(image, (None, S, S), custom_message=f"image: expected (batch, {S}, {S})")
    chex.assert_shape(spectrogram, (image.shape[0], None, cfg.bins),
                      custom_message=f"spectrogram: expected (batch {image.shape[0]}, frames, {cfg.bins})")


def masked(params: dict, masks: Masks) -> dict:
    """W * M for every parameter: masked entries are exact zeros with zero gradient."""
    return jax.tree.map(jnp.multiply, params, masks.params)


def run(params: dict, masks: Masks, image: jax.Array, spectrogram: jax.Array, cfg: ModelConfig, keep_states: bool = False):
    """Forward pass; returns (logits (B, T, classes), states).

    image: (B, S, S) float; spectrogram: (B, T, bins) float. states is
    {"h1": (B, T, S, S, W), "h2": (B, T, S/2, S/2, W)} when keep_states, else {} (W: the parameters' width).
    """
    check_inputs(image, spectrogram, cfg)
    B, S = image.shape[0], cfg.image_size
    conv = lambda x, kernel: conv3x3(x, kernel, cfg)
    p = masked(params, masks)
    C = params["layer1"]["hidden_kernel"].shape[2]  # the layers' width
    image = image * masks.image
    spectrogram = spectrogram * masks.audio
    # Terms that do not change with h, computed once for every step.
    image_term = conv(image[..., None], p["layer1"]["input_kernel"]) + p["layer1"]["bias"]  # (B, S, S, 4C)
    audio_term = matmul(jnp.moveaxis(spectrogram, 1, 0), p["layer1"]["audio_kernel"], cfg)  # (T, B, 4C)
    layer2_kernel = jnp.concatenate([p["layer2"]["input_kernel"], p["layer2"]["hidden_kernel"]], axis=2)  # (3, 3, 2C, 4C)

    def step(carry, audio_t):
        h1, c1, h2, c2 = carry
        z1 = image_term + audio_t[:, None, None, :] + conv(h1, p["layer1"]["hidden_kernel"])  # (B, S, S, 4C)
        h1, c1 = lstm_update(z1, c1)
        x2 = max_pool2(h1)  # (B, S/2, S/2, C)
        z2 = conv(jnp.concatenate([x2, h2], axis=-1), layer2_kernel) + p["layer2"]["bias"]  # (B, S/2, S/2, 4C)
        h2, c2 = lstm_update(z2, c2)
        out = {"pooled": max_pool2(h2)}  # (B, S/4, S/4, C)
        if keep_states:
            out.update(h1=h1, h2=h2)
        return (h1, c1, h2, c2), out

    if cfg.remat:
        step = jax.checkpoint(step)
    zeros = lambda size: jnp.zeros((B, size, size, C), image.dtype)
    _, outs = lax.scan(step, (zeros(S), zeros(S), zeros(S // 2), zeros(S // 2)), audio_term, unroll=cfg.unroll)
    features = outs.pop("pooled").reshape(audio_term.shape[0], B, -1)  # (T, B, S/4 * S/4 * C)
    hidden = jax.nn.relu(matmul(features, p["dense"]["kernel"], cfg) + p["dense"]["bias"])  # (T, B, dense)
    logits = matmul(hidden, p["output"]["kernel"], cfg) + p["output"]["bias"]  # (T, B, classes)
    states = {name: jnp.moveaxis(value, 0, 1) for name, value in outs.items()}
    return jnp.moveaxis(logits, 0, 1), states


def apply(params: dict, masks: Masks, image: jax.Array, spectrogram: jax.Array, cfg: ModelConfig) -> jax.Array:
    """Logits at every time step, (B, T, classes); the prediction is the last step's."""
    return run(params, masks, image, spectrogram, cfg)[0]
