"""The paper's claims, one function each, judged on a study's evaluation.

A claim has a stable id, its section, the sentence it tests (quoted from the
paper), the region of the test-SNR grid that sentence (or its figure's
caption) names, and a function that returns `Evidence`: what was measured,
the deciding test, its units, its minimum detectable effect at 80% power, a
p-value and a verdict. `judge` runs every claim and adjusts the p-values
across the family of claims (Holm). Adding a claim is adding one decorated
function. docs/study.md says why each test is as strict as its sentence.

The unit of inference is the test example nested in seed (`clstm_jax.stats`):
a test over a region reduces each unit to its mean over the region first.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np

from clstm_jax.config import snr_label
from clstm_jax.experiments import APPENDIX, FUSION_POINT, LATE
from clstm_jax.inspection import SCENARIOS
from clstm_jax.report import Study, unimodal_curves
from clstm_jax.stats import ALPHA, bootstrap_means, detectable, holm, paired_difference, paired_test, z_quantile

HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE = "holds", "does not hold", "inconclusive", "not testable at this power"
UNUSED = "not testable at this size"  # followed by ": <modality> unused" (the precondition, `modality_check`)
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE, UNUSED)


@dataclass(frozen=True)
class Evidence:
    measured: str
    test: str
    verdict: str  # one of VERDICTS, at the 5% level before the correction across claims
    p: float  # the p-value behind the verdict (for inconclusive ones: of the test that would have confirmed it)
    units: str
    detectable: float  # accuracy difference (fraction) the deciding test detects with 80% power


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    sentence: str  # the paper's words
    region: str
    judge: Callable[[Study, float], Evidence]  # (study, margin in accuracy points) -> Evidence
    fusion: bool  # a claim about fusion or a modality's contribution: judged only if both modalities are used
    per_family: bool = False  # a claim on late-fusion models: judged once for each family of them (study.families)
    fusion_point: bool = False  # reads only models trained at the fusion point: a study of scope "fusion" judges it


@dataclass(frozen=True)
class Judged:
    claim: Claim
    evidence: Evidence
    p_family: float  # Holm-adjusted over every judged claim (nan for a claim not judged)
    verdict: str  # the evidence's verdict; holds / does not hold fall to inconclusive if p_family >= 5%
    family: str = "masked"  # whose late-fusion models a per-family claim was judged on

    @property
    def id(self) -> str:
        """The claim's id; for another family than masked, followed by /family."""
        return self.claim.id if self.family == "masked" else f"{self.claim.id}/{self.family}"


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


def judge(study: Study, margin: float = 2.0, ids=None, families=("masked",)) -> list[Judged]:
    """Every claim (or those of `ids`), a per-family claim once for each of `families` (on
    `study.of_family`), then Holm across all the judged ones: a verdict of holds or does not hold stands
    only if its family-adjusted p-value is below 5%. A fusion claim counts only when `modality_check`
    finds both modalities used; otherwise its numbers are still reported, its verdict reads "not testable
    at this size: <modality> unused" and it takes no part in the correction."""
    cases = [(CLAIMS[i], family) for i in (ids or CLAIMS)
             for family in (families if CLAIMS[i].per_family else ("masked",))]
    check = modality_check(study) if any(c.fusion for c, _ in cases) else None
    evidence = [c.judge(study.of_family(family) if c.per_family else study, margin) for c, family in cases]
    blocked = [c.fusion and check.verdict != HOLDS for c, _ in cases]
    adjusted = np.full(len(cases), np.nan)
    judged = [k for k, b in enumerate(blocked) if not b]
    if judged:
        adjusted[judged] = holm(np.array([evidence[k].p for k in judged]))
    return [Judged(c, e, float(p), check.verdict if b else
                   e.verdict if e.verdict not in (HOLDS, FAILS) or p < ALPHA else INCONCLUSIVE, family)
            for (c, family), e, p, b in zip(cases, evidence, adjusted, blocked)]


