"""Fusion depth and modalities as parameter masks.

Each recurrent layer's channels are split into a visual group and an audio
group. Below the fusion layer every cross-modal weight is multiplied by an
exact zero in the forward pass, so it never carries a signal and gets a zero
gradient; from the fusion layer on all weights are live. Every variant has
the same parameter shapes, so models of different fusion depth stack and
vmap together.

Cross-modal weights of a layer: the image -> audio-group gates and audio ->
visual-group gates (layer 1 inputs), and every kernel entry that connects a
channel of one group to a gate of the other (recurrent kernels, and layer 2's
input kernel, whose inputs are layer 1's groups).
"""

from __future__ import annotations

import typing
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.choices import Fusion, Modality

FUSIONS = typing.get_args(Fusion)
MODALITIES = typing.get_args(Modality)


class Masks(NamedTuple):
    """What a model variant may use.

    params: a pytree like the parameters, 0/1 float32 (weights are W * M);
    image, audio: 0/1 float32 scalars multiplying the inputs (unimodal
    variants zero the missing input).
    """

    params: dict
    image: jax.Array
    audio: jax.Array


def check_variant(fusion: str, modalities: str) -> None:
    if fusion not in FUSIONS:
        raise ValueError(f"fusion = {fusion!r}; expected one of {', '.join(FUSIONS)}")
    if modalities not in MODALITIES:
        raise ValueError(f"modalities = {modalities!r}; expected one of {', '.join(MODALITIES)}")


def make_masks(params: dict, visual_channels: int, fusion: str = "initial", modalities: str = "both") -> Masks:
    """The masks of one variant, for parameters shaped like `params` (see clstm_jax.model.init).

    Only shapes are read, so `params` may be `jax.eval_shape(init, ...)`.
    visual_channels: how many of each layer's C channels (and of each gate's
    C columns) form the visual group; the rest form the audio group.
    """
    check_variant(fusion, modalities)
    channels = params["layer1"]["hidden_kernel"].shape[2]
    visual = np.arange(channels) < visual_channels  # (C,) True for the visual group
    gate_visual = np.tile(visual, 4)  # (4C,) gate columns, gates (i, f, g, o) each split alike
    same_group = (visual[:, None] == gate_visual[None, :]).astype(np.float32)  # (C, 4C)
    everything = np.ones_like(same_group)
    layer1_fused = fusion == "initial"
    layer2_fused = fusion in ("initial", "second")
    use_image = float(modalities in ("both", "visual"))
    use_audio = float(modalities in ("both", "audio"))

    layer1 = {
        # image -> gates: only visual-group gates below the fusion layer.
        "input_kernel": np.broadcast_to((gate_visual | layer1_fused) * use_image, (3, 3, 1, 4 * channels)),
        "hidden_kernel": np.broadcast_to(everything if layer1_fused else same_group, (3, 3, channels, 4 * channels)),
        # audio frame -> gates: only audio-group gates below the fusion layer.
        "audio_kernel": np.broadcast_to((~gate_visual | layer1_fused) * use_audio, params["layer1"]["audio_kernel"].shape),
        "bias": np.ones(4 * channels),
    }
    layer2_block = everything if layer2_fused else same_group
    layer2 = {
        "input_kernel": np.broadcast_to(layer2_block, (3, 3, channels, 4 * channels)),
        "hidden_kernel": np.broadcast_to(layer2_block, (3, 3, channels, 4 * channels)),
        "bias": np.ones(4 * channels),
    }
    tree = {"layer1": layer1, "layer2": layer2}
    for name in params:
        if name not in tree:
            tree[name] = jax.tree.map(lambda p: np.ones(p.shape), params[name])
    tree = jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), tree)
    for path in ("layer1", "layer2"):
        for key, value in params[path].items():
            assert tree[path][key].shape == value.shape, (path, key)
    return Masks(tree, jnp.float32(use_image), jnp.float32(use_audio))


def live_count(masks: Masks) -> int:
    """Parameters that can carry a signal and learn: the nonzero mask entries (unimodal variants also mask the weights of the zeroed input)."""
    return int(sum(int(np.count_nonzero(np.asarray(m))) for m in jax.tree.leaves(masks.params)))


def total_count(params: dict) -> int:
    return int(sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)))


# The variants of the paper: three fusion depths with both inputs, and the unimodal models (paper 4.5).
VARIANTS = {
    "initial": ("initial", "both"),
    "second": ("second", "both"),
    "fc": ("fc", "both"),
    "visual-only": ("initial", "visual"),
    "audio-only": ("initial", "audio"),
}


def parameter_summary(params: dict, visual_channels: int) -> dict[str, dict[str, int]]:
    """{variant name: {"total": N, "live": N}} for parameters shaped like `params`."""
    total = total_count(params)
    return {
        name: {"total": total, "live": live_count(make_masks(params, visual_channels, fusion, modalities))}
        for name, (fusion, modalities) in VARIANTS.items()
    }
