"""Enum-like settings as `Literal` types, and the one check of their values.

A field annotated with one of these types (or a tuple of one) accepts only the
listed strings. `check_choice` is the check: the config loader calls it on each
value it reads (so a TOML or `--set` error names its key), and the config
dataclasses call it through `check_fields` when built directly in Python.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

Window = Literal["hann", "rect"]
Compression = Literal["none", "log1p", "log"]
Normalization = Literal["none", "max", "standardize", "utterance"]
Conv = Literal["auto", "lax", "shifted", "hybrid"]
ComputeDtype = Literal["float32", "bfloat16"]
MatmulPrecision = Literal["default", "high", "highest"]
LengthUnit = Literal["examples", "batches"]
Fusion = Literal["initial", "second", "fc"]
Modality = Literal["both", "visual", "audio"]
Family = Literal["masked", "matched", "a2"]  # clstm_jax/model/families.py
# the named experiments of clstm_jax/config/experiments.py (EXPERIMENTS); "" = the product of the sweep axes
Experiment = Literal["fusion", "appendix_fusion", "snr_grid", "unimodal_visual", "unimodal_audio", "study", ""]
StudyScope = Literal["paper", "fusion"]  # clstm_jax/study/pipeline.py
Auto = Literal["auto"]  # a size chosen to fit the memory budget (clstm_jax/training/memory.py)


def choices(annotation) -> tuple[str, ...] | None:
    """The strings a Literal annotation (or a tuple of one) allows; None for other annotations."""
    if typing.get_origin(annotation) is tuple:
        annotation = typing.get_args(annotation)[0]
    return typing.get_args(annotation) if typing.get_origin(annotation) is Literal else None


def check_choice(key: str, value, annotation) -> None:
    """Raise ValueError naming the key, the value and the allowed strings, unless value is one of them."""
    allowed = choices(annotation)
    if allowed is not None and not (isinstance(value, str) and value in allowed):
        raise ValueError(f"{key} = {value!r}: expected one of {', '.join(a or repr(a) for a in allowed)}")


def check_fields(instance, section: str) -> None:
    """check_choice on every Literal-typed field of a dataclass instance (items of tuple fields one by one)."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        for item in value if isinstance(value, tuple) else (value,):
            check_choice(f"{section}.{field.name}", item, hints[field.name])
