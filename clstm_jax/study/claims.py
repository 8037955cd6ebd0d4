"""The paper's claims, one function each, judged on a study's evaluation.

A claim has a stable id, its section, the sentence it tests (quoted from the
paper), the region of the test-SNR grid that sentence (or its figure's
caption) names, and a function that returns `Evidence`: what was measured,
the deciding test, its units, its minimum detectable effect at 80% power, a
p-value and a verdict. `judge` runs every claim and adjusts the p-values
across the family of claims (Holm). Adding a claim is adding one decorated
function. docs/study.md says why each test is as strict as its sentence.

A claim about an architecture is a claim about training runs: its tests take
the training seed as the replicate, test examples nested in it
(`clstm_jax.core.stats.paired_test`). With one seed a verdict is about the
networks measured and says so ("holds for these networks, 1 seed"); when
those networks do not decide it either, it reads "too few seeds".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from clstm_jax.config.experiments import APPENDIX, FUSION_POINT, LATE, UNIMODAL, unimodal_pair
from clstm_jax.core.snr import snr_label
from clstm_jax.core.stats import (
    ALPHA,
    ARCHITECTURE,
    NETWORKS,
    PairedTest,
    detectable,
    holm,
    majority_test,
    paired_difference,
    paired_test,
    point_tests,
    t_quantile,
    t_sf,
)
from clstm_jax.evaluation.inspection import SCENARIOS
from clstm_jax.study.view import MissingModels, Study

HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE = "holds", "does not hold", "inconclusive", "not testable at this power"
UNUSED = "not testable at this size"  # followed by ": <modality> unused" (the precondition, `modality_check`)
TOO_FEW = "too few seeds"  # one seed, and its networks do not decide the claim either
FOR_NETWORKS = "for these networks, 1 seed"  # follows holds / does not hold when one seed decided it
ABSENT = "not testable on this run"  # followed by ": no <models>": the run did not train the models it reads
EQUIVALENT = "equivalent within"  # followed by " <margin> points": no difference beyond study.margin either way
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE, UNUSED, TOO_FEW, ABSENT, EQUIVALENT)


@dataclass(frozen=True)
class Evidence:
    measured: str
    test: str
    verdict: str  # HOLDS, FAILS, EQUIVALENT..., INCONCLUSIVE, UNTESTABLE, UNUSED... or ABSENT..., at 5% before the
    # correction across claims
    p: float  # the p-value behind the verdict (for inconclusive ones: of the test that would have confirmed it)
    units: str
    detectable: float  # accuracy difference (fraction) the deciding test detects with 80% power, seed variance in it
    seeds: int = 1  # the seeds the deciding test rests on: 1 makes the verdict about the networks measured
    estimate: float = math.nan  # the deciding test's estimate (accuracy fraction) and its 95% interval
    low: float = math.nan
    high: float = math.nan
    deciding: PairedTest | None = None  # its variance components plan a study (`clstm_jax.study.power`)
    tests: int = 1  # comparisons the claim corrects over (Holm inside the claim), for planning

    @property
    def about(self) -> str:
        return NETWORKS if self.seeds == 1 else ARCHITECTURE


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    sentence: str  # the paper's words
    region: str  # "{audio}" and "{visual}" stand for the study's fusion point (`Judged.region`)
    judge: Callable[[Study, float], Evidence]  # (study, margin in accuracy points) -> Evidence
    fusion: bool  # a claim about fusion or a modality's contribution: judged only if both modalities are used
    per_family: bool = False  # a claim on late-fusion models: judged once for each family of them (study.families)
    fusion_point: bool = False  # reads only models trained at the fusion point: a study of scope "fusion" judges it


@dataclass(frozen=True)
class Judged:
    claim: Claim
    evidence: Evidence
    p_family: float  # Holm-adjusted over every judged claim (nan for a claim not judged)
    verdict: str  # the evidence's, after the correction across claims and `qualify` (one seed)
    family: str = "masked"  # whose late-fusion models a per-family claim was judged on
    fusion_point: tuple[float, float] = FUSION_POINT  # the study's (`Study.fusion_point`), which the region names

    @property
    def region(self) -> str:
        audio, visual = map(snr_label, self.fusion_point)
        return self.claim.region.format(audio=audio, visual=visual)

    @property
    def id(self) -> str:
        """The claim's id; for another family than masked, followed by /family."""
        return self.claim.id if self.family == "masked" else f"{self.claim.id}/{self.family}"

    def record(self) -> dict:
        """The machine-readable verdict (claims.json)."""
        e, number = self.evidence, lambda x: None if x is None or not math.isfinite(x) else float(x)
        return {"id": self.id, "claim": self.claim.id, "section": self.claim.section, "family": self.family,
                "sentence": self.claim.sentence, "region": self.region, "measured": e.measured, "test": e.test,
                "estimate": number(e.estimate), "interval": [number(e.low), number(e.high)], "p": number(e.p),
                "p_holm": number(self.p_family), "mde": number(e.detectable), "seeds": e.seeds,
                "units": e.units, "verdict": self.verdict, "verdict_before_correction": e.verdict,
                "about": e.about}


CLAIMS: dict[str, Claim] = {}


def claim(id: str, section: str, sentence: str, region: str, fusion: bool = True, per_family: bool = False,
          fusion_point: bool = False):
    def register(fn):
        if id in CLAIMS:
            raise ValueError(f"claim id {id!r} registered twice")
        CLAIMS[id] = Claim(id, section, sentence, region, fn, fusion, per_family, fusion_point)
        return fn
    return register


