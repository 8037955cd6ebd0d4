"""The evaluated study as one frozen object: a run's evaluation with its models grouped by configuration,
and the measurements the claims and figures read (modality use, Fig. 7's audio swap and arrival)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from clstm_jax.config.experiments import FUSION_POINT, LATE, UNIMODAL, unimodal_pair
from clstm_jax.core.choices import Family, choices
from clstm_jax.core.snr import snr_label
from clstm_jax.core.stats import half_width, holm, point_tests
from clstm_jax.evaluation.evaluate import Evaluation, load_evaluation
from clstm_jax.evaluation.modality_use import ModalityUse, load_modality_use
from clstm_jax.evaluation.run import Run
from clstm_jax.model.spec import ModelSpec


@dataclass(frozen=True)
class Arrival:
    """Fig. 7: one test example's softmax probabilities at every step under each scenario of
    `inspection.SCENARIOS`, (scenarios, frames, 10), its label, and the model's name."""

    probabilities: np.ndarray
    label: int
    model: str


class MissingModels(LookupError):
    """A query for models the study does not have (its message names them): a claim reading them is not
    testable on this run."""


@dataclass(frozen=True, eq=False)
class Study:
    """An evaluation with its models grouped by configuration (seeds pooled): everything the claims and
    figures read, built once (`Study.of` for a run's stored arrays; clstm_jax/study/pipeline.py adds the
    measurements that need a forward pass).

    audio_swap: (matched, mismatched), bool (seeds, examples): the final-step outcomes of the main
    initial-fusion model(s) with each example's own recording and with another digit's (claim 4.6).
    modality_use: every model with each input swapped or zeroed (the precondition of the fusion claims).
    arrival: Fig. 7's per-step probabilities of one test example under each scenario, or None.
    family: whose late-fusion models a query without a family reads (`of_family` gives a study with another);
    initial fusion is the masked family's in every family (clstm_jax/model/families.py).
    fusion_point: (audio, visual) training SNRs of the fusion comparison (`study.fusion_point`; the paper's
    by default), which the 4.3 claims and Fig. 3 read.
    """

    evaluation: Evaluation
    specs: tuple[ModelSpec, ...]
    audio_swap: tuple[np.ndarray, np.ndarray] | None = None
    modality_use: ModalityUse | None = None
    family: str = "masked"
    fusion_point: tuple[float, float] = FUSION_POINT
    arrival: Arrival | None = None

    def __post_init__(self):
        object.__setattr__(self, "specs", tuple(self.specs))
        object.__setattr__(self, "fusion_point", tuple(self.fusion_point))

    @cached_property
    def groups(self) -> dict[tuple, list[int]]:
        """(fusion, modalities, a, v, family) -> the models of that configuration, seeds in training order."""
        groups = defaultdict(list)
        for i, spec in enumerate(self.specs):
            groups[(spec.fusion, spec.modalities, spec.audio_snr, spec.visual_snr, spec.family)].append(i)
        return dict(groups)

    def of_family(self, family: str) -> "Study":
        """The same study, its late-fusion models those of `family`."""
        return dataclasses.replace(self, family=family)

    @property
    def families(self) -> list[str]:
        """The families with late-fusion models in this study, in the order of `choices.Family`."""
        present = {spec.family for spec in self.specs if spec.fusion != "initial"}
        return [family for family in choices(Family) if family in present]

    def models(self, fusion: str, modalities: str, a: float, v: float, family: str | None = None) -> list[int]:
        """The models (indices, seeds in training order) of one configuration; [] when there is none."""
        family = "masked" if fusion == "initial" else family or self.family
        return self.groups.get((fusion, modalities, a, v, family), [])

    def has(self, fusion: str, modalities: str, a: float, v: float, family: str | None = None) -> bool:
        return bool(self.models(fusion, modalities, a, v, family))

    def require(self, fusion: str, modalities: str, a: float, v: float, family: str | None = None) -> list[int]:
        """`models`, or MissingModels (naming the configuration) when the study has none."""
        models = self.models(fusion, modalities, a, v, family)
        if not models:
            raise MissingModels(f"{fusion}-fusion {modalities} model trained at audio {snr_label(a)} / visual "
                                f"{snr_label(v)}" + (f" ({family or self.family} family)" if fusion != "initial" else ""))
        return models

    def correct(self, fusion: str, modalities: str, a: float, v: float, family: str | None = None) -> np.ndarray:
        """bool (seeds, audio SNRs, visual SNRs, examples), seeds in training order; MissingModels when the
        study has no such model."""
        return self.evaluation.correct[self.require(fusion, modalities, a, v, family)]

    def point_correct(self, fusion: str, modalities: str, a: float, v: float, family: str | None = None) -> np.ndarray:
        """bool (seeds, examples) at the models' own training point (a, v), from the larger of its two
        measurements: the modality-use measurement's matched outcomes (`evaluate.point_examples` pairs)
        when it has more pairs than the grid (`evaluate.examples`). Both are the same seeded draw with
        the same noise, the smaller its first pairs, so the larger one holds the other."""
        models = self.require(fusion, modalities, a, v, family)
        use = self.modality_use
        if use is not None and use.correct.shape[-1] > self.evaluation.correct.shape[-1]:
            return np.stack([self.modality_use.of(m, "training", "matched") for m in models])
        i, j = self.grid_index(a, v)
        return self.evaluation.correct[models][:, i, j]

    def accuracy(self, fusion: str, modalities: str, a: float, v: float, family: str | None = None) -> np.ndarray:
        """Accuracy (audio SNRs, visual SNRs), pooled over seeds and examples."""
        return self.correct(fusion, modalities, a, v, family).mean(axis=(0, 3))

    @property
    def labels(self) -> list[str]:
        """The test SNRs as text (the grid is square: audio and visual share the values)."""
        return [snr_label(float(x)) for x in self.evaluation.audio_snrs]

    def grid_index(self, a: float, v: float) -> tuple[int, int]:
        return list(self.evaluation.audio_snrs).index(np.float32(a)), list(self.evaluation.visual_snrs).index(np.float32(v))

    def fusion_comparison(self, a: float, v: float) -> dict:
        """Accuracy maps of the three fusion depths trained at (a, v), each late-minus-initial test with its 95%
        interval (Student's t across seeds; one seed: normal over the examples), and each seed's accuracy at
        the training point and over the grid ("seeds": {fusion: (seeds, 2)})."""
        initial = self.correct("initial", "both", a, v)
        fusions = ("initial", *LATE)
        out = {"accuracy": {f: self.accuracy(f, "both", a, v) for f in fusions},
               "seeds": {f: np.stack([self.point_correct(f, "both", a, v).mean(1),
                                      self.correct(f, "both", a, v).mean(axis=(1, 2, 3))], axis=1) for f in fusions}}
        for late in LATE:
            test = point_tests(self.correct(late, "both", a, v), initial)  # seed-level with 2 or more seeds
            half = half_width(test["se"], test["df"])
            out[late] = {"difference": test["mean"], "low": test["mean"] - half, "high": test["mean"] + half,
                         "p": test["p"], "p_holm": holm(test["p"])}
        return out

    def unimodal_curves(self, modalities: str) -> dict[float, np.ndarray]:
        """Per training SNR, outcomes against the modality's test SNR: bool (seeds, test SNRs, examples).

        The other input is zeroed, so its test SNR does not matter; the first (orig) is taken.
        """
        curves = {}
        for snr in UNIMODAL[modalities]:
            if self.has("initial", modalities, *unimodal_pair(modalities, snr)):
                correct = self.correct("initial", modalities, *unimodal_pair(modalities, snr))
                curves[snr] = correct[:, 0] if modalities == "visual" else correct[:, :, 0]
        return curves

    @classmethod
    def of(cls, run: Run) -> "Study":
        """The stored evaluation of a run (and its modality-use measurement, if any), grouped."""
        return cls(load_evaluation(run.path), run.specs, modality_use=load_modality_use(run.path),
                   fusion_point=run.config.study.fusion_point)