def modality_check(study: Study) -> Evidence:
    """The precondition of every fusion claim (SPEC 8b): at the fusion training point, replacing the recording
    with another digit's, and the image with another digit's, each costs the main initial-fusion model a
    significant drop (McNemar over seeds x examples, each at 5%). Verdict holds, or "not testable at this
    size: <modality> unused"."""
    use = study.modality_use
    if use is None:
        return Evidence("modality use was not measured", "precondition", f"{UNUSED}: modality use not measured",
                        float("nan"), "", float("nan"))
    models = study.models("initial", "both", *FUSION_POINT)
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
                    float("nan"), units_text(*matched.shape), float(detectable(max(ses))))


# --- shared pieces -------------------------------------------------------------------------------------------

def pts(x: float) -> str:
    """An accuracy (difference) in percentage points."""
    return f"{100 * x:.1f}"


def units_text(seeds: int, examples: int) -> str:
    return f"{examples} test examples x {seeds} seed(s)"


def favour_all(results: list[tuple[float, float]]) -> tuple[str, float]:
    """Verdict of "every comparison favours the claim": results are (difference, raw p), Holm over them.
    Holds when all are significantly positive; does not hold when any is significantly negative."""
    adjusted = holm(np.array([p for _, p in results]))
    against = [q for (d, _), q in zip(results, adjusted) if d < 0 and q < ALPHA]
    if against:
        return FAILS, float(min(against))
    if all(d > 0 and q < ALPHA for (d, _), q in zip(results, adjusted)):
        return HOLDS, float(adjusted.max())
    return INCONCLUSIVE, float(adjusted.max())


def favour_all_tests(tests: list) -> tuple[str, float, str, float]:
    """`favour_all` over several `PairedTest`s: (verdict, p, units, the effect detectable after Holm over them)."""
    verdict, p = favour_all([(t.mean, t.p) for t in tests])
    return (verdict, p, units_text(tests[0].seeds, tests[0].examples),
            float(detectable(max(t.se for t in tests), tests=len(tests))))


def margin_verdict(difference, se, p, units: int, margin: float) -> tuple[str, float, float]:
    """Verdict of "A is always at least as good as B" over points (arrays of A minus B), within `margin` points.

    Holds when at every point the one-sided 95% lower bound exceeds -margin
    (an intersection-union test: each point at 5%, none corrected). Does not
    hold when a point is significantly worse (McNemar, Holm over the points)
    and its one-sided upper bound lies below -margin. Otherwise not testable
    at this power when a zero difference everywhere would not have passed
    with 80% power, else inconclusive. Returns (verdict, p, the smallest
    margin this test can confirm with 80% power).
    """
    m = margin / 100
    difference, se, p = (np.asarray(x, np.float64).ravel() for x in (difference, se, p))
    z = z_quantile(1 - ALPHA)
    p_holds = max(max(NormalDist().cdf(float(x)) for x in -(difference + m) / se), 2 * 0.5**units)
    p_holm = holm(p)
    worse = (p_holm < ALPHA) & (difference < 0) & (difference + z * se < -m)
    needed = float(detectable(se.max(), sided=1))
    if worse.any():
        return FAILS, float(p_holm[worse].min()), needed
    if np.all(difference - z * se > -m):
        return HOLDS, p_holds, needed
    return (UNTESTABLE if needed > m else INCONCLUSIVE), p_holds, needed


def margin_test_text(margin: float, needed: float) -> str:
    return (f"one-sided 95% lower bound of the paired difference above -{margin:g} points (study.margin) at every "
            f"point (intersection-union test); refuted by a point significantly worse (McNemar, Holm) with its upper "
            f"bound below -{margin:g}. This test confirms the claim with 80% power only for margins above "
            f"{100 * needed:.1f} points")


def audio_mask(study: Study, keep) -> np.ndarray:
    """bool (audio SNRs, visual SNRs): the grid points whose test audio SNR satisfies keep(snr)."""
    audio = study.evaluation.audio_snrs.astype(np.float64)
    return np.broadcast_to(keep(audio)[:, None], (audio.size, study.evaluation.visual_snrs.size))


