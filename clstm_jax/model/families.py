"""Model families, and the groups in which a sweep stacks them.

A family is how a model lays out its two modalities (docs/model.md):
- masked: one C-LSTM of C channels; below the fusion layer each modality has its own group of them
  (C/2 each by default), the cross-modal weights masked (clstm_jax/model/masks.py);
- matched: the width-matched masked C-LSTM: 2C-wide parameters, C channels for each modality below the
  fusion layer and C from it on, the rest masked;
- a2: the paper's own late-fusion networks, separate streams (appendix A.2, clstm_jax/model/streams.py).

Initial fusion is one network in every family: A.2's initial model is the C-LSTM itself, and the
width-matched initial model computes what the C-wide one does. So a model of initial fusion is always
of the masked family (config.ModelSpec makes it so), and a job never trains it twice.

Models whose parameters have the same shapes form a group, stacked and trained in one vmapped program
(GROUPS: masked, matched, a2-second, a2-fc). A sweep keeps its models ordered by group, so results per
model, concatenated group after group, follow the models' order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clstm_jax.model import clstm, streams
from clstm_jax.model.clstm import ModelConfig
from clstm_jax.model.masks import VARIANTS, Masks, variant_masks
from clstm_jax.model.masks import parameter_summary as masks_summary
from clstm_jax.model.multi_model import model_mesh
from clstm_jax.model.spec import ModelSpec

GROUPS = ("masked", "matched", "a2-second", "a2-fc")


def group_of(spec: ModelSpec) -> str:
    """The group of a model: its family, and for A.2 networks also its fusion depth (two networks)."""
    return f"a2-{spec.fusion}" if spec.family == "a2" else spec.family


def ordered(specs: list[ModelSpec]) -> list[ModelSpec]:
    """specs ordered by group (GROUPS), each group in the order given."""
    return sorted(specs, key=lambda spec: GROUPS.index(group_of(spec)))


def by_group(specs: list[ModelSpec]) -> dict[str, list[ModelSpec]]:
    """{group: its specs}, groups in GROUPS order; specs must already be `ordered`."""
    if list(specs) != ordered(specs):
        raise ValueError("models not ordered by family group; order them with clstm_jax.model.families.ordered")
    groups: dict[str, list[ModelSpec]] = {}
    for spec in specs:
        groups.setdefault(group_of(spec), []).append(spec)
    return groups


def group_counts(specs: list[ModelSpec]) -> list[int]:
    """Models per group, groups in GROUPS order (specs `ordered`)."""
    return [len(members) for members in by_group(specs).values()]


def mesh(specs: list[ModelSpec]):
    """The model mesh of a program over these models: as many devices as divide every group's count."""
    return model_mesh(*group_counts(specs))


def init(key: jax.Array, cfg: ModelConfig, group: str) -> dict:
    """Initial parameters of a model of `group`."""
    if group == "masked":
        return clstm.init(key, cfg)
    if group == "matched":
        return clstm.init(key, cfg, width=2 * cfg.channels)
    return streams.init(key, cfg, group.removeprefix("a2-"))


def masks(shapes: dict, cfg: ModelConfig, spec: ModelSpec) -> Masks:
    """What the model may use: its variant's parameter masks (none for the A.2 networks, whose every
    weight is live) and the input scales (0 zeroes the input a unimodal model lacks)."""
    if spec.family == "a2":
        scale = lambda used: jnp.float32(spec.modalities in ("both", used))
        return Masks({}, scale("visual"), scale("audio"))
    return variant_masks(shapes, cfg, spec.fusion, spec.modalities, matched=spec.family == "matched")


def apply(params: dict, masks: Masks, image: jax.Array, spectrogram: jax.Array, cfg: ModelConfig,
          group: str) -> jax.Array:
    """Logits at every step, (B, T, classes), of a model of `group` (GROUPS; `group_of` a spec)."""
    if group in ("masked", "matched"):
        return clstm.apply(params, masks, image, spectrogram, cfg)
    return streams.apply(params, image * masks.image, spectrogram * masks.audio, cfg)


def sizes(grouped: dict) -> dict[str, int]:
    """{group: models} of a pytree keyed by group whose leaves have a leading model axis."""
    return {group: jax.tree.leaves(tree)[0].shape[0] for group, tree in grouped.items()}


def concat(values: dict[str, jax.Array]) -> jax.Array:
    """Per-model values of each group, concatenated in GROUPS order (the models' order)."""
    return jnp.concatenate([values[group] for group in GROUPS if group in values])


def split(values: jax.Array, counts: dict[str, int]) -> dict[str, jax.Array]:
    """The inverse of concat: {group: its models' rows} of per-model values in the models' order."""
    out, start = {}, 0
    for group in (g for g in GROUPS if g in counts):
        out[group] = values[start : start + counts[group]]
        start += counts[group]
    return out


def parameter_summary(cfg: ModelConfig) -> dict[str, tuple[str, dict[str, int]]]:
    """Every variant of every family: {name: ("family, (fusion, inputs)", {"total": n, "live": n})}, the
    masked family's variants first, then the width-matched late ones and the A.2 networks (initial fusion is
    one network in every family, listed once)."""
    out = {}
    for prefix, family, width in (("", "masked", cfg.channels), ("matched-", "matched", 2 * cfg.channels)):
        shapes = jax.eval_shape(lambda key: clstm.init(key, cfg, width), jax.random.key(0))
        for name, counts in masks_summary(shapes, cfg, matched=family == "matched").items():
            fusion, modalities = VARIANTS[name]
            if family == "masked" or fusion != "initial":
                out[prefix + name] = (f"{family}, ({fusion}, {modalities})", counts)
    for name, counts in streams.parameter_summary(cfg).items():
        out[name] = (f"a2, ({name.removeprefix('a2-')}, both)", counts)
    return out
