"""The paper's figures from a run's evaluation: PNGs plus the numbers behind each (CSV).

Heatmaps: rows are the test audio SNR, columns the test visual SNR, both from
the cleanest (orig) to the noisiest; a model's training SNR is outlined. Where
a configuration has several seeds, a heatmap shows the mean over seeds.
Difference maps are late minus initial fusion; a star marks a grid point where
McNemar's exact test over the paired (example, seed) observations rejects
equal accuracy at 5% after Holm's correction over the map's grid points.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from clstm_jax.config.experiments import APPENDIX, GRID_AUDIO, GRID_VISUAL, LATE
from clstm_jax.core import interrupts
from clstm_jax.core.output import staged
from clstm_jax.core.snr import snr_label
from clstm_jax.core.stats import ALPHA, across_seeds, half_width, wilson_interval
from clstm_jax.core.tensorboard import LOG_DIR, Board
from clstm_jax.evaluation.inspection import SCENARIOS, write_inspection
from clstm_jax.evaluation.run import Run
from clstm_jax.study.view import Study

REPORT_DIR = "report"


def percent_colorbar(fig, image, axes, label: str, shrink: float, points: bool = False) -> None:
    """A colour bar in the cells' own unit: accuracies in % (0-100), differences in signed % points."""
    from matplotlib.ticker import FuncFormatter

    bar = fig.colorbar(image, ax=axes, shrink=shrink, label=label)
    signed = lambda x: f"{100 * x:+.0f}" if round(100 * x) else "0"
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: signed(x) if points else f"{100 * x:.0f}"))


def heatmap(ax, values, labels, vmin, vmax, cmap, train=None, stars=None, annotate=True, ylabel=True, fontsize=5):
    """One 10x10 panel; train (row, col) is outlined, stars (bool map) marks significant cells."""
    from matplotlib.patches import Rectangle

    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("test visual SNR", fontsize=7)
    if ylabel:
        ax.set_ylabel("test audio SNR", fontsize=7)
    if train is not None:
        ax.add_patch(Rectangle((train[1] - 0.5, train[0] - 0.5), 1, 1, fill=False, ec="red", lw=2))
    for (i, j), value in np.ndenumerate(values):
        text = (f"{100 * value:.0f}" if annotate else "") + ("*" if stars is not None and stars[i, j] else "")
        if text:
            shade = image.norm(value)
            dark = shade < 0.45 if cmap == "viridis" else abs(shade - 0.5) > 0.35
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color="white" if dark else "black",
                    in_layout=False)  # inside its axes: constrained layout need not measure 100 texts a panel
    return image


def draw_fusion(study: Study, a: float, v: float, number: int, out: Path) -> dict:
    """Fig. 3 (and 9-12): the three fusion depths trained at (a, v) and the late-minus-initial maps."""
    import matplotlib.pyplot as plt

    result = study.fusion_comparison(a, v)
    labels = study.labels
    train = study.grid_index(a, v) if a in study.evaluation.audio_snrs and v in study.evaluation.visual_snrs else None
    seeds = len(study.models("initial", "both", a, v))
    fig, axes = plt.subplots(2, 3, figsize=(12.5, 8.4), layout="constrained")
    for k, (ax, fusion) in enumerate(zip(axes[0], ("initial", *LATE))):
        image = heatmap(ax, result["accuracy"][fusion], labels, 0, 1, "viridis", train, ylabel=k == 0, fontsize=7)
        ax.set_title(f"{fusion} fusion: test accuracy (%)", fontsize=9)
    percent_colorbar(fig, image, axes[0].tolist(), "test accuracy (%)", 0.8)
    limit = max(0.05, max(float(np.abs(result[late]["difference"]).max()) for late in LATE))
    for k, (ax, late) in enumerate(zip(axes[1, 1:], LATE)):
        stars = result[late]["p_holm"] < ALPHA
        image = heatmap(ax, result[late]["difference"], labels, -limit, limit, "RdBu", train, stars, ylabel=k == 0,
                        fontsize=7)
        ax.set_title(f"{late} minus initial (% points; * significant)", fontsize=9)
    percent_colorbar(fig, image, axes[1].tolist(), "accuracy difference (% points; blue: late better)", 0.8, points=True)
    seed_panel(axes[1, 0], result["seeds"])
    test = ("t-test across seeds of the per-seed differences" if seeds > 1 else
            "McNemar exact test on the paired examples (one seed)")
    fig.supxlabel(f"Trained at audio SNR {snr_label(a)}, visual SNR {snr_label(v)} (outlined); {seeds} seed(s) per "
                  f"fusion depth, {study.evaluation.examples} shared test pairs per grid point.\nStars: {test}, Holm "
                  f"over the {len(labels) ** 2} grid points, 5% level; the 95% intervals of every cell are in the CSV.",
                  fontsize=8)
    family = "" if study.family == "masked" else f" (late fusion: the {study.family} family)"
    fig.suptitle(f"Fig. {number}: initial vs second vs fc fusion{family}", fontsize=11)
    fig.savefig(out.with_suffix(".png"), dpi=140)
    plt.close(fig)
    rows = []
    for (i, j), _ in np.ndenumerate(result["accuracy"]["initial"]):
        row = {"test_audio_snr": labels[i], "test_visual_snr": labels[j]}
        row.update({f"accuracy_{f}": result["accuracy"][f][i, j] for f in ("initial", *LATE)})
        for late in LATE:
            row.update({f"{late}_minus_initial": result[late]["difference"][i, j],
                        f"{late}_low": result[late]["low"][i, j], f"{late}_high": result[late]["high"][i, j],
                        f"{late}_p_holm": result[late]["p_holm"][i, j],
                        f"{late}_significant": bool(result[late]["p_holm"][i, j] < ALPHA)})
        rows.append(row)
    write_csv(out.with_suffix(".csv"), rows)
    write_csv(out.with_name(out.name + "-seeds.csv"),
              [{"fusion": f, "seed": k, "training_point_accuracy": per_seed[k, 0], "grid_mean_accuracy": per_seed[k, 1]}
               for f, per_seed in result["seeds"].items() for k in range(len(per_seed))])
    return result