def region_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """a, b: bool (seeds, audio, visual, examples) -> (seeds, examples): each unit's mean over the region of a - b."""
    return (a[:, mask].astype(np.float64) - b[:, mask]).mean(axis=1)


# --- 4.3: fusion comparison ----------------------------------------------------------------------------------

MAJORITY = ("As seen in Figure 3, the immediate fusion model is more accurate not only for the signal to noise ratio "
            "that the models were trained at, but also for the majority of the other signal to noise ratios.")


@claim("4.3-training-point", "4.3", MAJORITY, "the training point only: test audio 0.5, visual 0.25",
       per_family=True, fusion_point=True)
def training_point(study: Study, margin: float) -> Evidence:
    a, v = FUSION_POINT
    i, j = study.grid_index(a, v)
    initial = study.correct("initial", "both", a, v)[:, i, j]
    results = {late: paired_difference(initial, study.correct(late, "both", a, v)[:, i, j], axes=(0, 1)) for late in LATE}
    verdict, p = favour_all([(float(r["difference"]), float(r["p"])) for r in results.values()])
    return Evidence(
        f"initial {100 * initial.mean():.1f}%; " + "; ".join(
            f"initial minus {late}: {pts(float(r['difference']))} points (b = {int(r['b'])}, c = {int(r['c'])}, "
            f"p = {float(r['p']):.3g})" for late, r in results.items()),
        "McNemar exact test per late model, Holm over the two; holds needs both significantly positive",
        verdict, p, units_text(*initial.shape), float(max(detectable(r["se"], tests=2) for r in results.values())))


@claim("4.3-majority", "4.3", MAJORITY, "all 100 test points (Fig. 3), against second and against fc",
       per_family=True, fusion_point=True)
def majority(study: Study, margin: float) -> Evidence:
    initial = study.correct("initial", "both", *FUSION_POINT)
    seeds, n_audio, n_visual, examples = initial.shape
    parts, holds_p, fails_p, shares, ses = [], [], [], [], []
    for late in LATE:
        other = study.correct(late, "both", *FUSION_POINT)
        gap = initial.sum(axis=(0, 3)).astype(np.int64) - other.sum(axis=(0, 3))  # exact ties
        per_unit = np.moveaxis(initial.astype(np.float64) - other, -1, 1).reshape(seeds, examples, -1)
        share = (bootstrap_means(per_unit) > 1e-9).mean(axis=1)  # share of points with initial strictly ahead
        observed = float(np.mean(gap > 0))
        holds_p.append((1 + np.sum(share <= 0.5)) / (1 + share.size))
        fails_p.append((1 + np.sum(share > 0.5)) / (1 + share.size))
        shares.append(observed)
        ses.append(np.median(paired_difference(initial, other, axes=(0, 3))["se"]))
        low, high = np.quantile(share, [0.025, 0.975])
        parts.append(f"vs {late}: initial ahead at {int(np.sum(gap > 0))}, tied at {int(np.sum(gap == 0))}, behind at "
                     f"{int(np.sum(gap < 0))} of {gap.size} points (share ahead {observed:.0%}, bootstrap 95% "
                     f"{low:.0%} to {high:.0%})")
    holds_q, fails_q = holm(np.array(holds_p)), holm(np.array(fails_p))
    if any(s <= 0.5 and q < ALPHA for s, q in zip(shares, fails_q)):
        verdict, p = FAILS, float(min(q for s, q in zip(shares, fails_q) if s <= 0.5))
    elif all(s > 0.5 for s in shares) and holds_q.max() < ALPHA:
        verdict, p = HOLDS, float(holds_q.max())
    else:
        verdict, p = INCONCLUSIVE, float(holds_q.max())
    return Evidence(
        "; ".join(parts),
        "strict majority: the share of points where initial is ahead (ties count against) must exceed 50%; "
        "its distribution by resampling the units (bootstrap), one-sided, Holm over the two late models. "
        "Detectable effect: the gap a single point needs for its sign to be reliable",
        verdict, p, units_text(seeds, examples), float(detectable(max(ses))))


