"""`clstm-jax study`: every experiment of the paper in one run, evaluated, drawn, and judged claim by claim.

All the study's models have one parameter shape, so they train in one
vmapped program (one sweep run): the fusion comparisons at audio/visual
training SNR (0.5, 0.25) -- with `study.seeds` seeds -- and at the
appendix's four pairs, the 16-model SNR grid, and the visual-only and
audio-only models. Interrupted, it resumes: training from the last
checkpoint, and a finished evaluation is not redone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clstm_jax.config import Config, ModelSpec, snr_label
from clstm_jax.evaluate import EVAL_DIR, evaluate, load_evaluation
from clstm_jax.inspection import SCENARIOS, step_probabilities
from clstm_jax.report import (APPENDIX, GRID_AUDIO, GRID_VISUAL, LATE, MAIN, UNIMODAL_AUDIO, UNIMODAL_VISUAL, Study,
                              draw_report, unimodal_curves, unimodal_pair)
from clstm_jax.run import Run, load_run
from clstm_jax.stats import holm, mcnemar_exact, paired_difference
from clstm_jax.sweep import run_sweep

ALPHA = 0.05
BOOTSTRAP = 2000


def study_specs(config: Config) -> list[ModelSpec]:
    """The study's models, without duplicates, in a fixed order."""
    seeds, first = config.study.seeds, config.study.seeds[0]
    specs = []
    for a, v in (MAIN, *APPENDIX.values()):
        for fusion in ("initial", *LATE):
            specs += [ModelSpec(fusion, "both", a, v, s) for s in (seeds if (a, v) == MAIN else (first,))]
    specs += [ModelSpec("initial", "both", a, v, first) for a in GRID_AUDIO for v in GRID_VISUAL]
    specs += [ModelSpec("initial", "visual", *unimodal_pair("visual", v), first) for v in UNIMODAL_VISUAL]
    specs += [ModelSpec("initial", "audio", *unimodal_pair("audio", a), first) for a in UNIMODAL_AUDIO]
    return list(dict.fromkeys(specs))


def run_study(config: Config, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
              log=print) -> Path:
    """Train, evaluate, report and judge; returns the path of results.md."""
    run_dir = Path(run_dir)
    specs = study_specs(config)
    started = time.perf_counter()
    log(f"study: {len(specs)} models in one program, {config.train.steps} steps each -> {run_dir}")
    run_sweep(config, run_dir, data_dir, progress, specs)
    run = load_run(run_dir)
    stored = run_dir / EVAL_DIR / "accuracy.npz"
    evaluation = load_evaluation(run_dir) if stored.exists() else None
    if evaluation is not None and evaluation.step == config.train.steps:
        log(f"study: evaluation of step {config.train.steps} found in {stored}; not redone")
    else:
        log("study: evaluating every model on the test-SNR grid")
        evaluation = evaluate(run, data_dir=data_dir, progress=progress)
        evaluation.save(run_dir / EVAL_DIR, run.specs)
    study = Study(evaluation, run.specs)
    for line in draw_report(run, study, data_dir):
        log(f"study: report {line}")
    claims = judge(study) + [judge_inspection(inspection_outcomes(study, run, data_dir))]
    path = run_dir / "results.md"
    path.write_text(results_markdown(config, claims, study, run_dir, time.perf_counter() - started))
    log(f"study: {len(claims)} claims judged -> {path}")
    return path


@dataclass(frozen=True)
class Claim:
    section: str
    text: str
    measured: str
    verdict: str  # holds / does not hold / inconclusive
    test: str


def fmt(x: float) -> str:
    return f"{100 * x:.1f}%"


