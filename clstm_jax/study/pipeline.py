"""`clstm-jax study`: every experiment of the paper in one run, evaluated, drawn, and judged claim by claim.

All the study's models have one parameter shape, so they train in one
vmapped program (one sweep run): the fusion comparisons at audio/visual
training SNR (0.5, 0.25) -- with `study.seeds` seeds -- and at the
appendix's four pairs, the 16-model SNR grid, and the visual-only and
audio-only models. Interrupted, it resumes: training from the last
checkpoint, and a finished evaluation is not redone.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from clstm_jax.config import Config, check_study
from clstm_jax.config.experiments import GRID_AUDIO, GRID_VISUAL, LATE, study_models
from clstm_jax.core import environment, interrupts
from clstm_jax.core.output import staged
from clstm_jax.core.snr import snr_label
from clstm_jax.evaluation.evaluate import EVAL_DIR, Evaluation, evaluate, evaluation_inputs, grid_snrs, load_evaluation
from clstm_jax.evaluation.inspection import step_probabilities
from clstm_jax.evaluation.modality_use import CONDITIONS, POINTS, ModalityUse, condition_inputs, load_modality_use
from clstm_jax.evaluation.modality_use import measure as measure_modality_use
from clstm_jax.evaluation.run import Run, load_run
from clstm_jax.study.claims import (
    ABSENT,
    ARRIVAL_SCENARIO,
    EQUIVALENT,
    HOLDS,
    UNUSED,
    VERDICTS,
    Judged,
    equivalent,
    judge,
    modality_check,
    scope_ids,
)
from clstm_jax.study.report import draw_report, figure_name
from clstm_jax.study.view import Arrival, Study
from clstm_jax.training.run_dir import RunFiles, run_lock
from clstm_jax.training.sweep import run_sweep


def run_study(config: Config, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
              log=print) -> Path:
    """Train, evaluate, report and judge; returns the path of results.md."""
    check_study(config)
    with run_lock(Path(run_dir)):  # one job per run directory, from training to results.md
        return study_run(config, Path(run_dir), data_dir, progress, log)


def study_run(config: Config, run_dir: Path, data_dir: str | None, progress: bool, log) -> Path:
    """run_study's work, with the run directory held."""
    specs = study_models(config)
    started = time.perf_counter()
    log(f"study: {len(specs)} models in one program, {config.train.steps} steps each -> {run_dir}")
    run_sweep(config, run_dir, data_dir, progress, specs)
    run = load_run(run_dir)
    evaluation = current_evaluation(run, data_dir, progress, log)
    use = current_modality_use(run, data_dir, progress, log)
    study = measured_study(run, data_dir, evaluation, use)
    for line in draw_report(run, study):
        log(f"study: report {line}")
    interrupts.doing("judging the claims")
    judged = judge_run(run, study)
    path = run_dir / "results.md"
    with staged(run_dir, "the results") as aside:  # both or neither: a failure keeps the previous pair
        write_claims(aside / CLAIMS_FILE, judged)
        (aside / path.name).write_text(results_markdown(config, judged, study, run_dir, time.perf_counter() - started))
    log(f"study: {len(judged)} claims judged -> {path} and {run_dir / CLAIMS_FILE}")
    return path


def current_evaluation(run: Run, data_dir: str | None, progress: bool, log) -> Evaluation:
    """The run's stored evaluation when it is the one the study's config asks for; else evaluated and stored."""
    stored = run.path / EVAL_DIR / "accuracy.npz"
    evaluation = load_evaluation(run.path) if stored.exists() else None
    differences = evaluation_differences(evaluation, run) if evaluation is not None else None
    if differences == []:
        log(f"study: evaluation of step {run.config.train.steps} found in {stored}; not redone")
        return evaluation
    log("study: evaluating every model on the test-SNR grid" + (
        f" (the one in {stored} was made with other settings: {'; '.join(differences)})" if differences else ""))
    evaluation = evaluate(run, data_dir=data_dir, progress=progress, keep=run.path / EVAL_DIR)
    evaluation.save(run.path / EVAL_DIR, run.specs)
    return evaluation