def seed_panel(ax, per_seed: dict[str, np.ndarray]) -> None:
    """Each fusion depth's accuracy at its training point and over the grid: the seeds as dots, their mean
    with a 95% interval (Student's t across seeds; none with one seed)."""
    for k, (fusion, values) in enumerate(per_seed.items()):
        for column, (offset, marker) in enumerate(((-0.15, "o"), (0.15, "s"))):
            x, y = k + offset, 100 * values[:, column]
            ax.scatter(np.full(len(y), x), y, s=8, color="0.6", zorder=1)
            summary = across_seeds(y, 0.0)  # the seeds' own spread; one seed: no interval
            ax.errorbar(x, summary["mean"], yerr=float(half_width(summary["se"], summary["df"])), fmt=marker, color=f"C{column}", capsize=3, zorder=2,
                        label=("at the training point" if column == 0 else "grid mean") if k == 0 else None)
    ax.set_xticks(range(len(per_seed)), list(per_seed), fontsize=7)
    ax.set_ylabel("test accuracy (%)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    ax.set_title("per seed (dots), seed mean and 95% interval", fontsize=9)


def draw_grid(study: Study, out: Path) -> None:
    """Fig. 4: the 16 initial-fusion models' heatmaps as a 4x4 mosaic, each one's training SNR outlined."""
    import matplotlib.pyplot as plt

    labels = study.labels
    fig, axes = plt.subplots(4, 4, figsize=(13, 12.5), layout="constrained")
    rows = []
    for r, a in enumerate(GRID_AUDIO):
        for c, v in enumerate(GRID_VISUAL):
            accuracy = study.accuracy("initial", "both", a, v)
            image = heatmap(axes[r, c], accuracy, labels, 0, 1, "viridis", study.grid_index(a, v), annotate=False,
                            ylabel=c == 0)
            axes[r, c].set_title(f"trained audio {snr_label(a)}, visual {snr_label(v)}", fontsize=8)
            rows += [{"train_audio_snr": snr_label(a), "train_visual_snr": snr_label(v), "test_audio_snr": labels[i],
                      "test_visual_snr": labels[j], "accuracy": accuracy[i, j]} for (i, j), _ in np.ndenumerate(accuracy)]
    percent_colorbar(fig, image, axes.ravel().tolist(), "test accuracy (%)", 0.6)
    fig.suptitle("Fig. 4: initial-fusion models trained at 16 SNR pairs (rows: training audio SNR, "
                 "columns: training visual SNR)", fontsize=11)
    fig.savefig(out.with_suffix(".png"), dpi=100)
    plt.close(fig)
    write_csv(out.with_suffix(".csv"), rows)


def draw_unimodal(study: Study, modalities: str, number: int, out: Path) -> None:
    """Figs. 5 and 6: unimodal accuracy against test SNR, one curve per training SNR."""
    import matplotlib.pyplot as plt

    labels = study.labels
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    rows = []
    for train_snr, correct in study.unimodal_curves(modalities).items():
        curve = correct.mean(axis=(0, 2))
        low, high = wilson_interval(correct.sum(axis=(0, 2)), correct.shape[0] * correct.shape[2])
        ax.errorbar(range(len(labels)), curve, yerr=[curve - low, high - curve], marker="o", capsize=2,
                    label=f"trained at {snr_label(train_snr)}")
        rows += [{"train_snr": snr_label(train_snr), "test_snr": labels[k], "accuracy": curve[k],
                  "ci_low": low[k], "ci_high": high[k]} for k in range(len(labels))]
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(f"test {modalities} SNR")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.axhline(0.1, color="grey", lw=0.8, ls=":")
    ax.legend(title=f"{modalities}-only model", fontsize=8)
    ax.set_title(f"Fig. {number}: {modalities}-only models (the other input zeroed); Wilson 95% intervals", fontsize=9)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
    write_csv(out.with_suffix(".csv"), rows)


def draw_modality_use(study: Study, out: Path) -> None:
    """Every model's accuracy with each input swapped for another digit's or zeroed, at its training point and
    at the clean corner: one row per model, one column per (point, condition)."""
    import matplotlib.pyplot as plt

    from clstm_jax.evaluation.modality_use import CONDITIONS, POINTS

    use = study.modality_use
    accuracy = use.accuracy.reshape(len(use.names), -1)  # (models, points x conditions)
    columns = [f"{point}: {condition}" for point in POINTS for condition in CONDITIONS]
    labels = [f"{s.fusion} {s.modalities} a={snr_label(s.audio_snr)} v={snr_label(s.visual_snr)} s={s.seed}"
              for s in study.specs]
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(labels) + 2.2), layout="constrained")
    image = ax.imshow(accuracy, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    for (i, j), value in np.ndenumerate(accuracy):
        ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=5,
                color="white" if value < 0.45 else "black")
    percent_colorbar(fig, image, ax, "test accuracy (%)", 0.5)
    ax.set_title(f"Modality use: accuracy with one input of another digit, or zeroed ({use.correct.shape[-1]} test "
                 "pairs; training point = the model's own training SNRs, clean = orig / orig)", fontsize=8)
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
    write_csv(out.with_suffix(".csv"), [{"model": n, **dict(zip(columns, row))} for n, row in zip(use.names, accuracy)])


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6f}" if isinstance(v, (float, np.floating)) else v for k, v in row.items()})