def scope_ids(scope: str) -> list[str]:
    """The claims a study of `scope` decides: all of them (paper), or those of the fusion point (fusion)."""
    return [c.id for c in CLAIMS.values() if scope == "paper" or c.fusion_point]


def qualify(verdict: str, seeds: int) -> str:
    """A verdict resting on one seed is about those networks: holds / does not hold say so; anything
    undecided reads "too few seeds" (an architecture verdict needs at least two)."""
    if seeds != 1 or verdict.startswith((UNUSED, ABSENT)):
        return verdict
    return f"{verdict} {FOR_NETWORKS}" if decided(verdict) else TOO_FEW


def decided(verdict: str) -> bool:
    """A verdict that answers the claim: holds, does not hold, or equivalent within the margin."""
    return verdict in (HOLDS, FAILS) or verdict.startswith(EQUIVALENT)


def judge(study: Study, margin: float = 2.0, ids=None, families=("masked",)) -> list[Judged]:
    """Every claim (or those of `ids`), a per-family claim once for each of `families` (on
    `study.of_family`), then Holm across all the judged ones: a verdict of holds or does not hold stands
    only if its family-adjusted p-value is below 5%; then `qualify` (one seed). A fusion claim counts only
    when `modality_check` finds both modalities used; otherwise its numbers are still reported, its verdict
    reads "not testable at this size: <modality> unused" and it takes no part in the correction. A claim
    whose models the run did not train reads "not testable on this run: no <models>" and takes no part
    either."""
    cases = [(CLAIMS[i], family) for i in (ids or CLAIMS)
             for family in (families if CLAIMS[i].per_family else ("masked",))]
    check = modality_check(study) if any(c.fusion for c, _ in cases) else None
    evidence = [judge_one(c, study.of_family(family) if c.per_family else study, margin) for c, family in cases]
    blocked = [c.fusion and check.verdict != HOLDS for c, _ in cases]
    adjusted = np.full(len(cases), np.nan)
    judged = [k for k, b in enumerate(blocked) if not b and math.isfinite(evidence[k].p)]
    if judged:
        adjusted[judged] = holm(np.array([evidence[k].p for k in judged]))
    return [Judged(c, e, float(p), check.verdict if b else
                   qualify(e.verdict if not decided(e.verdict) or p < ALPHA else INCONCLUSIVE, e.seeds), family,
                   study.fusion_point)
            for (c, family), e, p, b in zip(cases, evidence, adjusted, blocked)]


def judge_one(c: Claim, study: Study, margin: float) -> Evidence:
    """The claim's evidence, or, when the study lacks models it reads, why it is not testable here."""
    try:
        return c.judge(study, margin)
    except MissingModels as missing:
        return absent(str(missing))


def absent(models: str) -> Evidence:
    return Evidence(f"the run has no {models}", "-", f"{ABSENT}: no {models}", math.nan, "", math.nan)


def modality_check(study: Study) -> Evidence:
    """The precondition of every fusion claim (SPEC 8b): at the fusion training point, replacing the recording
    with another digit's, and the image with another digit's, each costs the main initial-fusion model a
    significant drop (McNemar over seeds x examples, each at 5%). The claims read these very networks, so
    the precondition is about them (their examples are the replicates). Verdict holds, or "not testable at
    this size: <modality> unused"."""
    use = study.modality_use
    if use is None:
        return Evidence("modality use was not measured", "precondition", f"{UNUSED}: modality use not measured",
                        float("nan"), "", float("nan"))
    try:
        models = study.require("initial", "both", *study.fusion_point)
    except MissingModels as missing:
        return absent(str(missing))
    matched = np.stack([use.of(m, "training", "matched") for m in models])
    parts, unused, ses = [f"initial fusion at its training point: {100 * matched.mean():.1f}%"], [], []
    for modality in ("audio", "image"):
        swapped = np.stack([use.of(m, "training", f"{modality} mismatched") for m in models])
        r = paired_difference(matched, swapped, axes=(0, 1))
        ses.append(float(r["se"]))
        parts.append(f"with the {modality} of another digit {100 * swapped.mean():.1f}% (drop "
                     f"{pts(float(r['difference']))} points, p = {float(r['p']):.3g})")
        if not (r["difference"] > 0 and r["p"] < ALPHA):
            unused.append(modality)
    verdict = f"{UNUSED}: {' and '.join(unused)} unused" if unused else HOLDS
    return Evidence("; ".join(parts), "precondition (SPEC 8b): mismatching each modality must cost the initial-fusion "
                    "model a significant drop (McNemar, 5%); only then are the fusion claims judged", verdict,
                    float("nan"), units_text(*matched.shape), float(detectable(max(ses))), len(models))


# --- shared pieces -------------------------------------------------------------------------------------------

def pts(x: float) -> str:
    """An accuracy (difference) in percentage points."""
    return f"{100 * x:.1f}"


def units_text(seeds: int, examples: int) -> str:
    return f"{examples} test examples x {seeds} seed(s)"


def equivalence_p(t: PairedTest, margin: float) -> float:
    """p of "the difference lies within +-margin points": the larger of the two one-sided tests (TOST)."""
    m = margin / 100
    if t.se == 0:
        return 0.0 if abs(t.mean) < m else 1.0
    return float(max(t_sf((t.mean + m) / t.se, t.df), t_sf((m - t.mean) / t.se, t.df)))


