"""Fusion depth and modalities as parameter masks.

Each recurrent layer's channels are split into a visual group and an audio
group. Below the fusion layer every cross-modal weight is multiplied by an
exact zero in the forward pass, so it never carries a signal and gets a zero
gradient; from the fusion layer on all weights are live. Every variant has
the same parameter shapes, so models of different fusion depth stack and
vmap together.

The width-matched family (`sweep.family = "matched"`, clstm_jax/model/families.py) gives
each modality's group C channels below the fusion layer, as the paper's A.2 networks do: the layers
are 2C wide, and a layer at or above the fusion layer uses its first C
channels, the others masked out entirely. Late and initial fusion then differ
in where the modalities meet, not in how many channels each gets.

Cross-modal weights of a layer: the image -> audio-group gates and audio ->
visual-group gates (layer 1 inputs), and every kernel entry that connects a
channel of one group to a gate of the other (recurrent kernels, and layer 2's
input kernel, whose inputs are layer 1's groups).
"""

from __future__ import annotations

import typing
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.core.choices import Fusion, Modality, check_choice

FUSIONS = typing.get_args(Fusion)


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
    check_choice("fusion", fusion, Fusion)
    check_choice("modalities", modalities, Modality)


def make_masks(params: dict, visual_channels: int, fusion: str = "initial", modalities: str = "both",
               fused_channels: int | None = None) -> Masks:
    """The masks of one variant, for parameters shaped like `params` (see clstm_jax.model.clstm.init).

    Only shapes are read, so `params` may be `jax.eval_shape(init, ...)`.
    visual_channels: how many of each layer's channels (and of each gate's
    columns) form the visual group below the fusion layer; the rest form the
    audio group. fused_channels: how many channels (the first ones) are live in
    a layer at or above the fusion layer; None = all. A channel that is not
    live has every weight into and out of it masked and a zero bias, so its
    state stays exactly zero (sigmoid(0) * 0 + sigmoid(0) * tanh(0) = 0).
    The width-matched family's parameters are 2C wide with
    visual_channels = fused_channels = C.
    """
    check_variant(fusion, modalities)
    channels = params["layer1"]["hidden_kernel"].shape[2]
    index = np.arange(channels)
    visual = index < visual_channels  # (W,) True for the visual group
    layer1_fused = fusion == "initial"
    layer2_fused = fusion in ("initial", "second")
    live = lambda fused: index < (channels if fused_channels is None or not fused else fused_channels)
    live1, live2 = live(layer1_fused), live(layer2_fused)
    gates = lambda x: np.tile(x, 4)  # (4W,) gate columns, gates (i, f, g, o) each laid out like the channels

    def block(live_in, live_out, fused):
        """(W, 4W): channel -> gate weights that connect two live channels, of one group unless fused."""
        same_group = visual[:, None] == gates(visual)[None, :]
        return live_in[:, None] & gates(live_out)[None, :] & (fused | same_group)

    use_image = float(modalities in ("both", "visual"))
    use_audio = float(modalities in ("both", "audio"))
    kernel = lambda m: np.broadcast_to(m, (3, 3, *m.shape))
    layer1 = {
        # image -> gates: only visual-group gates below the fusion layer.
        "input_kernel": kernel((gates(live1) & (gates(visual) | layer1_fused))[None, :] * use_image),
        "hidden_kernel": kernel(block(live1, live1, layer1_fused)),
        # audio frame -> gates: only audio-group gates below the fusion layer.
        "audio_kernel": np.broadcast_to((gates(live1) & (~gates(visual) | layer1_fused)) * use_audio,
                                        params["layer1"]["audio_kernel"].shape),
        "bias": gates(live1),
    }
    layer2 = {
        "input_kernel": kernel(block(live1, live2, layer2_fused)),
        "hidden_kernel": kernel(block(live2, live2, layer2_fused)),
        "bias": gates(live2),
    }
    positions = params["dense"]["kernel"].shape[0] // channels  # the dense layer reads (S/4, S/4, W), channels last
    tree = {"layer1": layer1, "layer2": layer2,
            "dense": {"kernel": np.broadcast_to(np.tile(live2, positions)[:, None], params["dense"]["kernel"].shape),
                      "bias": np.ones(params["dense"]["bias"].shape)}}
    for name in params:
        if name not in tree:
            tree[name] = jax.tree.map(lambda p: np.ones(p.shape), params[name])
    tree = jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), tree)
    chex.assert_trees_all_equal_shapes(tree, params)
    return Masks(tree, jnp.float32(use_image), jnp.float32(use_audio))


def variant_masks(params: dict, cfg, fusion: str = "initial", modalities: str = "both", matched: bool = False) -> Masks:
    """make_masks with the groups and the fused width of a masked C-LSTM of `cfg` (a ModelConfig):
    the masked family's (cfg.visual_group visual channels, all fused), or with `matched` the width-matched
    family's (2C-wide parameters: C per modality below the fusion layer, C fused)."""
    if matched:
        return make_masks(params, cfg.channels, fusion, modalities, cfg.channels)
    return make_masks(params, cfg.visual_group, fusion, modalities)


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


def parameter_summary(params: dict, cfg, matched: bool = False) -> dict[str, dict[str, int]]:
    """{variant name: {"total": N, "live": N}} for parameters shaped like `params` (see variant_masks)."""
    total = total_count(params)
    return {
        name: {"total": total, "live": live_count(variant_masks(params, cfg, fusion, modalities, matched))}
        for name, (fusion, modalities) in VARIANTS.items()
    }