def point_test(study: Study, late: str, a: float, v: float) -> dict:
    """Initial minus late at every grid point, McNemar pooled over (example, seed), Holm over the grid."""
    result = paired_difference(study.correct("initial", "both", a, v), study.correct(late, "both", a, v), axes=(0, 3))
    result["p_holm"] = holm(result["p"])
    pooled_b, pooled_c = int(result["b"].sum()), int(result["c"].sum())
    result["pooled_p"] = float(mcnemar_exact(pooled_b, pooled_c))
    result["pooled_difference"] = float(result["difference"].mean())
    return result


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-example values (examples on the last axis, resampled)."""
    rng = np.random.default_rng(seed)
    n = values.shape[-1]
    means = np.array([values[..., rng.integers(0, n, n)].mean() for _ in range(BOOTSTRAP)])
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def dependence(study: Study, a: float, v: float) -> tuple[float, float, tuple[float, float]]:
    """Accuracy drop from the cleanest to the noisiest test SNR along audio (visual held at training) and
    along visual (audio held at training); and a paired bootstrap interval of visual drop minus audio drop."""
    correct = study.correct("initial", "both", a, v).astype(float)  # (seeds, A, V, N)
    i, j = study.grid_index(a, v)
    audio_drop = correct[:, 0, j] - correct[:, -1, j]  # (seeds, N)
    visual_drop = correct[:, i, 0] - correct[:, i, -1]
    return float(audio_drop.mean()), float(visual_drop.mean()), bootstrap_ci(visual_drop - audio_drop)


def verdict_from(holds: bool, fails: bool) -> str:
    return "does not hold" if fails else "holds" if holds else "inconclusive"


def judge(study: Study) -> list[Claim]:
    """One Claim per statement of the paper's sections 4.3-4.6 that the study can test."""
    claims = []
    mcnemar = "McNemar exact test on paired (example, seed) outcomes"
    i, j = study.grid_index(*MAIN)
    tests = {late: point_test(study, late, *MAIN) for late in LATE}

    at_train = {late: (float(t["difference"][i, j]), float(t["p"][i, j])) for late, t in tests.items()}
    p_adj = holm(np.array([p for _, p in at_train.values()]))
    measured = "; ".join(f"initial minus {late}: {fmt(d)} (Holm p = {p:.3g})" for (late, (d, _)), p in zip(at_train.items(), p_adj))
    claims.append(Claim("4.3", "At its training SNR (audio 0.5, visual 0.25), initial fusion is more accurate than second and fc fusion.",
                        measured, verdict_from(all(d > 0 and p < ALPHA for (d, _), p in zip(at_train.values(), p_adj)),
                                               any(d < 0 and p < ALPHA for (d, _), p in zip(at_train.values(), p_adj))),
                        f"{mcnemar} at the training point, Holm over the two comparisons."))

    parts, holds, fails = [], True, False
    for late, t in tests.items():
        share = float(np.mean(t["difference"] >= 0))
        better, worse = int(np.sum((t["p_holm"] < ALPHA) & (t["difference"] > 0))), int(np.sum((t["p_holm"] < ALPHA) & (t["difference"] < 0)))
        parts.append(f"vs {late}: initial >= {late} at {share:.0%} of grid points, significantly better at {better}, worse at {worse}; "
                     f"mean difference {fmt(t['pooled_difference'])} (pooled p = {t['pooled_p']:.3g})")
        holds &= share > 0.5 and t["pooled_difference"] > 0 and t["pooled_p"] < ALPHA
        fails |= t["pooled_difference"] < 0 and t["pooled_p"] < ALPHA
    claims.append(Claim("4.3", "Initial fusion is more accurate than late fusion at the majority of the 100 test SNRs.",
                        "; ".join(parts), verdict_from(holds, fails),
                        f"Share of grid points with initial >= late (> 50% needed) and {mcnemar} pooled over the whole grid."))

    t = tests["fc"]
    worse = int(np.sum((t["p_holm"] < ALPHA) & (t["difference"] < 0)))
    claims.append(Claim("4.3", "Initial fusion always outperforms or equals fc fusion.",
                        f"grid points where fc is significantly better: {worse} of {t['difference'].size}; "
                        f"mean difference {fmt(t['pooled_difference'])} (pooled p = {t['pooled_p']:.3g})",
                        verdict_from(worse == 0 and t["pooled_difference"] > 0 and t["pooled_p"] < ALPHA, worse > 0),
                        f"{mcnemar} per grid point, Holm over the grid; holds needs no point against and a pooled advantage."))

    t = tests["second"]
    audio = study.evaluation.audio_snrs
    worse = (t["p_holm"] < ALPHA) & (t["difference"] < 0)
    better = (t["p_holm"] < ALPHA) & (t["difference"] > 0)
    outside = int(np.sum(worse & (audio[:, None] >= MAIN[0])))
    claims.append(Claim("4.3", "Initial fusion outperforms second-layer fusion except when the test audio is degraded well beyond "
                        "the training audio SNR (0.5).",
                        f"second significantly better at {int(worse.sum())} grid points, {outside} of them at test audio SNR >= 0.5; "
                        f"initial significantly better at {int(better.sum())}",
                        verdict_from(outside == 0 and better.sum() > 0, outside > 0),
                        f"{mcnemar} per grid point, Holm over the grid; holds needs initial ahead somewhere and second "
                        "ahead only below the training audio SNR."))

    parts, favour, against = [], 0, 0
    appendix = [(a, v) for a, v in APPENDIX.values() if all(study.has(f, "both", a, v) for f in ("initial", *LATE))]
    pooled = [point_test(study, "fc", a, v) for a, v in appendix]
    adjusted = holm(np.array([r["pooled_p"] for r in pooled]))
    for (a, v), r, p in zip(appendix, pooled, adjusted):
        parts.append(f"audio {snr_label(a)} / visual {snr_label(v)}: {fmt(r['pooled_difference'])} (Holm p = {p:.3g})")
        favour += r["pooled_difference"] > 0 and p < ALPHA
        against += r["pooled_difference"] < 0 and p < ALPHA
    claims.append(Claim("A.3", "The advantage of initial over fc fusion holds at the appendix's other training SNRs (Figs. 9-12).",
                        "initial minus fc over the grid: " + "; ".join(parts),
                        verdict_from(favour == len(appendix), against > 0),
                        f"{mcnemar} pooled over each grid, Holm over the {len(appendix)} training pairs."))

    for text, models, expect_visual in (
        ("Models trained with clean vision and noisy audio (visual SNR 1 or 0.5, audio 0.5 or 0.25) depend mainly on "
         "vision: their accuracy changes less along the test audio SNR than along the test visual SNR.",
         [(a, v) for a in (0.5, 0.25) for v in (1.0, 0.5)], True),
        ("Models trained with noisy vision and clean audio (visual SNR 0.25 or 0.125, audio 2 or 1) depend mainly on "
         "audio: their accuracy changes less along the test visual SNR than along the test audio SNR.",
         [(a, v) for a in (2.0, 1.0) for v in (0.25, 0.125)], False),
    ):
        parts, agree, disagree = [], 0, 0
        for a, v in models:
            audio_drop, visual_drop, (low, high) = dependence(study, a, v)
            if not expect_visual:
                low, high = -high, -low
            parts.append(f"a {snr_label(a)}/v {snr_label(v)}: drop along audio {fmt(audio_drop)}, along visual {fmt(visual_drop)}")
            agree += low > 0
            disagree += high < 0
        claims.append(Claim("4.4", text, "; ".join(parts), verdict_from(agree == len(models), disagree > 0),
                            "Drop = accuracy at the cleanest minus the noisiest test SNR of one modality, the other at its "
                            f"training SNR; paired bootstrap ({BOOTSTRAP} resamples of the test examples) 95% interval of "
                            "the difference of drops; holds needs every model's interval on the claimed side."))

    parts, significant, tested = [], 0, 0
    for a in GRID_AUDIO:
        for v in GRID_VISUAL:
            correct = study.correct("initial", "both", a, v)
            ti, tj = study.grid_index(a, v)
            easier = [(p, q) for p in range(ti + 1) for q in range(tj + 1) if (p, q) != (ti, tj)]
            ps, diffs = [], []
            for p, q in easier:
                r = paired_difference(correct[:, p, q], correct[:, ti, tj], axes=(0, 1))
                ps.append(float(r["p"])), diffs.append(float(r["difference"]))
            adjusted = holm(np.array(ps)) if ps else np.array([])
            significant += int(np.sum((adjusted < ALPHA) & (np.array(diffs) < 0)))
            tested += len(ps)
    claims.append(Claim("4.4", "Each of the 16 models performs at least as well at every test SNR pair at or above its training SNRs "
                        "as at its training SNRs.",
                        f"{significant} of {tested} (model, easier test point) comparisons significantly worse than the training point",
                        verdict_from(significant == 0, significant > 0),
                        f"{mcnemar}, easier point vs training point of the same model, Holm within each model."))

    drops = {}
    for modalities in ("visual", "audio"):
        curves = unimodal_curves(study, modalities)  # {training SNR: (seeds, test SNRs, examples)}
        snrs, clean = list(curves), [curve[:, 0] for curve in curves.values()]  # on clean (orig) test input
        r = paired_difference(clean[0], clean[-1], axes=(0, 1))
        drops[modalities] = (snrs, clean, r)
    measured = "; ".join(
        f"{m}-only on clean input: " + ", ".join(f"trained at {snr_label(s)} {fmt(c.mean())}" for s, c in zip(snrs, clean))
        + f" (orig-trained minus {snr_label(snrs[-1])}-trained {fmt(float(r['difference']))}, p = {float(r['p']):.3g})"
        for m, (snrs, clean, r) in drops.items())
    claims.append(Claim("4.5", "Unimodal models trained at lower SNR do worse on clean input.", measured,
                        verdict_from(all(r["difference"] > 0 and r["p"] < ALPHA for _, _, r in drops.values()),
                                     any(r["difference"] < 0 and r["p"] < ALPHA for _, _, r in drops.values())),
                        f"{mcnemar}: the orig-trained against the noisiest-trained model, on clean test input, per modality."))

    (_, va, _), (_, aa, _) = drops["visual"], drops["audio"]
    gap = (aa[0].astype(float) - aa[-1]) - (va[0].astype(float) - va[-1])  # (seeds, N), paired by example
    low, high = bootstrap_ci(gap.reshape(-1))
    claims.append(Claim("4.5", "This loss is larger for the audio-only model than for the visual-only model.",
                        f"audio drop minus visual drop: {fmt(float(gap.mean()))} (95% interval {fmt(low)} to {fmt(high)})",
                        verdict_from(low > 0, high < 0),
                        f"Paired bootstrap ({BOOTSTRAP} resamples of the test examples) of the difference of the two drops."))

    multi = study.correct("initial", "both", *MAIN)[:1, i, j]  # first seed: the unimodal models have one
    against = {}
    for modalities, snr in (("visual", MAIN[1]), ("audio", MAIN[0])):
        k = list(study.evaluation.audio_snrs).index(np.float32(snr))  # its modality's test SNR = its training SNR
        against[f"{modalities}-only (trained at {modalities} {snr_label(snr)})"] = unimodal_curves(study, modalities)[snr][:, k]
    results = {k: paired_difference(multi, c, axes=(0, 1)) for k, c in against.items()}
    adjusted = holm(np.array([float(r["p"]) for r in results.values()]))
    claims.append(Claim("4.5", "Both modalities contribute: at audio 0.5 / visual 0.25 the multimodal model beats each unimodal "
                        "model at the same SNR.",
                        f"multimodal {fmt(multi.mean())}; " + "; ".join(
                            f"minus {k}: {fmt(float(r['difference']))} (Holm p = {p:.3g})" for (k, r), p in zip(results.items(), adjusted)),
                        verdict_from(all(r["difference"] > 0 and p < ALPHA for r, p in zip(results.values(), adjusted)),
                                     any(r["difference"] < 0 and p < ALPHA for r, p in zip(results.values(), adjusted))),
                        f"{mcnemar}, same test examples and noise, Holm over the two comparisons."))
    return claims