def equivalent(margin: float) -> str:
    return f"{EQUIVALENT} {margin:g} point{'' if margin == 1 else 's'}"


def sign_verdict(t: PairedTest, margin: float) -> tuple[str, float]:
    """(verdict, p): holds for a significantly positive difference, does not hold for a significantly negative
    one, equivalent within the margin when the difference is significantly inside +-margin (TOST at 5%)."""
    if t.p < ALPHA:
        return (HOLDS if t.mean > 0 else FAILS), t.p
    p_equivalent = equivalence_p(t, margin)
    return (equivalent(margin), p_equivalent) if p_equivalent < ALPHA else (INCONCLUSIVE, t.p)


def decided_by(measured: str, test: str, verdict: str, p: float, t: PairedTest, tests: int = 1,
                  sided: int = 2) -> Evidence:
    """Evidence decided by the `PairedTest` t (the binding one of `tests` corrected comparisons)."""
    return Evidence(measured, test, verdict, p, units_text(t.seeds, t.examples), t.detectable(tests, sided), t.seeds,
                    t.mean, t.low, t.high, t, tests)


def test_text(t: PairedTest) -> str:
    """An estimate with its interval and p."""
    return f"{pts(t.mean)} points (95% {pts(t.low)} to {pts(t.high)}, p = {t.p:.3g})"


def favour_all(tests: list[PairedTest], margin: float, against_if=lambda t: t.mean < 0) -> tuple[str, float, PairedTest]:
    """Verdict of "every comparison favours the claim", Holm over the tests: holds when all are
    significantly positive; does not hold when any is significantly against (`against_if`); equivalent
    within the margin when every comparison not significantly positive is significantly inside
    +-margin points (TOST, Holm over the tests). Returns (verdict, p, the deciding test)."""
    adjusted = holm(np.array([t.p for t in tests]))
    against = [(q, t) for t, q in zip(tests, adjusted) if against_if(t) and q < ALPHA]
    if against:
        q, t = min(against, key=lambda x: x[0])
        return FAILS, float(q), t
    weakest = int(np.argmax(adjusted))
    if all(t.mean > 0 and q < ALPHA for t, q in zip(tests, adjusted)):
        return HOLDS, float(adjusted.max()), tests[weakest]
    inside = holm(np.array([equivalence_p(t, margin) for t in tests]))
    rest = [k for k, (t, q) in enumerate(zip(tests, adjusted)) if not (t.mean > 0 and q < ALPHA)]
    if all(inside[k] < ALPHA for k in rest):
        k = max(rest, key=lambda k: inside[k])
        return equivalent(margin), float(inside[k]), tests[k]
    return INCONCLUSIVE, float(adjusted.max()), tests[weakest]


def favour_all_evidence(measured: str, test: str, tests: list[PairedTest], margin: float) -> Evidence:
    verdict, p, deciding = favour_all(tests, margin)
    return decided_by(measured, test + EQUIVALENCE_TEXT.format(margin=margin), verdict, p, deciding, len(tests))


EQUIVALENCE_TEXT = ("; equivalent within {margin:g} points (study.margin) when every comparison not significantly "
                    "positive lies significantly inside +-{margin:g} (two one-sided tests at 5%, Holm)")


def margin_verdict(s: dict, margin: float) -> tuple[str, float, float]:
    """Verdict of "A is always at least as good as B" over points, within `margin` points. s: `point_tests`
    of A against B over the points (mean, se, df, p arrays).

    Holds when at every point the one-sided 95% lower bound exceeds -margin
    (an intersection-union test: each point at 5%, none corrected). Does not
    hold when a point is significantly worse (Holm over the points) and its
    one-sided upper bound lies below -margin. Otherwise not testable at this
    power when a zero difference everywhere would not have passed with 80%
    power, else inconclusive. Returns (verdict, p, the smallest margin this
    test can confirm with 80% power).
    """
    m = margin / 100
    difference, se, p = (np.asarray(s[k], np.float64).ravel() for k in ("mean", "se", "p"))
    q = float(t_quantile(1 - ALPHA, s["df"]))
    with np.errstate(divide="ignore"):
        p_holds = float(np.max(t_sf((difference + m) / se, s["df"])))
    p_holm = holm(p)
    worse = (p_holm < ALPHA) & (difference < 0) & (difference + q * se < -m)
    needed = float(detectable(se.max(), sided=1, df=s["df"]))
    if worse.any():
        return FAILS, float(p_holm[worse].min()), needed
    if np.all(difference - q * se > -m):
        return HOLDS, p_holds, needed
    return (UNTESTABLE if needed > m else INCONCLUSIVE), p_holds, needed


def margin_test_text(margin: float, needed: float) -> str:
    return (f"one-sided 95% lower bound of the paired difference above -{margin:g} points (study.margin) at every "
            f"point (intersection-union test; t across seeds, or McNemar's normal bound with one seed); refuted by a "
            f"point significantly worse (Holm) with its upper bound below -{margin:g}. This test confirms the claim "
            f"with 80% power only for margins above {100 * needed:.1f} points")


