"""One model of a sweep, named: its fusion depth, modalities, training SNRs, seed and family."""

from __future__ import annotations

from dataclasses import dataclass

from clstm_jax.core.choices import Family, check_choice
from clstm_jax.core.snr import snr_label, snr_value


@dataclass(frozen=True)
class ModelSpec:
    """One model of a sweep: a point of the grid.

    family: masked, matched or a2 (clstm_jax/model/families.py). Initial fusion is one network in every family,
    so a spec of initial fusion is always made the masked family's: equal models compare (and deduplicate)
    equal.
    """

    fusion: str
    modalities: str
    audio_snr: float  # inf = orig
    visual_snr: float
    seed: int
    family: str = "masked"

    def __post_init__(self):
        check_choice("family", self.family, Family)
        if self.fusion == "initial":
            object.__setattr__(self, "family", "masked")

    @classmethod
    def from_name(cls, name: str) -> "ModelSpec":
        """The spec a `name` was made from (runs whose models.json is not at hand: stored evaluations)."""
        fields = dict(part.split("=", 1) for part in name.split(","))
        snr = lambda key: snr_value(fields[key], key)
        return cls(fields["fusion"], fields["modalities"], snr("a"), snr("v"),
                   int(fields["seed"]), fields.get("family", "masked"))

    @property
    def name(self) -> str:
        family = "" if self.family == "masked" else f"family={self.family},"  # masked models keep their names
        return (f"{family}fusion={self.fusion},modalities={self.modalities},a={snr_label(self.audio_snr)},"
                f"v={snr_label(self.visual_snr)},seed={self.seed}")
