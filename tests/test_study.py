"""The tiny study end to end: every artefact exists and agrees; load_run, inspect, resume, claim logic."""

import csv
import dataclasses
import json
import re
import shutil
import types

import jax
import numpy as np
import pytest
from conftest import ROOT

from clstm_jax.cli import main
from clstm_jax.config import load_config
from clstm_jax.config.experiments import study_models
from clstm_jax.core.snr import ORIG, snr_label
from clstm_jax.evaluation.evaluate import evaluate, evaluation_inputs, load_evaluation, other_digit
from clstm_jax.evaluation.run import load_run, read_specs
from clstm_jax.study.claims import CLAIMS, VERDICTS
from clstm_jax.study.pipeline import run_study

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)

# The tiny preset, cut to 10 steps, 4 test pairs (6 at single points) and 2 channels: the pipeline, not a result.
# Training sizes its model chunk by itself ("auto", clstm_jax/training/memory.py).
TINY = ["preset=tiny", "train.length=10", "train.validate_every=5", "train.checkpoint_every=5", "evaluate.examples=4",
        "evaluate.point_examples=6", "train.model_chunk=auto", "model.channels=2", "model.dense=8",
        "train.batch_size=4", "train.validation_examples=16"]
FIGURES = (3, 4, 5, 6, 7, 9, 10, 11, 12)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("study") / "tiny"
    config = load_config(ROOT / "sweeps" / "study.toml", TINY)
    run_study(config, run_dir, str(data_dir), progress=False, log=lambda line: None)
    return run_dir, config


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_artefact_exists_and_results_judge_every_claim(study_run):
    run_dir, config = study_run
    for name in ("config.json", "models.json", "metrics.jsonl", "eval/accuracy.npz", "eval/accuracy.csv", "results.md"):
        assert (run_dir / name).is_file(), name
    for number in FIGURES:
        for suffix in ("png", "csv"):
            assert (run_dir / "report" / f"fig{number}.{suffix}").stat().st_size > 0, (number, suffix)
    rows = [line.split(" | ") for line in (run_dir / "results.md").read_text().splitlines() if line.startswith("| `")]
    assert [row[0].strip("| `") for row in rows] == list(CLAIMS)
    verdicts = "|".join(re.escape(v) for v in VERDICTS)
    assert all(re.fullmatch(rf"\*\*({verdicts})(: (audio|image|audio and image) unused| for these networks, 1 seed)?\*\*"
                            r"( \(.*\))? \|", row[-1])
               for row in rows), rows
    assert len(load_run(run_dir).names) == len(study_models(config)) == 42  # 3 x 3 seeds + 12 + 11 + 10
    records = json.loads((run_dir / "claims.json").read_text())  # the same verdicts, machine-readable
    assert [r["id"] for r in records] == list(CLAIMS)
    assert [f"**{r['verdict']}**" for r in records] == [row[-1].split(" (")[0].rstrip(" |") for row in rows]
    assert {r["about"] for r in records} <= {"networks", "architecture"}