def margin_evidence(measured: str, s: dict, margin: float, seeds: int, examples: int) -> Evidence:
    verdict, p, needed = margin_verdict(s, margin)
    worst = int(np.argmin(np.asarray(s["mean"]).ravel() - np.asarray(s["se"]).ravel()))
    mean, se = float(np.asarray(s["mean"]).ravel()[worst]), float(np.asarray(s["se"]).ravel()[worst])
    q = float(t_quantile(0.975, s["df"]))
    deciding = PairedTest(mean, se, float(np.asarray(s["p"]).ravel()[worst]), seeds, examples, "point test", s["df"],
                          float(np.asarray(s["between"]).ravel()[worst]), float(np.asarray(s["within"]).ravel()[worst]))
    return Evidence(measured, margin_test_text(margin, needed), verdict, p, units_text(seeds, examples), needed, seeds,
                    mean, mean - q * se, mean + q * se, deciding)


def audio_mask(study: Study, keep) -> np.ndarray:
    """bool (audio SNRs, visual SNRs): the grid points whose test audio SNR satisfies keep(snr)."""
    audio = study.evaluation.audio_snrs.astype(np.float64)
    return np.broadcast_to(keep(audio)[:, None], (audio.size, study.evaluation.visual_snrs.size))


def grid_mask(study: Study, keep) -> np.ndarray:
    """bool (audio SNRs, visual SNRs): the grid points (a, v) with keep(a, v)."""
    audio, visual = (x.astype(np.float64) for x in (study.evaluation.audio_snrs, study.evaluation.visual_snrs))
    return keep(audio[:, None], visual[None, :])


def region_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """a, b: bool (seeds, audio, visual, examples) -> (seeds, examples): each unit's mean over the region of a - b."""
    return (a[:, mask].astype(np.float64) - b[:, mask]).mean(axis=1)


def drops(study: Study, models: list[int], modality: str, point: str = "training") -> np.ndarray:
    """Per unit (seeds, examples): what replacing `modality` ("audio" or "image") with another digit's costs
    each of `models` (matched minus mismatched correctness, -1, 0 or 1)."""
    use = study.modality_use
    return np.stack([use.of(m, point, "matched").astype(np.float64) - use.of(m, point, f"{modality} mismatched")
                     for m in models])


def not_measured(what: str) -> Evidence:
    """Evidence of a claim that reads modality use when the study has not measured it."""
    return Evidence(f"{what} needs modality use, which was not measured", "-", f"{UNUSED}: modality use not measured",
                    math.nan, "", math.nan)


# --- 4.3: fusion comparison ----------------------------------------------------------------------------------

MAJORITY = ("As seen in Figure 3, the immediate fusion model is more accurate not only for the signal to noise ratio "
            "that the models were trained at, but also for the majority of the other signal to noise ratios.")
EXCEPTIONS = ("The main characteristic of the SNR values in which immediate fusion does not outperform late fusion is "
              "low audio SNR and relatively high visual SNR, and this only occurs in the case where fusion occurs in "
              "the second layer.")
ROBUST = ("Additionally, initial layer fusion appears to allow the model to be much more robust to increases in the "
          "signal to noise ratio beyond the training values, especially in the case of increased audio SNR.")


def fusion_point_correct(study: Study) -> dict[str, np.ndarray]:
    """bool (seeds, audio, visual, examples) of each fusion depth at the fusion point."""
    return {f: study.correct(f, "both", *study.fusion_point) for f in ("initial", *LATE)}


@claim("4.3-training-point", "4.3", MAJORITY, "the training point only: test audio {audio}, visual {visual} "
       "(evaluate.point_examples pairs where modality use was measured)",
       per_family=True, fusion_point=True)
def training_point(study: Study, margin: float) -> Evidence:
    correct = {f: study.point_correct(f, "both", *study.fusion_point) for f in ("initial", *LATE)}
    initial = correct["initial"].astype(np.float64)
    tests = [paired_test(initial - correct[late]) for late in LATE]
    return favour_all_evidence(
        f"initial {100 * initial.mean():.1f}%; " + "; ".join(
            f"initial minus {late}: {test_text(t)}" for late, t in zip(LATE, tests)),
        f"{tests[0].method}, per late model, Holm over the two; holds needs both significantly positive", tests, margin)


@claim("4.3-majority", "4.3", MAJORITY, "all 100 test points (Fig. 3), against second and against fc",
       per_family=True, fusion_point=True)
def majority(study: Study, margin: float) -> Evidence:
    correct = fusion_point_correct(study)
    seeds, n_audio, n_visual, examples = correct["initial"].shape
    parts, tests = [], []
    for late in LATE:
        d = (correct["initial"].astype(np.float64) - correct[late]).reshape(seeds, -1, examples)
        gap = d.mean(axis=(0, 2))
        tests.append(t := majority_test(d))
        parts.append(f"vs {late}: initial ahead at {int(np.sum(gap > 0))}, tied at {int(np.sum(gap == 0))}, behind at "
                     f"{int(np.sum(gap < 0))} of {gap.size} points (seed mean); median point difference {test_text(t)}")
    verdict, p, deciding = favour_all(tests, margin, against_if=lambda t: t.mean <= 0)  # ties count against
    return decided_by("; ".join(parts),
                      "strict majority: each seed's lower median over the points of initial minus late is positive "
                      "exactly when initial is ahead at more than half the points (ties count against); "
                      f"{tests[0].method}; Holm over the two late models" + EQUIVALENCE_TEXT.format(margin=margin),
                      verdict, p, deciding, len(tests))


@claim("4.3-fc-never-worse", "4.3",
       "In particular, the initial layer fusion model always outperforms or equally performs to the fully connected "
       "fusion model.", "all 100 test points", per_family=True, fusion_point=True)