@claim("4.3-fc-never-worse", "4.3",
       "In particular, the initial layer fusion model always outperforms or equally performs to the fully connected "
       "fusion model.", "all 100 test points", per_family=True, fusion_point=True)
def fc_never_worse(study: Study, margin: float) -> Evidence:
    initial = study.correct("initial", "both", *FUSION_POINT)
    r = paired_difference(initial, study.correct("fc", "both", *FUSION_POINT), axes=(0, 3))
    verdict, p, needed = margin_verdict(r["difference"], r["se"], r["p"], int(r["n"]), margin)
    lower = r["difference"] - z_quantile(1 - ALPHA) * r["se"]
    return Evidence(
        f"initial minus fc: from {pts(float(r['difference'].min()))} to {pts(float(r['difference'].max()))} points; "
        f"lowest one-sided lower bound {pts(float(lower.min()))}; fc significantly ahead (Holm) at "
        f"{int(np.sum((holm(r['p']) < ALPHA) & (r['difference'] < 0)))} points",
        margin_test_text(margin, needed), verdict, p, units_text(initial.shape[0], initial.shape[-1]), needed)


@claim("4.3-second-except-low-audio", "4.3",
       "Furthermore, the initial layer fusion model outperforms the second layer fusion model, except for when the "
       "audio input is degraded well beyond the audio training signal to noise ratio.",
       "test audio SNR at or above the training audio SNR 0.5 (70 points); below it the sentence allows exceptions",
       per_family=True, fusion_point=True)
def second_except_low_audio(study: Study, margin: float) -> Evidence:
    initial, second = (study.correct(f, "both", *FUSION_POINT) for f in ("initial", "second"))
    mask = audio_mask(study, lambda audio: audio >= FUSION_POINT[0])
    t = paired_test(region_difference(initial, second, mask))
    points = paired_difference(initial[:, mask], second[:, mask], axes=(0, 2))
    points_q = holm(points["p"])
    against = (points_q < ALPHA) & (points["difference"] < 0)
    if against.any():
        verdict, p = FAILS, float(points_q[against].min())
    elif t.p < ALPHA:
        verdict, p = (HOLDS if t.mean > 0 else FAILS), t.p
    else:
        verdict, p = INCONCLUSIVE, t.p
    return Evidence(
        f"initial minus second over the region: {pts(t.mean)} points (95% {pts(t.low)} to {pts(t.high)}, p = {t.p:.3g}); "
        f"second significantly ahead (McNemar, Holm over the region) at {int(against.sum())} of {int(mask.sum())} points",
        f"{t.method} on each unit's mean over the region; holds needs a significant advantage and no point of the "
        "region significantly against", verdict, p, units_text(t.seeds, t.examples), t.detectable())


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
        parts.append(f"Fig. {number} (a {snr_label(a)} / v {snr_label(v)}, {int(mask.sum())} points): "
                     f"{pts(t.mean)} points (p = {t.p:.3g})")
    return Evidence("initial minus fc: " + "; ".join(parts),
                    "paired test on each unit's mean over its figure's region (sign-flip or cluster bootstrap), "
                    f"Holm over the {len(APPENDIX)} figures; holds needs all significantly positive",
                    *favour_all_tests(tests))


# --- 4.4: the 16-model grid -----------------------------------------------------------------------------------

def dependence(study: Study, models: list[tuple[float, float]], on: str) -> Evidence:
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
    return Evidence("; ".join(parts),
                    f"paired test per model of the difference of drops over units, Holm over the {len(models)} models; "
                    "holds needs every model on the claimed side", *favour_all_tests(tests))


@claim("4.4-visual-dependence", "4.4",
       "In the top left quadrant of the figure, we see that at higher visual SNRs (1, 0.5) and lower audio SNRs (0.5, "
       "0.25) the model is mainly dependent on visual information. This is denoted by the test accuracy's consistency "
       "as the audio SNR varies from the original to 0.0625.",
       "the 4 models trained at audio 0.5 or 0.25 and visual 1 or 0.5; test SNR orig against 0.0625 along each "
       "modality, the other at its training SNR")
