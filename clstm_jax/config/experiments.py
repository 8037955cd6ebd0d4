"""The paper's experimental design in one place: training points, grids, and each experiment's model list.

Every SNR list of the study lives here. `sweeps/*.toml` name an experiment
(`sweep.experiment`) instead of writing its SNRs, and the study, the report
and the claims read the same constants. SNRs are linear power ratios;
`ORIG` (inf) is the clean input.
"""

from __future__ import annotations

from clstm_jax.config import Config, expand
from clstm_jax.core.snr import ORIG
from clstm_jax.model.families import ordered
from clstm_jax.model.masks import FUSIONS
from clstm_jax.model.spec import ModelSpec

LATE = ("second", "fc")
FUSION_POINT = (0.5, 0.25)  # (audio, visual) training SNRs of the fusion comparison: 4.3, Fig. 3 (chosen in 4.5)
APPENDIX = {9: (1.0, 0.5), 10: (2.0, 0.25), 11: (1.0, 0.25), 12: (1.0, 0.125)}  # A.3: Fig. number -> (audio, visual)
GRID_AUDIO = (0.25, 0.5, 1.0, 2.0)  # 4.4, Fig. 4 rows, top to bottom
GRID_VISUAL = (1.0, 0.5, 0.25, 0.125)  # Fig. 4 columns, left to right
UNIMODAL = {"visual": (ORIG, 1.0, 0.5, 0.25, 0.125), "audio": (ORIG, 2.0, 1.0, 0.5, 0.25)}  # 4.5, Figs. 5 and 6


def unimodal_pair(modalities: str, snr: float) -> tuple[float, float]:
    """The (audio, visual) training SNRs of a unimodal model: its modality at snr, the zeroed one at orig."""
    return (ORIG, snr) if modalities == "visual" else (snr, ORIG)


def fusion_models(points, seeds, families=("masked",)) -> list[ModelSpec]:
    """The fusion comparison at each point: every fusion depth x seed, once per family (initial fusion,
    one network in every family, once)."""
    return list(dict.fromkeys(ModelSpec(f, "both", a, v, s, family) for family in families for a, v in points
                              for f in FUSIONS for s in seeds))


def grid_models(seed: int) -> list[ModelSpec]:
    return [ModelSpec("initial", "both", a, v, seed) for a in GRID_AUDIO for v in GRID_VISUAL]


def unimodal_models(modalities: str, seed: int) -> list[ModelSpec]:
    return [ModelSpec("initial", modalities, *unimodal_pair(modalities, snr), seed) for snr in UNIMODAL[modalities]]


def study_models(config: Config) -> list[ModelSpec]:
    """Every experiment of `study.scope`, deduplicated, in a fixed order: the fusion comparison at
    `study.fusion_point` with `study.seeds` seeds, in each of `study.families`; then, for the paper scope, the
    appendix pairs (masked), the grid and the unimodal models with the first seed; for the fusion scope, the
    two unimodal models trained at the fusion point (first seed), which 4.5-both-contribute compares against."""
    study = config.study
    point = tuple(study.fusion_point)
    specs = fusion_models([point], study.seeds, study.families)
    if study.scope == "paper":
        specs += fusion_models(APPENDIX.values(), study.seeds[:1]) + grid_models(study.seeds[0])
        specs += unimodal_models("visual", study.seeds[0]) + unimodal_models("audio", study.seeds[0])
    else:
        specs += [ModelSpec("initial", modalities, *unimodal_pair(modalities, snr), study.seeds[0])
                  for modalities, snr in (("visual", point[1]), ("audio", point[0]))]
    return list(dict.fromkeys(specs))


# name -> the models of that experiment; `sweep.seeds` gives their seeds (the study uses `study.seeds`)
EXPERIMENTS = {
    "fusion": lambda c: fusion_models([FUSION_POINT], c.sweep.seeds, c.sweep.family),
    "appendix_fusion": lambda c: fusion_models(APPENDIX.values(), c.sweep.seeds, c.sweep.family),
    "snr_grid": lambda c: [m for s in c.sweep.seeds for m in grid_models(s)],
    "unimodal_visual": lambda c: [m for s in c.sweep.seeds for m in unimodal_models("visual", s)],
    "unimodal_audio": lambda c: [m for s in c.sweep.seeds for m in unimodal_models("audio", s)],
    "study": study_models,
}


def sweep_models(config: Config) -> list[ModelSpec]:
    """The models of a sweep: the named experiment's, else the product of the sweep axes; ordered by family
    group (clstm_jax/model/families.py), which keeps a one-family sweep's own order."""
    name = config.sweep.experiment
    return ordered(EXPERIMENTS[name](config) if name else expand(config.sweep))
