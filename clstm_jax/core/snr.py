"""Signal-to-noise ratios: linear power ratios, with ORIG (inf) for the clean input; one parser, one label."""

from __future__ import annotations

import math

from clstm_jax.core.errors import ConfigError

ORIG = math.inf  # the SNR that means "no noise"


def snr_value(value: float | str, key: str = "SNR") -> float:
    """An SNR as a float: "orig" (or ORIG itself) -> inf, else a positive finite number or its text (as a
    command line gives it).

    Anything else raises a ConfigError naming `key`, the value and what is expected.
    """
    number = value
    if value == ORIG:
        return ORIG
    if isinstance(value, str):
        if value.strip().lower() == "orig":
            return ORIG
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key} = {value!r}: expected a positive number or 'orig'") from None
    if not (number > 0 and math.isfinite(number)):
        raise ConfigError(f"{key} = {value!r}: expected a positive number (a linear power ratio) or 'orig'")
    return float(number)


def snr_label(value: float) -> str:
    """'orig' for inf, else the shortest form of the number (as in model names, CSVs and figures)."""
    return "orig" if math.isinf(value) else f"{value:g}"