def fc_never_worse(study: Study, margin: float) -> Evidence:
    correct = fusion_point_correct(study)
    s = point_tests(correct["initial"], correct["fc"])
    lower = s["mean"] - t_quantile(1 - ALPHA, s["df"]) * s["se"]
    fc_ahead = int(np.sum((holm(s["p"]) < ALPHA) & (s["mean"] < 0)))
    return margin_evidence(
        f"initial minus fc: from {pts(float(s['mean'].min()))} to {pts(float(s['mean'].max()))} points; lowest one-sided "
        f"lower bound {pts(float(lower.min()))}; fc significantly ahead (Holm) at {fc_ahead} points",
        s, margin, correct["initial"].shape[0], correct["initial"].shape[-1])


@claim("4.3-second-except-low-audio", "4.3",
       "Furthermore, the initial layer fusion model outperforms the second layer fusion model, except for when the "
       "audio input is degraded well beyond the audio training signal to noise ratio.",
       "test audio SNR at or above the training audio SNR {audio} (70 points at the paper's 0.5): the sentence "
       "allows exceptions only "
       "below it, and the paper's Fig. 3 draws them in its bottom rows (test audio 0.25 to 0.0625)",
       per_family=True, fusion_point=True)
def second_except_low_audio(study: Study, margin: float) -> Evidence:
    correct = fusion_point_correct(study)
    mask = audio_mask(study, lambda audio: audio >= study.fusion_point[0])
    t = paired_test(region_difference(correct["initial"], correct["second"], mask))
    points = point_tests(correct["initial"][:, mask], correct["second"][:, mask])
    points_q = holm(points["p"])
    against = (points_q < ALPHA) & (points["mean"] < 0)
    if against.any():
        verdict, p = FAILS, float(points_q[against].min())
    else:
        verdict, p = sign_verdict(t, margin)
    return decided_by(
        f"initial minus second over the region: {test_text(t)}; second significantly ahead (Holm over the region) "
        f"at {int(against.sum())} of {int(mask.sum())} points",
        f"{t.method}, on each unit's mean over the region; holds needs a significant advantage and no point of the "
        "region significantly against", verdict, p, t)


@claim("4.3-only-second", "4.3", EXCEPTIONS,
       "low test audio (below the training audio {audio}) with relatively high test visual (at or above the "
       "training visual {visual}; 18 points at the paper's point): second must lead initial there, fc must not (within study.margin)",
       per_family=True, fusion_point=True)
def only_second(study: Study, margin: float) -> Evidence:
    correct = fusion_point_correct(study)
    mask = grid_mask(study, lambda a, v: (a < study.fusion_point[0]) & (v >= study.fusion_point[1]))
    second = paired_test(region_difference(correct["second"], correct["initial"], mask))
    fc = paired_test(region_difference(correct["initial"], correct["fc"], mask))
    fc_verdict, fc_p, _ = margin_verdict({"mean": fc.mean, "se": fc.se, "df": fc.df, "p": fc.p}, margin)
    fc_bound = fc.mean - float(t_quantile(1 - ALPHA, fc.df)) * fc.se
    if fc_verdict == FAILS or (second.mean < 0 and second.p < ALPHA):
        verdict, p = FAILS, min(x.p for x in (fc, second) if x.mean < 0 and x.p < ALPHA)
    elif second.mean > 0 and second.p < ALPHA and fc_verdict == HOLDS:
        verdict, p = HOLDS, max(second.p, fc_p)
    elif equivalence_p(second, margin) < ALPHA:  # second does not lead beyond the margin: no exception to place
        verdict, p = equivalent(margin), equivalence_p(second, margin)
    else:
        verdict, p = INCONCLUSIVE, max(second.p, fc_p)
    deciding = fc if second.p < ALPHA else second
    return decided_by(
        f"second minus initial over the region: {test_text(second)}; initial minus fc there: {test_text(fc)}, "
        f"one-sided lower bound {pts(fc_bound)}",
        f"{second.method}, on each unit's mean over the region; holds needs second significantly ahead and fc's "
        f"advantage excluded beyond {margin:g} points (one-sided 95%, an intersection-union test); equivalent within "
        f"{margin:g} points when second minus initial lies significantly inside +-{margin:g} (TOST at 5%)",
        verdict, p, deciding, 2)


@claim("4.3-robust-increases", "4.3", ROBUST,
       "every test point at or above both training SNRs (audio {audio}, visual {visual}) but the training point "
       "(55 points at the paper's); "
       "initial against second and against fc", per_family=True, fusion_point=True)
def robust_increases(study: Study, margin: float) -> Evidence:
    correct = fusion_point_correct(study)
    i, j = study.grid_index(*study.fusion_point)
    mask = grid_mask(study, lambda a, v: (a >= study.fusion_point[0]) & (v >= study.fusion_point[1])).copy()
    mask[i, j] = False
    tests = [paired_test(region_difference(correct["initial"], correct[late], mask)) for late in LATE]
    return favour_all_evidence(
        "initial minus late over the easier points: " + "; ".join(
            f"{late} {test_text(t)}" for late, t in zip(LATE, tests)),
        f"{tests[0].method}, on each unit's mean over the region, per late model, Holm over the two; holds needs "
        "both significantly positive", tests, margin)