def test_power_plans_seeds_and_pairs_from_the_tiny_study(study_run, capsys):
    run_dir, _ = study_run
    assert main(["power", str(run_dir), "--mde", "2", "5", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["seconds_per_step"] > 0  # metrics.jsonl records the step time
    # the tiny evaluation is one chunk, which also compiles: no rate measured, so a forward pass is priced as a
    # third of a training example
    assert planned["evaluation_seconds_per_item"] is None
    rows = {row["id"]: row for row in planned["claims"]}
    row = rows["4.3-majority"]
    assert row["seeds"] == 3 and row["between_assumed"] is False and [t["mde"] for t in row["targets"]] == [2, 5]
    reached = [t for r in rows.values() for t in r["targets"] if t["seeds"]]
    assert reached and all(t["seeds"] >= 2 and t["pairs"] > 0 and t["train_seconds"] > 0 and t["eval_seconds"] > 0
                           for t in reached)
    assert main(["power", str(run_dir), "--mde", "0"]) == 2  # a target of no size: one clear line
    assert "--mde 0: each target must be a positive number" in capsys.readouterr().err


def test_results_print_no_p_value_below_what_their_units_allow(study_run):
    """A paired test on N examples x S seeds cannot give p < 2 x 0.5^(N S); every claim states its units
    and a minimum detectable effect."""
    run_dir, _ = study_run
    rows = [line.split(" | ") for line in (run_dir / "results.md").read_text().splitlines() if line.startswith("| `")]
    for row in rows:
        units, detectable, p, p_family = row[6], row[7], row[8], row[9]
        n, s = map(int, re.fullmatch(r"(\d+) test examples x (\d+) seed\(s\)", units).groups())
        if p_family == "-":  # a fusion claim whose precondition failed: reported, not judged
            assert "not testable at this size" in row[-1], row[0]
            p_family = p
        uses = ("4.6-audio-arrives", "4.3-both-modalities", "4.4-audio-dependence-increases", "4.5-comparable",
                "4.3-training-point")
        assert n == (6 if row[0].strip("| `") in uses else 4), row[0]  # evaluate.point_examples: single points
        assert float(p) >= 2 * 0.5 ** (n * s) and float(p_family) >= float(p), row[0]
        assert re.fullmatch(rf"\d+\.\d points \({s} seeds?\)", detectable), row[0]


def test_csv_equals_npz(study_run):
    run_dir, _ = study_run
    stored = load_evaluation(run_dir)
    low, high = stored.interval()
    rows = read_csv(run_dir / "eval" / "accuracy.csv")
    assert len(rows) == stored.accuracy.size
    labels = ["orig" if np.isinf(x) else f"{x:g}" for x in stored.audio_snrs]
    for row in rows:
        m, i, j = stored.names.index(row["model"]), labels.index(row["test_audio_snr"]), labels.index(row["test_visual_snr"])
        assert int(row["correct"]) == stored.counts[m, i, j]
        assert float(row["accuracy"]) == pytest.approx(stored.accuracy[m, i, j], abs=1e-6)
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((low[m, i, j], high[m, i, j]), abs=1e-6)
    with np.load(run_dir / "eval" / "accuracy.npz") as z:
        np.testing.assert_array_equal(z["correct"], stored.counts)
        assert z["accuracy"].shape == (42, 10, 10)


def test_report_numbers_equal_the_evaluation(study_run):
    run_dir, _ = study_run
    stored, specs = load_evaluation(run_dir), load_run(run_dir).specs
    index = {(s.fusion, s.modalities, s.audio_snr, s.visual_snr, s.seed): m for m, s in enumerate(specs)}
    labels = ["orig" if np.isinf(x) else f"{x:g}" for x in stored.audio_snrs]
    for row in read_csv(run_dir / "report" / "fig4.csv"):
        m = index[("initial", "both", float(row["train_audio_snr"]), float(row["train_visual_snr"]), 0)]
        if (float(row["train_audio_snr"]), float(row["train_visual_snr"])) == (0.5, 0.25):  # three seeds: the mean
            m = [index[("initial", "both", 0.5, 0.25, seed)] for seed in (0, 1, 2)]
        expected = np.mean(stored.accuracy[m, labels.index(row["test_audio_snr"]), labels.index(row["test_visual_snr"])])
        assert float(row["accuracy"]) == pytest.approx(expected, abs=1e-6)
    fc = [index[("fc", "both", 0.5, 0.25, seed)] for seed in (0, 1, 2)]
    initial = [index[("initial", "both", 0.5, 0.25, seed)] for seed in (0, 1, 2)]
    for row in read_csv(run_dir / "report" / "fig3.csv"):
        i, j = labels.index(row["test_audio_snr"]), labels.index(row["test_visual_snr"])
        difference = stored.accuracy[fc, i, j].mean() - stored.accuracy[initial, i, j].mean()
        assert float(row["fc_minus_initial"]) == pytest.approx(difference, abs=1e-6)
    probabilities = read_csv(run_dir / "report" / "fig7.csv")
    sums = {}
    for row in probabilities:
        key = (row["scenario"], row["step"])
        sums[key] = sums.get(key, 0.0) + float(row["probability"])
    assert len(sums) == 4 * 3 and all(s == pytest.approx(1.0, abs=1e-4) for s in sums.values())


def test_api_example_in_docs_runs_and_reproduces_the_stored_accuracy(study_run, data_dir, monkeypatch):
    run_dir, _ = study_run
    monkeypatch.delenv("CLSTM_JAX_DATA", raising=False)  # the example names its data directory itself
    text = (ROOT / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "docs/api.md", "exec"), {"RUN": run_dir, "DATA": str(data_dir)})  # it asserts equality itself
    table = text[text.index("| function |"):text.index("\n\n", text.index("| function |"))]
    assert "clstm_jax.study.view.Study" in table  # one table, not split by a blank line


def test_evaluation_does_not_depend_on_chunking(study_run, data_dir):
    run_dir, _ = study_run
    run = load_run(run_dir)
    stored = load_evaluation(run_dir)
    # The study evaluated all 42 models side by side in one call of 512 items (the 400 wrapped round). Here
    # 5 models at a time (the last chunk 2) and an "auto" batch: the 400 items exactly.
    config = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, model_chunk=5),
                                 evaluate=dataclasses.replace(run.config.evaluate, batch="auto"))
    again = evaluate(dataclasses.replace(run, config=config), data_dir=str(data_dir), progress=False)
    np.testing.assert_array_equal(again.correct, stored.correct)