def inspection_outcomes(study: Study, run: Run, data_dir: str | None) -> np.ndarray:
    """bool (examples, frames): is the main initial-fusion model right at each step, audio 1 / visual 0.25."""
    probs, labels = step_probabilities(run, run.model(run.names[study.groups[("initial", "both", *MAIN)][0]]),
                                       None, data_dir)
    scenario = [(a, v) for _, a, v in SCENARIOS].index((1.0, 0.25))
    return probs[scenario].argmax(-1) == labels[:, None]


def judge_inspection(step_correct: np.ndarray) -> Claim:
    """4.6: with a noisy image (audio 1, visual 0.25), the audio arriving over time makes the answer right more often.

    step_correct: bool (examples, frames) of the main initial-fusion model in that scenario.
    """
    first, last = step_correct[:, 0], step_correct[:, -1]
    r = paired_difference(last, first, axes=(0,))
    return Claim("4.6", "With a noisy image (audio 1, visual 0.25) the prediction improves as the audio arrives: the last "
                 "time step is right more often than the first.",
                 f"accuracy at the first step {fmt(first.mean())}, at the last {fmt(last.mean())} (p = {float(r['p']):.3g})",
                 verdict_from(r["difference"] > 0 and r["p"] < ALPHA, r["difference"] < 0 and r["p"] < ALPHA),
                 "McNemar exact test, last step vs first step on the same test examples.")