@claim("4.3-robust-audio", "4.3", ROBUST,
       "the points easier in audio only (test audio above {audio}, visual {visual}: 6 points at the paper's point) "
       "against those easier in visual only (visual above {visual}, audio {audio}: 7 points there): initial's advantage over each late model larger on "
       "the first", per_family=True, fusion_point=True)
def robust_audio(study: Study, margin: float) -> Evidence:
    correct = fusion_point_correct(study)
    a0, v0 = study.fusion_point
    louder = grid_mask(study, lambda a, v: (a > a0) & (v == np.float32(v0)))
    sharper = grid_mask(study, lambda a, v: (a == np.float32(a0)) & (v > v0))
    tests = []
    for late in LATE:
        tests.append(paired_test(region_difference(correct["initial"], correct[late], louder)
                                 - region_difference(correct["initial"], correct[late], sharper)))
    return favour_all_evidence(
        "initial's advantage where only the audio is cleaner minus where only the image is: " + "; ".join(
            f"vs {late} {test_text(t)}" for late, t in zip(LATE, tests)),
        f"{tests[0].method}, on each unit's difference of its two region means, per late model, Holm over the two; "
        "holds needs both significantly positive", tests, margin)


@claim("4.3-both-modalities", "4.3",
       "This suggests that immediate multimodal fusion encourages the multimodal model to use both input modalities.",
       "modality use at the fusion point, each model at its training SNRs: what another digit's input costs, for "
       "the modality the initial-fusion model relies on less", per_family=True, fusion_point=True)
def both_modalities(study: Study, margin: float) -> Evidence:
    if study.modality_use is None:
        return not_measured("4.3-both-modalities")
    initial = study.require("initial", "both", *study.fusion_point)
    weaker = min(("audio", "image"), key=lambda x: drops(study, initial, x).mean())
    tests, parts = [], []
    for late in LATE:
        late_models = study.require(late, "both", *study.fusion_point)
        k = min(len(initial), len(late_models))
        tests.append(t := paired_test(drops(study, initial[:k], weaker) - drops(study, late_models[:k], weaker)))
        parts.append(f"{late} {pts(drops(study, late_models, weaker).mean())} (difference {test_text(t)})")
    return favour_all_evidence(
        f"another digit's {weaker} (the input initial fusion relies on less) costs initial "
        f"{pts(drops(study, initial, weaker).mean())} points, " + ", ".join(parts),
        f"{tests[0].method}, initial's drop minus the late model's, per late model, Holm over the two; holds needs "
        "initial to lose significantly more than both", tests, margin)


# --- A.3: the appendix's training points ---------------------------------------------------------------------

@claim("A.3-appendix-fc", "A.3",
       "Fusion in the initial layer outperforms the fusion in the fully connected layer for audio SNR values greater "
       "than 1.", "Fig. 9 (audio 1 / visual 0.5): all 100 points, as its caption; Figs. 10-12 (audio 2 / visual 0.25, "
       "1 / 0.25, 1 / 0.125): test audio SNR > 1 (50 points), as theirs")
def appendix_fc(study: Study, margin: float) -> Evidence:
    parts, tests = [], []
    for number, (a, v) in APPENDIX.items():
        initial = study.correct("initial", "both", a, v)
        mask = audio_mask(study, (lambda audio: audio > 0) if number == 9 else (lambda audio: audio > 1))
        tests.append(t := paired_test(region_difference(initial, study.correct("fc", "both", a, v), mask)))
        parts.append(f"Fig. {number} (a {snr_label(a)} / v {snr_label(v)}, {int(mask.sum())} points): {test_text(t)}")
    return favour_all_evidence("initial minus fc: " + "; ".join(parts),
                               f"{tests[0].method}, on each unit's mean over its figure's region, Holm over the "
                               f"{len(APPENDIX)} figures; holds needs all significantly positive", tests, margin)


# --- 4.4: the 16-model grid -----------------------------------------------------------------------------------

VISUAL_QUADRANT = [(a, v) for a in (0.5, 0.25) for v in (1.0, 0.5)]  # top left of Fig. 4
AUDIO_QUADRANT = [(a, v) for a in (2.0, 1.0) for v in (0.25, 0.125)]  # bottom right
AUDIO_DEPENDENCE = ("As we move to the bottom right quadrant we see lower visual SNRs (0.25, 0.125) and higher audio "
                    "SNRs (2, 1) accompanied by an increasing dependence on the audio information.")


def dependence(study: Study, models: list[tuple[float, float]], on: str, margin: float) -> Evidence:
    """Per model: is the accuracy drop along the other modality larger than along `on`? Per unit:
    (cleanest minus noisiest test SNR of the other modality) minus (the same along `on`), the remaining
    modality at its training SNR."""
    parts, tests = [], []
    for a, v in models:
        correct = study.correct("initial", "both", a, v).astype(np.float64)
        i, j = study.grid_index(a, v)
        audio_drop, visual_drop = correct[:, 0, j] - correct[:, -1, j], correct[:, i, 0] - correct[:, i, -1]
        tests.append(t := paired_test(visual_drop - audio_drop if on == "visual" else audio_drop - visual_drop))
        parts.append(f"a {snr_label(a)}/v {snr_label(v)}: drop along audio {pts(audio_drop.mean())}, along visual "
                     f"{pts(visual_drop.mean())} (p = {t.p:.3g})")
    return favour_all_evidence("; ".join(parts),
                               f"{tests[0].method}, per model, of the difference of drops, Holm over the "
                               f"{len(models)} models; holds needs every model on the claimed side", tests, margin)