def current_modality_use(run: Run, data_dir: str | None, progress: bool, log) -> ModalityUse:
    """The run's stored modality-use measurement when it is the one the study's config asks for; else measured."""
    use = load_modality_use(run.path)
    differences = modality_use_differences(use, run) if use is not None else None
    if differences == []:
        return use
    log("study: measuring modality use (each input swapped for another digit's, or zeroed)" + (
        f"; the stored one was made with other settings: {'; '.join(differences)}" if differences else ""))
    use = measure_modality_use(run, data_dir, progress, keep=run.path / EVAL_DIR)
    use.save(run.path / EVAL_DIR, run.specs)
    return use


def measured_study(run: Run, data_dir: str | None, evaluation: Evaluation | None = None,
                   use: ModalityUse | None = None) -> Study:
    """The run's Study with the measurements that need a forward pass: Fig. 7's audio swap (claim 4.6) and
    its per-step probabilities. evaluation, use: the run's (default: the stored ones)."""
    study = Study.of(run) if evaluation is None else Study(evaluation, run.specs, modality_use=use,
                                                           fusion_point=run.config.study.fusion_point)
    main = study.models("initial", "both", *study.fusion_point) or [0]
    name = run.names[main[0]]
    probabilities, labels = step_probabilities(run, run.model(name), [0], data_dir)
    return dataclasses.replace(study, audio_swap=audio_swap_outcomes(study, run, data_dir),
                               arrival=Arrival(probabilities[:, 0], int(labels[0]), name))


def evaluation_differences(evaluation: Evaluation, run: Run) -> list[str]:
    """How a stored evaluation differs from the one the study's config asks for (`evaluate --examples 8`
    or `--full` stores other ones); empty when it can be used as it is."""
    cfg = run.config
    return settings_differences({
        "test pairs": (evaluation.examples, cfg.evaluate.examples),
        "mode": (evaluation.mode, "subset"),
        "training step": (evaluation.step, cfg.train.steps),
        "models": (evaluation.names, tuple(run.names)),
        "test SNRs": (evaluation.audio_snrs.tolist(), grid_snrs(cfg).tolist()),
    })


def modality_use_differences(use: ModalityUse, run: Run) -> list[str]:
    """How a stored modality-use measurement differs from the one the study's config asks for; empty when none."""
    return settings_differences({
        "test pairs": (use.correct.shape[-1], run.config.evaluate.point_examples),
        "training step": (use.step, run.config.train.steps),
        "models": (use.names, tuple(run.names)),
    })


def settings_differences(settings: dict[str, tuple]) -> list[str]:
    """ "NAME STORED (the study's: ASKED)" for each name whose (stored, asked) values differ."""
    shown = lambda value: f"[{len(value)}: {value[0]}, ...]" if isinstance(value, tuple) and value else str(value)
    return [f"{name} {shown(stored)} (the study's: {shown(asked)})"
            for name, (stored, asked) in settings.items() if stored != asked]


CLAIMS_FILE = "claims.json"


def write_claims(path: Path, judged: list[Judged]) -> None:
    """claims.json: every judged claim's machine-readable record (`Judged.record`)."""
    path.write_text(json.dumps([j.record() for j in judged], indent=2) + "\n")


def judge_run(run: Run, study: Study) -> list[Judged]:
    """The claims of the run's `study.scope`, judged with its `study.margin` and `study.families`."""
    config = run.config.study
    return judge(study, config.margin, scope_ids(config.scope), config.families)