def visual_dependence(study: Study, margin: float) -> Evidence:
    return dependence(study, [(a, v) for a in (0.5, 0.25) for v in (1.0, 0.5)], on="visual")


@claim("4.4-audio-dependence", "4.4",
       "As we move to the bottom right quadrant we see lower visual SNRs (0.25, 0.125) and higher audio SNRs (2, 1) "
       "accompanied by an increasing dependence on the audio information.",
       "the 4 models trained at audio 2 or 1 and visual 0.25 or 0.125; as 4.4-visual-dependence, mirrored")
def audio_dependence(study: Study, margin: float) -> Evidence:
    return dependence(study, [(a, v) for a in (2.0, 1.0) for v in (0.25, 0.125)], on="audio")


@claim("4.4-easier-points", "4.4",
       "In the bottom left quadrant, which corresponds to high audio and visual SNRs, the model performs well on all "
       "of the combinations of audio and visual SNRs that are larger in value than the audio-visual SNR that the "
       "model was trained on.",
       "the 4 models trained at audio 2 or 1 and visual 1 or 0.5: every test point at or above both training SNRs, "
       "against the training point", fusion=False)
def easier_points(study: Study, margin: float) -> Evidence:
    audio, visual = (x.astype(np.float64) for x in (study.evaluation.audio_snrs, study.evaluation.visual_snrs))
    differences, ses, ps, count, worst = [], [], [], 0, []
    for a in (2.0, 1.0):
        for v in (1.0, 0.5):
            correct = study.correct("initial", "both", a, v)
            i, j = study.grid_index(a, v)
            mask = (audio[:, None] >= a) & (visual[None, :] >= v)
            mask[i, j] = False
            easier = correct[:, mask]  # (seeds, points, examples)
            r = paired_difference(easier, np.broadcast_to(correct[:, i:i + 1, j], easier.shape), axes=(0, 2))
            differences.append(r["difference"])
            ses.append(r["se"])
            ps.append(r["p"])
            count, n = count + int(mask.sum()), int(r["n"])
            worst.append(f"a {snr_label(a)}/v {snr_label(v)} {pts(float(r['difference'].min()))}")
    verdict, p, needed = margin_verdict(np.concatenate(differences), np.concatenate(ses), np.concatenate(ps), n, margin)
    return Evidence(f"{count} (model, easier point) comparisons; lowest easier-minus-training difference per model: "
                    + ", ".join(worst), margin_test_text(margin, needed), verdict, p,
                    units_text(correct.shape[0], correct.shape[-1]), needed)


# --- 4.5: unimodal models -------------------------------------------------------------------------------------

def clean_input_drops(study: Study) -> dict[str, tuple[list[float], list[np.ndarray]]]:
    """Per modality: training SNRs and each model's outcomes on clean (orig) test input, (seeds, examples)."""
    out = {}
    for modalities in ("visual", "audio"):
        curves = unimodal_curves(study, modalities)
        out[modalities] = (list(curves), [curve[:, 0] for curve in curves.values()])
    return out


@claim("4.5-unimodal-noise-cost", "4.5",
       "As expected, the unimodal models perform relatively well at the SNR that they are trained at or higher, "
       "although as the training SNR decreases, the models perform worse overall, and the performance on higher SNR "
       "data decreases.", "clean test input (orig): the orig-trained against the noisiest-trained model, per modality",
       fusion=False)