@claim("4.4-visual-dependence", "4.4",
       "In the top left quadrant of the figure, we see that at higher visual SNRs (1, 0.5) and lower audio SNRs (0.5, "
       "0.25) the model is mainly dependent on visual information. This is denoted by the test accuracy's consistency "
       "as the audio SNR varies from the original to 0.0625.",
       "the 4 models trained at audio 0.5 or 0.25 and visual 1 or 0.5; test SNR orig against 0.0625 along each "
       "modality, the other at its training SNR")
def visual_dependence(study: Study, margin: float) -> Evidence:
    return dependence(study, VISUAL_QUADRANT, "visual", margin)


@claim("4.4-audio-dependence", "4.4", AUDIO_DEPENDENCE,
       "the 4 models trained at audio 2 or 1 and visual 0.25 or 0.125; as 4.4-visual-dependence, mirrored "
       "(the strict reading: mainly audio)")
def audio_dependence(study: Study, margin: float) -> Evidence:
    return dependence(study, AUDIO_QUADRANT, "audio", margin)


@claim("4.4-audio-dependence-increases", "4.4", AUDIO_DEPENDENCE,
       "modality use at each model's training SNRs: what another digit's recording costs the 4 bottom-right "
       "models (audio 2 or 1, visual 0.25 or 0.125) against the 4 top-left ones (the comparative reading)")
def audio_dependence_increases(study: Study, margin: float) -> Evidence:
    if study.modality_use is None:
        return not_measured("4.4-audio-dependence-increases")
    quadrant = {name: [study.require("initial", "both", a, v) for a, v in points]
                for name, points in (("bottom right", AUDIO_QUADRANT), ("top left", VISUAL_QUADRANT))}
    seeds = min(len(m) for models in quadrant.values() for m in models)
    mean_drop = {name: np.mean([drops(study, m[:seeds], "audio") for m in models], axis=0)
                 for name, models in quadrant.items()}
    t = paired_test(mean_drop["bottom right"] - mean_drop["top left"])
    return decided_by(
        f"another digit's recording costs the bottom-right models {pts(mean_drop['bottom right'].mean())} points on "
        f"average, the top-left ones {pts(mean_drop['top left'].mean())}: difference {test_text(t)}",
        f"{t.method}, on each example's mean drop over the 4 models of each quadrant; holds needs the audio-favoured "
        "quadrant to depend on the audio significantly more", *sign_verdict(t, margin), t)


@claim("4.4-easier-points", "4.4",
       "In the bottom left quadrant, which corresponds to high audio and visual SNRs, the model performs well on all "
       "of the combinations of audio and visual SNRs that are larger in value than the audio-visual SNR that the "
       "model was trained on.",
       "the 4 models trained at audio 2 or 1 and visual 1 or 0.5: every test point at or above both training SNRs, "
       "against the training point", fusion=False)
def easier_points(study: Study, margin: float) -> Evidence:
    audio, visual = (x.astype(np.float64) for x in (study.evaluation.audio_snrs, study.evaluation.visual_snrs))
    parts, worst = [], []
    for a in (2.0, 1.0):
        for v in (1.0, 0.5):
            correct = study.correct("initial", "both", a, v)
            i, j = study.grid_index(a, v)
            mask = (audio[:, None] >= a) & (visual[None, :] >= v)
            mask[i, j] = False
            easier = correct[:, mask]  # (seeds, points, examples)
            parts.append(point_tests(easier, np.broadcast_to(correct[:, i:i + 1, j], easier.shape)))
            worst.append(f"a {snr_label(a)}/v {snr_label(v)} {pts(float(parts[-1]['mean'].min()))}")
    s = {k: np.concatenate([np.ravel(x[k]) for x in parts]) for k in ("mean", "se", "p", "between", "within")}
    s["df"] = parts[0]["df"]
    return margin_evidence(f"{s['mean'].size} (model, easier point) comparisons; lowest easier-minus-training "
                           "difference per model: " + ", ".join(worst), s, margin, correct.shape[0], correct.shape[-1])


# --- 4.5: unimodal models -------------------------------------------------------------------------------------

def clean_input_drops(study: Study) -> dict[str, tuple[list[float], list[np.ndarray]]]:
    """Per modality: training SNRs and each model's outcomes on clean (orig) test input, (seeds, examples);
    MissingModels unless the orig-trained and the noisiest-trained models of both modalities are there."""
    out = {}
    for modalities in ("visual", "audio"):
        for snr in (UNIMODAL[modalities][0], UNIMODAL[modalities][-1]):
            study.require("initial", modalities, *unimodal_pair(modalities, snr))
        curves = study.unimodal_curves(modalities)
        out[modalities] = (list(curves), [curve[:, 0] for curve in curves.values()])
    return out


def paired_seeds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two models' outcomes (seeds, ...) paired by seed index, as many seeds as both have."""
    k = min(len(a), len(b))
    return a[:k].astype(np.float64), b[:k].astype(np.float64)


@claim("4.5-unimodal-noise-cost", "4.5",
       "As expected, the unimodal models perform relatively well at the SNR that they are trained at or higher, "
       "although as the training SNR decreases, the models perform worse overall, and the performance on higher SNR "
       "data decreases.", "clean test input (orig): the orig-trained against the noisiest-trained model, per modality",
       fusion=False)
