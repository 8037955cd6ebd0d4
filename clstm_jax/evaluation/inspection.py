"""Per-step class probabilities of one model under the paper's four SNR scenarios (Fig. 7)."""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np

from clstm_jax.evaluation.evaluate import evaluation_inputs
from clstm_jax.evaluation.run import Run, RunModel

# (title, audio SNR, visual SNR): the original input; audio above visual; visual above audio; equal (Fig. 7).
SCENARIOS = (("original", "orig", "orig"), ("audio above visual", 1.0, 0.25),
             ("visual above audio", 0.25, 1.0), ("equal", 0.5, 0.5))


def step_probabilities(run: Run, model: RunModel, example_ids=None, data_dir: str | None = None):
    """Softmax probabilities at every step, (scenarios, examples, frames, 10), and the labels (examples,).

    The inputs are exactly those `evaluate` uses for these examples and SNRs.
    """
    probs, labels = [], None
    for _, audio_snr, visual_snr in SCENARIOS:
        images, spectrograms, labels = evaluation_inputs(run, audio_snr, visual_snr, example_ids, data_dir)
        probs.append(np.asarray(jax.nn.softmax(model.logits(images, spectrograms), axis=-1)))
    return np.stack(probs), np.asarray(labels)


def write_inspection(probs: np.ndarray, label: int, model_name: str, example: int, out: Path) -> tuple[Path, Path]:
    """Fig. 7 for one example: probs (scenarios, frames, 10) -> out.png and out.csv (scenario, step, class, p)."""
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out.with_suffix(".csv"), out.with_suffix(".png")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scenario", "test_audio_snr", "test_visual_snr", "step", "class", "probability", "label"])
        for (title, a, v), scenario in zip(SCENARIOS, probs):
            for step, row in enumerate(scenario):
                for cls, p in enumerate(row):
                    writer.writerow([title, a, v, step, cls, f"{p:.6f}", label])
    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(4 * len(SCENARIOS), 3.4), sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, (title, a, v), scenario in zip(axes, SCENARIOS, probs):
        for cls in range(scenario.shape[1]):
            ax.plot(scenario[:, cls], color=colours(cls), lw=2.5 if cls == label else 1,
                    ls="-" if cls == label else "--", label=str(cls))
        ax.set_title(f"{title}\naudio SNR {a}, visual SNR {v}", fontsize=9)
        ax.set_xlabel("time step (spectrogram frame)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("class probability")
    axes[-1].legend(title="class", fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(f"Per-step class probabilities, test example {example} (true class {label}, thick line)\n{model_name}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path, csv_path


def inspect_model(run: Run, model_name: str | None, example: int, out_dir: Path, data_dir: str | None = None,
                  **fields) -> tuple[Path, Path]:
    """Draw Fig. 7 for one model (by name or fields) and one example of the fixed test subset."""
    model = run.model(model_name, **fields)
    probs, labels = step_probabilities(run, model, [example], data_dir)
    index = run.index(model.name)
    return write_inspection(probs[:, 0], int(labels[0]), model.name, example, out_dir / f"model{index}-example{example}")