def audio_swap_outcomes(study: Study, run: Run, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Final-step outcomes, bool (seeds, examples), of each seed's main initial-fusion model in Fig. 7's
    scenario (audio 1, visual 0.25): with each example's own recording, and with that of `other_digit`."""
    images, spectrograms, labels = evaluation_inputs(run, *ARRIVAL_SCENARIO, None, data_dir,
                                                      run.config.evaluate.point_examples)
    inputs = condition_inputs(images, spectrograms, labels)
    models = [run.model(run.names[index]) for index in study.models("initial", "both", *study.fusion_point)]
    right = lambda model, condition: np.asarray(model.logits(*inputs[condition]))[:, -1].argmax(-1) == labels
    return tuple(np.stack([right(model, condition) for model in models])
                 for condition in ("matched", "audio mismatched"))


def balance_lines(study: Study) -> list[str]:
    """Where both modalities contribute comparably (paper 4.5): for each initial-fusion model of the SNR
    grid (first seed), what mismatching each input costs it at its training SNRs, largest smaller cost first."""
    use, rows = study.modality_use, []
    for a in GRID_AUDIO:
        for v in GRID_VISUAL:
            if not study.has("initial", "both", a, v):
                return []
            m = study.models("initial", "both", a, v)[0]
            matched = use.of(m, "training", "matched").mean()
            audio, image = (100 * (matched - use.of(m, "training", f"{x} mismatched").mean()) for x in ("audio", "image"))
            rows.append((min(audio, image), a, v, 100 * matched, audio, image))
    lines = ["", "## Where both modalities contribute", "",
             "The paper chose its fusion point \"such that the contribution of each modality will be comparable\" "
             "(4.5). Per initial-fusion model of the SNR grid (first seed): accuracy at its training SNRs and the "
             "points lost when the recording, or the image, is another digit's. Sorted by the smaller loss: the "
             "first row is the training point where both inputs matter most.", "",
             "| training audio | training visual | matched (%) | audio mismatched costs | image mismatched costs |",
             "|---|---|---|---|---|"]
    for _, a, v, matched, audio, image in sorted(rows, reverse=True):
        lines.append(f"| {snr_label(a)} | {snr_label(v)} | {matched:.1f} | {audio:.1f} | {image:.1f} |")
    return lines


def family_lines(judged: list[Judged], study: Study) -> list[str]:
    """Where the families agree (a study of several `study.families`): each per-family claim's verdict in
    every family, and each family's fusion depths at the training point and over the grid."""
    families = study.families
    if len(families) < 2:
        return []
    verdicts = {(j.claim.id, j.family): j.verdict for j in judged if j.claim.per_family}
    ids = list(dict.fromkeys(claim_id for claim_id, _ in verdicts))
    agree = [claim_id for claim_id in ids if len({verdicts[claim_id, f] for f in families}) == 1]
    lines = ["", "## The fusion comparison in each family", "",
             f"The 4.3 claims judged once per family of late-fusion models ({', '.join(families)}; docs/model.md, "
             "\"Families in one job\"), each against the same initial-fusion models: masked late models give each "
             "modality C/2 channels below the fusion layer, matched ones C (width-matched), a2 ones are the paper's "
             "own A.2 stream networks. The Holm correction runs over every row of the table above. "
             f"**The families agree on {len(agree)} of {len(ids)} claims**"
             + (f"; they differ on {', '.join(f'`{i}`' for i in ids if i not in agree)}." if len(agree) < len(ids)
                else "."), "",
             "| claim | " + " | ".join(families) + " | |", "|---|" + "---|" * (len(families) + 1)]
    for claim_id in ids:
        lines.append(f"| `{claim_id}` | " + " | ".join(verdicts[claim_id, f] for f in families)
                     + f" | {'agree' if claim_id in agree else 'differ'} |")
    a, v = study.fusion_point
    i, j = study.grid_index(a, v)
    lines += ["", f"Accuracy (%) at the training point (audio {snr_label(a)}, visual {snr_label(v)}) and, in brackets, over the whole "
              "100-point grid; mean over seeds. Initial fusion is one model in every family.", "",
              "| family | initial | second | fc |", "|---|---|---|---|"]
    for family in families:
        maps = [study.accuracy(f, "both", a, v, family) for f in ("initial", *LATE)]
        lines.append(f"| {family} | " + " | ".join(f"{100 * m[i, j]:.1f} ({100 * m.mean():.1f})" for m in maps) + " |")
    return lines


def training_point_accuracy(study: Study) -> str:
    """The models' accuracy at their own training SNRs, as text: mean and range over models, in %."""
    ev = study.evaluation
    acc = 100 * np.array([ev.accuracy[m, list(ev.audio_snrs).index(np.float32(s.audio_snr)),
                                      list(ev.visual_snrs).index(np.float32(s.visual_snr))]
                          for m, s in enumerate(study.specs)])
    return (f"accuracy at their training SNRs {acc.mean():.1f}% on average, {acc.min():.1f}-{acc.max():.1f}% "
            f"over the {len(acc)} models; chance is 10%")


def results_markdown(config: Config, judged: list[Judged], study: Study, run_dir: Path, seconds: float) -> str:
    """results.md: what was run, how to read the verdicts, the verdict table (per family too), modality use
    and the figures."""
    lines = (header_lines(config, study, run_dir, seconds) + reading_lines(config, judged, study)
             + verdict_table(judged) + family_lines(judged, study) + modality_use_lines(study)
             + figure_lines(study, run_dir))
    return "\n".join(lines) + "\n"


def header_lines(config: Config, study: Study, run_dir: Path, seconds: float) -> list[str]:
    """The title, a smoke run's warning, where it ran, what was trained and evaluated, and in what time."""
    evaluation = study.evaluation
    seeds = len(study.models("initial", "both", *study.fusion_point))
    records = environment.read(RunFiles(run_dir).environment)
    lines = [f"# Study results ({config.preset or 'custom'} preset)", ""]
    if config.preset == "tiny":
        lines += [f"**A smoke run.** The tiny preset checks the pipeline; its models are barely trained "
                  f"({training_point_accuracy(study)}), and its verdicts say nothing about the paper. For results, "
                  "run the cpu preset (`--set preset=cpu`, about 2 h on 2 cores; README.md) and compare with "
                  "the recorded one in docs/results-cpu.md; the paper's size is a GPU job (`--set preset=paper`).", ""]
    lines += [f"Run on: {environment.summary(records[-1] if records else None)} (every start and resume: "
              "`environment.jsonl`).", ""]
    lines += [
        f"{len(study.specs)} models, {config.train.steps} training steps of {config.train.batch_size} pairs each; "
        f"{seeds} seed(s) for the main fusion comparison; evaluated on {evaluation.examples} "
        f"shared test pairs per grid point ({evaluation.mode}) over a {len(evaluation.audio_snrs)} x "
        f"{len(evaluation.visual_snrs)} test-SNR grid. This invocation took {seconds / 60:.1f} min "
        "(a resumed study counts only its own part).", "",
    ]
    if config.study.scope == "fusion" or config.study.families != ("masked",):
        lines += [f"Late fusion in the families {', '.join(config.study.families)} (`study.families`); scope "
                  f"**{config.study.scope}** (`study.scope`" + ("): only the fusion point's models trained, and only "
                  "the claims they decide judged." if config.study.scope == "fusion" else ")."), ""]
    return lines


def reading_lines(config: Config, judged: list[Judged], study: Study) -> list[str]:
    """How to read the verdicts, whether both modalities are at work, and the count of each verdict."""
    evaluation = study.evaluation
    seeds = len(study.models("initial", "both", *study.fusion_point))
    floor = 2 * 0.5 ** (evaluation.examples * seeds)
    counts = {v: sum(j.verdict.startswith(v) for j in judged) for v in VERDICTS}
    check = modality_check(study)
    return [
        "**How to read the verdicts** (docs/study.md). A claim about an architecture is a claim about training "
        "runs: with two or more seeds the replicate is the training seed (a t-test across seeds of each seed's mean "
        "paired difference, examples nested in it), and the verdict is about the architecture; with one seed it is "
        "about the networks measured and says so (**holds for these networks, 1 seed**), and a claim those networks "
        "do not decide reads **too few seeds**. Grid points that share examples are never counted as independent "
        "draws. **holds**: the claim's test supports it at 5%; **does not hold**: the test finds the opposite; "
        "**inconclusive**: neither; **not testable at this power**: an \"always at least as good\" claim whose "
        f"intervals cannot exclude a loss of {config.study.margin:g} points (`study.margin`) even if the models "
        f"were equal. A holds or does not hold stands only if its p-value, Holm-adjusted across the {len(judged)} "
        "claims, is below 5%. \"detectable\" is the difference the deciding test finds with 80% power, the seed "
        f"variance in it (`clstm-jax power` plans a study from it). With {evaluation.examples} examples x {seeds} "
        f"seed(s), no paired test can give p below 2 x 0.5^{evaluation.examples * seeds} = {floor:.2g}; modality use "
        f"and Fig. 7's audio swap read the first {config.evaluate.point_examples} pairs of the same draw "
        "(`evaluate.point_examples`). Every verdict is also in `claims.json`.", "",
        f"**Both modalities at work?** {check.measured}: "
        + ("both are used, so the fusion claims are judged." if check.verdict == HOLDS else
           f"**{check.verdict}**, so the fusion claims are not judged (SPEC 8b).") + " Per model: "
        "[Modality use](#modality-use).", "",
        f"Verdicts: {', '.join(f'{n} {equivalent(config.study.margin) if v == EQUIVALENT else v}' for v, n in counts.items())}.", "",
    ]


def verdict_table(judged: list[Judged]) -> list[str]:
    """One row per claim: what the paper says, what was measured, the test and the verdict."""
    lines = [
        "| id | section | the paper says | judged on | measured | test | units | detectable (80% power) | p | "
        "p, Holm across claims | about | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j in judged:
        c, e = j.claim, j.evidence
        if j.verdict.startswith((UNUSED, ABSENT)):
            note, p_holm = f" (the test alone: {e.verdict})", "-"
        else:
            note = "" if j.verdict == e.verdict else f" ({e.verdict} before the correction across claims)"
            p_holm = f"{j.p_family:.3g}"
        lines.append(f"| `{j.id}` | {c.section} | \"{c.sentence}\" | {j.region} | {e.measured} | {e.test} | {e.units} "
                     f"| {100 * e.detectable:.1f} points ({e.seeds} seed{'s' if e.seeds > 1 else ''}) | {e.p:.3g} | "
                     f"{p_holm} | {e.about} | **{j.verdict}**{note} |")
    return lines


def modality_use_lines(study: Study) -> list[str]:
    """Each model's accuracy with one input mismatched or zeroed, and where both modalities contribute."""
    use = study.modality_use
    if use is None:
        return []
    lines = ["", "## Modality use", "",
             f"Accuracy (%) on the {use.correct.shape[-1]} shared test pairs with one input replaced by that of "
             "another digit (mismatched) or zeroed, at each model's training SNRs and at the clean corner "
             "(`eval/modality_use.csv`, `report/modality_use.png`).", "",
             "| model | " + " | ".join(f"{p}: {c}" for p in POINTS for c in CONDITIONS) + " |",
             "|---|" + "---|" * (len(POINTS) * len(CONDITIONS))]
    for spec, row in zip(study.specs, use.accuracy.reshape(len(use.names), -1)):
        family = "" if spec.family == "masked" else f"{spec.family} "
        lines.append(f"| {family}{spec.fusion} {spec.modalities} a={snr_label(spec.audio_snr)} v={snr_label(spec.visual_snr)} "
                     f"seed={spec.seed} | " + " | ".join(f"{100 * x:.1f}" for x in row) + " |")
    lines += balance_lines(study)
    return lines


def figure_lines(study: Study, run_dir: Path) -> list[str]:
    """The report's figures that exist, as images."""
    lines = ["", "## Figures", ""]
    names = [figure_name(number, family) for number in (3, 4, 5, 6, 7, 9, 10, 11, 12)
             for family in (study.families if number in (3, 9, 10, 11, 12) else ["masked"])]
    for name in names + ["modality_use"]:
        if (run_dir / "report" / f"{name}.png").exists():
            lines.append(f"![{name}](report/{name}.png)")
            lines.append("")
    return lines