def test_inspect_writes_probabilities_equal_to_the_model_softmax(study_run, data_dir, tmp_path):
    run_dir, _ = study_run
    code = main(["inspect", str(run_dir), "--model", "fusion=fc,a=0.5,v=0.25,seed=1", "--example", "3",
                 "--out", str(tmp_path), "--data-dir", str(data_dir)])
    assert code == 0
    run = load_run(run_dir)
    model = run.model(fusion="fc", audio_snr=0.5, visual_snr=0.25, seed=1)
    [table] = tmp_path.glob("*.csv")
    assert (tmp_path / table.with_suffix(".png").name).exists()
    rows = [r for r in read_csv(table) if r["scenario"] == "audio above visual"]
    images, spectrograms, labels = evaluation_inputs(run, 1, 0.25, [3], str(data_dir))
    expected = np.asarray(jax.nn.softmax(model.logits(images, spectrograms), axis=-1))[0]  # (frames, 10)
    got = np.zeros_like(expected)
    for r in rows:
        got[int(r["step"]), int(r["class"])] = float(r["probability"])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert {int(r["label"]) for r in rows} == {int(labels[0])}


def test_bad_requests_name_the_problem(study_run, data_dir, capsys):
    run_dir, _ = study_run
    assert main(["inspect", str(run_dir), "--example", "99", "--data-dir", str(data_dir)]) == 2
    assert "expected 0 <= example < 4" in capsys.readouterr().err
    assert main(["inspect", str(run_dir), "--model", "fusion=late", "--data-dir", str(data_dir)]) == 2
    assert "no model" in capsys.readouterr().err
    assert main(["inspect", str(run_dir), "--model", "fusion=fc,a=0.5,v=0.25", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err  # three seeds match: the line names them and the field that tells them apart
    assert "3 models match" in err and "they differ in seed (0, 1, 2): add one to choose, e.g. seed=0" in err


def test_report_out_writes_elsewhere_the_same_figures(study_run, data_dir, tmp_path):
    run_dir, _ = study_run
    assert main(["report", str(run_dir), "--out", str(tmp_path / "figures"), "--data-dir", str(data_dir)]) == 0
    csvs = sorted(p.name for p in (run_dir / "report").glob("*.csv"))
    assert csvs and sorted(p.name for p in (tmp_path / "figures").glob("*.csv")) == csvs
    for name in csvs:
        assert (tmp_path / "figures" / name).read_text() == (run_dir / "report" / name).read_text(), name


def test_ctrl_c_while_drawing_the_report_is_one_line_and_keeps_the_previous_report(study_run, data_dir, tmp_path,
                                                                                   monkeypatch, capsys):
    """Interrupted at its first figure: one line naming the phase, exit 130, and the report folder as it was
    (the figures are drawn aside, clstm_jax/core/output.py)."""
    run_dir, _ = study_run
    out = tmp_path / "figures"
    out.mkdir()
    (out / "fig3.png").write_bytes(b"the previous figure")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("clstm_jax.study.report.draw_fusion", interrupted)
    assert main(["report", str(run_dir), "--out", str(out), "--data-dir", str(data_dir)]) == 130
    assert capsys.readouterr().err == ("clstm-jax: interrupted while drawing the report; what was written before is "
                                       "kept: re-run the same command to go on\n")
    assert [(p.name, p.read_bytes()) for p in out.iterdir()] == [("fig3.png", b"the previous figure")]


def test_rerun_resumes_without_redoing_the_evaluation(study_run, data_dir, monkeypatch):
    run_dir, config = study_run
    npz = run_dir / "eval" / "accuracy.npz"
    before = npz.stat().st_mtime_ns
    lines = []
    # The figures are the fixture's and `report --out`'s to test; redrawing them here would cost 20 s.
    monkeypatch.setattr("clstm_jax.study.pipeline.draw_report", lambda *args, **kwargs: [])
    run_study(config, run_dir, str(data_dir), progress=False, log=lines.append)
    assert npz.stat().st_mtime_ns == before
    assert any("not redone" in line for line in lines)


def test_a_stored_evaluation_made_with_other_settings_is_redone_and_the_difference_named(study_run, data_dir, tmp_path,
                                                                                      monkeypatch):
    """`evaluate --examples 2` before a study that asks for 4: the study evaluates again, and says why."""
    run_dir, config = study_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    original = load_evaluation(run_dir)
    fewer = dataclasses.replace(original, correct=original.correct[..., :2], labels=original.labels[:2])
    fewer.save(copy / "eval", read_specs(run_dir))
    calls, lines = [], []
    monkeypatch.setattr("clstm_jax.study.pipeline.evaluate", lambda run, **kwargs: calls.append(run.path) or original)
    monkeypatch.setattr("clstm_jax.study.pipeline.draw_report", lambda *args, **kwargs: [])
    run_study(config, copy, str(data_dir), progress=False, log=lines.append)
    assert calls == [copy]
    assert (f"study: evaluating every model on the test-SNR grid (the one in {copy / 'eval' / 'accuracy.npz'} was made "
            "with other settings: test pairs 2 (the study's: 4))") in lines
    assert load_evaluation(copy).examples == 4


def test_every_setting_an_evaluation_depends_on_is_compared(study_run):
    from clstm_jax.evaluation.modality_use import load_modality_use
    from clstm_jax.study.pipeline import evaluation_differences, modality_use_differences

    run_dir, config = study_run
    evaluation, use = load_evaluation(run_dir), load_modality_use(run_dir)
    run = types.SimpleNamespace(config=config, names=list(evaluation.names))
    assert evaluation_differences(evaluation, run) == [] and modality_use_differences(use, run) == []
    n, first = len(evaluation.names), evaluation.names[0]
    other = dataclasses.replace(evaluation, mode="full", step=5, names=evaluation.names[::-1],
                                audio_snrs=evaluation.audio_snrs[::-1])
    assert evaluation_differences(other, run) == [
        "mode full (the study's: subset)", "training step 5 (the study's: 10)",
        f"models [{n}: {evaluation.names[-1]}, ...] (the study's: [{n}: {first}, ...])",
        f"test SNRs {[float(x) for x in evaluation.audio_snrs[::-1]]} (the study's: "
        f"{[float(x) for x in evaluation.audio_snrs]})"]
    other_use = dataclasses.replace(use, correct=use.correct[..., :3], step=5, names=use.names[:1])
    assert modality_use_differences(other_use, run) == [
        "test pairs 3 (the study's: 6)", "training step 5 (the study's: 10)",
        f"models [1: {first}, ...] (the study's: [{n}: {first}, ...])"]


def test_modality_use_swaps_or_zeroes_one_input_and_matches_the_evaluation(study_run, data_dir):
    from clstm_jax.evaluation.modality_use import CONDITIONS, condition_inputs, load_modality_use

    run_dir, _ = study_run
    run, stored = load_run(run_dir), load_evaluation(run_dir)
    images, spectrograms, labels = evaluation_inputs(run, 0.5, 0.25, None, str(data_dir), examples=6)
    grid_images, grid_spectrograms, grid_labels = evaluation_inputs(run, 0.5, 0.25, None, str(data_dir))
    # The larger subset begins with the grid's, noise included, up to float32 rounding: XLA vectorises a
    # batch of 6 otherwise than one of 4 (4.8e-7 measured in the images; 8 and 12 agreed bit for bit).
    np.testing.assert_allclose(images[:4], grid_images, rtol=0, atol=1e-6)
    np.testing.assert_allclose(spectrograms[:4], grid_spectrograms, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels[:4], grid_labels)
    inputs = condition_inputs(images, spectrograms, labels)
    other = other_digit(labels)
    assert np.all(np.asarray(inputs["audio zeroed"][1]) == 0) and np.all(np.asarray(inputs["image zeroed"][0]) == 0)
    np.testing.assert_array_equal(inputs["audio mismatched"][1], np.asarray(spectrograms)[other])
    np.testing.assert_array_equal(inputs["image mismatched"][0], np.asarray(images)[other])
    np.testing.assert_array_equal(inputs["audio mismatched"][0], images)
    use = load_modality_use(run_dir)
    assert use.correct.shape == (42, 2, len(CONDITIONS), 6) and use.names == stored.names
    inputs_at = {}  # (audio, visual) -> the 6 pairs evaluate draws there
    for m, spec in enumerate(run.specs):  # matched: each model's own predictions on those pairs, all 6 of them
        model = run.model(spec.name)
        for point, snrs in (("training", (spec.audio_snr, spec.visual_snr)), ("clean", (ORIG, ORIG))):
            snrs = tuple(snr_label(x) for x in snrs)
            if snrs not in inputs_at:
                inputs_at[snrs] = evaluation_inputs(run, *snrs, None, str(data_dir), examples=6)
            x, s, y = inputs_at[snrs]
            own = np.asarray(model.logits(x, s))[:, -1].argmax(-1) == y
            np.testing.assert_array_equal(use.of(m, point, "matched"), own, err_msg=f"{spec.name} {point}")
    assert (run_dir / "report" / "modality_use.png").exists()
    assert "## Modality use" in (run_dir / "results.md").read_text()


def test_modality_use_in_chunks_equals_the_stored_and_shows_progress(study_run, data_dir, capsys):
    from clstm_jax.evaluation.modality_use import load_modality_use, measure

    run_dir, _ = study_run
    run = load_run(run_dir)
    config = dataclasses.replace(run.config, evaluate=dataclasses.replace(run.config.evaluate, batch=5))  # 5, then 1 (wrapped round to 5)
    again = measure(dataclasses.replace(run, config=config), str(data_dir), progress=True)
    np.testing.assert_array_equal(again.correct, load_modality_use(run_dir).correct)
    bar = capsys.readouterr().err
    assert "modality use (42 models x 2 points x 5 conditions x 6 examples)" in bar
    assert "compiling" in bar.split("5/60")[0] and "60/60" in bar


def test_mismatched_recordings_carry_another_label(study_run, data_dir):
    run_dir, _ = study_run
    _, _, labels = evaluation_inputs(load_run(run_dir), 1.0, 0.25, None, str(data_dir))
    other = other_digit(labels)
    assert np.all(labels[other] != labels) and other.shape == labels.shape
    assert list(other_digit(np.array([3, 3, 5, 3]))) == [2, 2, 3, 2]
    with pytest.raises(ValueError, match="no other digit"):
        other_digit(np.array([4, 4]))


def test_tiny_results_open_with_the_smoke_run_line_and_its_accuracy(study_run):
    """The tiny study says first that it is a smoke run, with its models' accuracy at their training point
    (recomputed here from eval/accuracy.csv)."""
    run_dir, _ = study_run
    lines = (run_dir / "results.md").read_text().splitlines()
    assert lines[0] == "# Study results (tiny preset)" and lines[2].startswith("**A smoke run.**")
    own = [int(r["correct"]) / int(r["examples"]) for r in read_csv(run_dir / "eval" / "accuracy.csv")
           if (r["test_audio_snr"], r["test_visual_snr"]) == (r["train_audio_snr"], r["train_visual_snr"])]
    assert len(own) == 42
    own = 100 * np.array(own)
    assert (f"{own.mean():.1f}% on average, {own.min():.1f}-{own.max():.1f}% over the 42 models; chance is 10%"
            in lines[2])
    assert "`--set preset=cpu`" in lines[2] and "docs/results-cpu.md" in lines[2]  # where to go next


def test_balance_table_gives_each_grid_models_mismatch_costs_from_the_csv(study_run):
    """Every initial-fusion grid model appears once, with the costs recomputed from modality_use.csv,
    sorted by the smaller of its two costs."""
    run_dir, _ = study_run
    text = (run_dir / "results.md").read_text().split("## Where both modalities contribute")[1].split("## Figures")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if re.match(r"\| [\d.]+ \| ", line)]
    counts = {}
    for r in read_csv(run_dir / "eval" / "modality_use.csv"):
        if r["fusion"] == "initial" and r["modalities"] == "both" and r["seed"] == "0" and r["point"] == "training":
            counts[(r["train_audio_snr"], r["train_visual_snr"], r["condition"])] = int(r["correct"]) / int(r["examples"])
    assert len(rows) == 16 and len({(a, v) for a, v, *_ in rows}) == 16
    smaller = []
    for a, v, matched, audio, image in (r[:5] for r in rows):
        m = counts[(a, v, "matched")]
        assert float(matched) == pytest.approx(100 * m, abs=0.051)
        assert float(audio) == pytest.approx(100 * (m - counts[(a, v, "audio mismatched")]), abs=0.051)
        assert float(image) == pytest.approx(100 * (m - counts[(a, v, "image mismatched")]), abs=0.051)
        smaller.append(min(float(audio), float(image)))
    assert smaller == sorted(smaller, reverse=True)


@pytest.mark.parametrize("points,vmax,expected", [(False, 1.0, ["0", "20", "40", "60", "80", "100"]),
                                                  (True, 0.1, ["-10", "-5", "0", "+5", "+10"])])
def test_colour_bars_read_in_the_cells_unit(points, vmax, expected):
    """The cells print percentages (or signed percentage points), so the colour bar's ticks do too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clstm_jax.study.report import percent_colorbar

    fig, ax = plt.subplots()
    image = ax.imshow(np.zeros((2, 2)), vmin=-vmax if points else 0, vmax=vmax)
    percent_colorbar(fig, image, ax, "unit", 0.5, points=points)
    fig.canvas.draw()
    bar = fig.axes[-1]
    ticks = [t for t in bar.get_yticks() if bar.get_ylim()[0] - 1e-9 <= t <= bar.get_ylim()[1] + 1e-9]
    assert [bar.yaxis.get_major_formatter()(t, k) for k, t in enumerate(ticks)] == expected
    plt.close(fig)