def unimodal_noise_cost(study: Study, margin: float) -> Evidence:
    parts, results, ses = [], [], []
    for modalities, (snrs, clean) in clean_input_drops(study).items():
        r = paired_difference(clean[0], clean[-1], axes=(0, 1))
        results.append((float(r["difference"]), float(r["p"])))
        ses.append(float(r["se"]))
        parts.append(f"{modalities}-only on clean input: " + ", ".join(
            f"trained at {snr_label(s)} {100 * c.mean():.1f}%" for s, c in zip(snrs, clean))
            + f" (drop {pts(float(r['difference']))} points, p = {float(r['p']):.3g})")
    verdict, p = favour_all(results)
    return Evidence("; ".join(parts), "McNemar exact test per modality, Holm over the two; holds needs both drops "
                    "significant", verdict, p, units_text(*clean[0].shape), float(detectable(max(ses), tests=2)))


@claim("4.5-audio-cost-larger", "4.5", "This effect is particularly noticeable in the audio only model, figure 6.",
       "clean test input: the audio-only drop (orig-trained minus noisiest-trained) against the visual-only drop",
       fusion=False)
def audio_cost_larger(study: Study, margin: float) -> Evidence:
    drops = {m: c[0].astype(np.float64) - c[-1] for m, (_, c) in clean_input_drops(study).items()}
    t = paired_test(drops["audio"] - drops["visual"])  # paired by test example
    verdict = HOLDS if t.mean > 0 and t.p < ALPHA else FAILS if t.mean < 0 and t.p < ALPHA else INCONCLUSIVE
    return Evidence(f"audio drop {pts(drops['audio'].mean())}, visual drop {pts(drops['visual'].mean())}: difference "
                    f"{pts(t.mean)} points (95% {pts(t.low)} to {pts(t.high)}, p = {t.p:.3g})",
                    f"{t.method} on the per-example difference of the two drops", verdict, t.p,
                    units_text(t.seeds, t.examples), t.detectable())


@claim("4.5-both-contribute", "4.5",
       "This discrepancy motivated us to choose an audio SNR of 0.5 and a visual SNR of 0.25 for further investigation "
       "of the model architecture, such that the contribution of each modality will be comparable and will allow us to "
       "investigate early fusion in a setting where multimodal fusion will be beneficial.",
       "the fusion point (audio 0.5, visual 0.25): the multimodal model (first seed) against each unimodal model "
       "trained and tested at its modality's SNR there", fusion_point=True)
def both_contribute(study: Study, margin: float) -> Evidence:
    a, v = FUSION_POINT
    i, j = study.grid_index(a, v)
    multi = study.correct("initial", "both", a, v)[:1, i, j]  # first seed: the unimodal models have one
    results, parts, ses = [], [], []
    for modalities, snr in (("visual", v), ("audio", a)):
        k = study.grid_index(snr, snr)[0]  # the grid is square: its modality's test SNR = its training SNR
        r = paired_difference(multi, unimodal_curves(study, modalities)[snr][:, k], axes=(0, 1))
        results.append((float(r["difference"]), float(r["p"])))
        ses.append(float(r["se"]))
        parts.append(f"minus {modalities}-only: {pts(float(r['difference']))} points (p = {float(r['p']):.3g})")
    verdict, p = favour_all(results)
    return Evidence(f"multimodal {100 * multi.mean():.1f}%; " + "; ".join(parts),
                    "McNemar exact test per unimodal model, Holm over the two; holds needs both significantly positive",
                    verdict, p, units_text(*multi.shape), float(detectable(max(ses), tests=2)))


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
    r = paired_difference(matched, mismatched, axes=(0, 1))
    d = float(r["difference"])
    verdict = HOLDS if d > 0 and r["p"] < ALPHA else FAILS if d < 0 and r["p"] < ALPHA else INCONCLUSIVE
    return Evidence(f"final-step accuracy of the main initial-fusion model(s) with the matched recording "
                    f"{100 * matched.mean():.1f}%, with another digit's {100 * mismatched.mean():.1f}%: {pts(d)} points "
                    f"(p = {float(r['p']):.3g})",
                    "McNemar exact test, matched against mismatched recording, same image and noise level; the "
                    "difference is what the audio adds by the last step (the first steps hear only padding, so a "
                    "first-versus-last comparison would also count the recurrence settling on the image)",
                    verdict, float(r["p"]), units_text(*matched.shape), float(detectable(r["se"])))