def figure_name(number: int, family: str = "masked") -> str:
    """fig3 for the masked family's fusion comparison, fig3-matched and fig3-a2 for the others'."""
    return f"fig{number}" if family == "masked" else f"fig{number}-{family}"


def draw_report(run: Run, study: Study, out: Path | None = None) -> list[str]:
    """Every figure the study's arrays allow, into `out` (default RUN/report); returns one line per figure
    (drawn or why not). Nothing here runs a model: what needs a forward pass is measured into the Study
    (clstm_jax/study/pipeline.py). The figures are drawn aside and moved in when all are drawn
    (output.staged): a failure keeps the previous report."""
    interrupts.doing("drawing the report")
    out = run.path / REPORT_DIR if out is None else Path(out)
    with staged(out, "the report") as aside:
        return draw_figures(run, study, aside, out)


def draw_figures(run: Run, study: Study, out: Path, final: Path) -> list[str]:
    """draw_report's figures, into `out`; `final` is where they will be (named in the lines)."""
    lines = []
    for number, (a, v) in {3: study.fusion_point, **APPENDIX}.items():
        drawn = [family for family in study.families
                 if all(study.has(f, "both", a, v, family) for f in ("initial", *LATE))]
        for family in drawn:
            name = figure_name(number, family)
            draw_fusion(study.of_family(family), a, v, number, out / name)
            lines.append(f"{name}: fusion comparison at audio {snr_label(a)}, visual {snr_label(v)} ({family} family)")
        if not drawn:
            lines.append(f"fig{number}: skipped (needs initial, second and fc models at audio {a:g}, visual {v:g})")
    if all(study.has("initial", "both", a, v) for a in GRID_AUDIO for v in GRID_VISUAL):
        draw_grid(study, out / "fig4")
        lines.append("fig4: 16-model SNR grid")
    else:
        lines.append("fig4: skipped (needs the 16 initial-fusion models of sweeps/snr_grid.toml)")
    for modalities, number in (("visual", 5), ("audio", 6)):
        if study.unimodal_curves(modalities):
            draw_unimodal(study, modalities, number, out / f"fig{number}")
            lines.append(f"fig{number}: {modalities}-only models")
        else:
            lines.append(f"fig{number}: skipped (no {modalities}-only models)")
    if study.modality_use is not None:
        draw_modality_use(study, out / "modality_use")
        lines.append("modality_use: every model with one input of another digit, or zeroed")
    else:
        lines.append("modality_use: skipped (not measured: `clstm-jax study` measures it)")
    if study.arrival is not None:
        arrival = study.arrival
        write_inspection(arrival.probabilities, arrival.label, arrival.model, 0, out / "fig7")
        lines.append(f"fig7: per-step probabilities of test example 0 under {len(SCENARIOS)} scenarios ({arrival.model})")
    else:
        lines.append("fig7: skipped (not measured: `clstm-jax report` and `study` measure it)")
    if run.config.runtime.tensorboard:
        pngs = sorted(out.glob("*.png"))
        board = Board(out / LOG_DIR)
        board.figures(pngs, run.step)
        board.close()
        lines.append(f"tensorboard: {len(pngs)} figures as images in {final / LOG_DIR}")
    return lines