def unimodal_noise_cost(study: Study, margin: float) -> Evidence:
    parts, tests = [], []
    for modalities, (snrs, clean) in clean_input_drops(study).items():
        a, b = paired_seeds(clean[0], clean[-1])
        tests.append(t := paired_test(a - b))
        parts.append(f"{modalities}-only on clean input: " + ", ".join(
            f"trained at {snr_label(s)} {100 * c.mean():.1f}%" for s, c in zip(snrs, clean)) + f" (drop {test_text(t)})")
    return favour_all_evidence("; ".join(parts), f"{tests[0].method}, per modality, Holm over the two; holds needs "
                               "both drops significant", tests, margin)


@claim("4.5-audio-cost-larger", "4.5", "This effect is particularly noticeable in the audio only model, figure 6.",
       "clean test input: the audio-only drop (orig-trained minus noisiest-trained) against the visual-only drop",
       fusion=False)
def audio_cost_larger(study: Study, margin: float) -> Evidence:
    drop = {}
    for m, (_, c) in clean_input_drops(study).items():
        drop[m] = np.subtract(*paired_seeds(c[0], c[-1]))
    k = min(len(x) for x in drop.values())
    t = paired_test(drop["audio"][:k] - drop["visual"][:k])  # paired by test example
    return decided_by(f"audio drop {pts(drop['audio'].mean())}, visual drop {pts(drop['visual'].mean())}: difference "
                      f"{test_text(t)}", f"{t.method}, on the per-example difference of the two drops",
                      *sign_verdict(t, margin), t)


BOTH_CONTRIBUTE = ("This discrepancy motivated us to choose an audio SNR of 0.5 and a visual SNR of 0.25 for further "
                   "investigation of the model architecture, such that the contribution of each modality will be "
                   "comparable and will allow us to investigate early fusion in a setting where multimodal fusion "
                   "will be beneficial.")


@claim("4.5-both-contribute", "4.5", BOTH_CONTRIBUTE,
       "the fusion point (audio {audio}, visual {visual}): the multimodal model against each unimodal model trained and "
       "tested at its modality's SNR there (seeds paired by index, as many as both have)", fusion_point=True)
def both_contribute(study: Study, margin: float) -> Evidence:
    a, v = study.fusion_point
    i, j = study.grid_index(a, v)
    multi = study.correct("initial", "both", a, v)[:, i, j]
    tests, parts = [], []
    for modalities, snr in (("visual", v), ("audio", a)):
        k = study.grid_index(snr, snr)[0]  # the grid is square: its modality's test SNR = its training SNR
        study.require("initial", modalities, *unimodal_pair(modalities, snr))
        tests.append(t := paired_test(np.subtract(*paired_seeds(multi, study.unimodal_curves(modalities)[snr][:, k]))))
        parts.append(f"minus {modalities}-only: {test_text(t)}")
    return favour_all_evidence(f"multimodal {100 * multi.mean():.1f}%; " + "; ".join(parts),
                               f"{tests[0].method}, per unimodal model, Holm over the two; holds needs both "
                               "significantly positive", tests, margin)


@claim("4.5-comparable", "4.5", BOTH_CONTRIBUTE,
       "modality use of the initial-fusion model at the fusion point: the smaller of the two costs of another "
       "digit's input (recording, image) at least half the larger (the paper gives no number: our reading of "
       "'comparable')", fusion=False, fusion_point=True)
def comparable(study: Study, margin: float) -> Evidence:
    if study.modality_use is None:
        return not_measured("4.5-comparable")
    models = study.require("initial", "both", *study.fusion_point)
    cost = {x: drops(study, models, x) for x in ("audio", "image")}
    smaller, larger = sorted(cost, key=lambda x: cost[x].mean())
    t = paired_test(cost[smaller] - 0.5 * cost[larger])
    return decided_by(
        f"another digit's recording costs {pts(cost['audio'].mean())} points, another digit's image "
        f"{pts(cost['image'].mean())}; the smaller ({smaller}) minus half the larger: {test_text(t)}",
        f"{t.method}, on each example's smaller cost minus half its larger; holds when significantly positive, does "
        "not hold when significantly negative", *sign_verdict(t, margin), t)


# --- 4.6: model inspection ------------------------------------------------------------------------------------

ARRIVAL_SCENARIO = next((a, v) for title, a, v in SCENARIOS if title == "audio above visual")  # Fig. 7: (1, 0.25)


@claim("4.6-audio-arrives", "4.6",
       "In these examples, as the audio information becomes available to the network, the correct class comes to "
       "dominate the activations.",
       "Fig. 7's scenario audio 1 / visual 0.25, final time step: the matched recording against a recording of "
       "another digit", fusion_point=True)
def audio_arrives(study: Study, margin: float) -> Evidence:
    if study.audio_swap is None:
        raise ValueError("claim 4.6-audio-arrives needs study.audio_swap (matched and mismatched final-step outcomes)")
    matched, mismatched = study.audio_swap
    t = paired_test(matched.astype(np.float64) - mismatched)
    return decided_by(f"final-step accuracy of the main initial-fusion model(s) with the matched recording "
                      f"{100 * matched.mean():.1f}%, with another digit's {100 * mismatched.mean():.1f}%: {test_text(t)}",
                      f"{t.method}, matched against mismatched recording, same image and noise level; the "
                      "difference is what the audio adds by the last step (the first steps hear only padding, so a "
                      "first-versus-last comparison would also count the recurrence settling on the image)",
                      *sign_verdict(t, margin), t)