def results_markdown(config: Config, claims: list[Claim], study: Study, run_dir: Path, seconds: float) -> str:
    evaluation = study.evaluation
    lines = [
        f"# Study results ({config.preset or 'custom'} preset)", "",
        f"{len(study.specs)} models, {config.train.steps} training steps of {config.train.batch_size} pairs each; "
        f"{len(config.study.seeds)} seed(s) for the main fusion comparison; evaluated on {evaluation.examples} "
        f"shared test pairs per grid point ({evaluation.mode}) over a {len(evaluation.audio_snrs)} x "
        f"{len(evaluation.visual_snrs)} test-SNR grid. This invocation took {seconds / 60:.1f} min "
        "(a resumed study counts only its own part).", "",
        "Verdicts: **holds** when the stated test supports the claim at the 5% level, **does not hold** when it "
        "finds the opposite, **inconclusive** otherwise.", "",
        "| # | section | claim | measured | verdict | test |", "|---|---|---|---|---|---|",
    ]
    for k, c in enumerate(claims, 1):
        lines.append(f"| {k} | {c.section} | {c.text} | {c.measured} | **{c.verdict}** | {c.test} |")
    lines += ["", "## Figures", ""]
    for number in (3, 4, 5, 6, 7, 9, 10, 11, 12):
        if (run_dir / "report" / f"fig{number}.png").exists():
            lines.append(f"![Fig. {number}](report/fig{number}.png)")
            lines.append("")
    return "\n".join(lines) + "\n"
