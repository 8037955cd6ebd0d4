"""Several model families in one job: a paired sweep of one program per group, one checkpoint, exact
resume, and every analysis (load_run, evaluate, modality use, inspect) over every family."""

import csv

import chex
import jax
import numpy as np
import pytest
from conftest import micro

from clstm_jax.model.families import GROUPS, by_group, group_of
from clstm_jax.model.spec import ModelSpec
from clstm_jax.training.sweep import Interrupted, run_sweep

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)

SETTINGS = ["train.length=4", "train.length_unit=batches", "train.checkpoint_every=2"]
THREE = "sweep.family=masked,matched,a2"


def params_by_name(state, specs):
    """{model name: its parameters} of a sweep state, each model's slice of its group's stack."""
    out = {}
    for group, members in by_group(specs).items():
        for i, spec in enumerate(members):
            out[spec.name] = jax.tree.map(lambda x: np.asarray(x[i]), state[group]["params"])
    return out


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, data_dir):
    """The fusion comparison in three families, 4 steps: (run directory, final state, specs)."""
    from clstm_jax.config.experiments import sweep_models

    run_dir = tmp_path_factory.mktemp("families") / "run"
    config = micro(*SETTINGS, THREE)
    state = run_sweep(config, run_dir, data_dir, progress=False)
    return run_dir, state, sweep_models(config)


def test_a_three_family_sweep_has_one_initial_model_and_four_groups(mixed_run):
    _, state, specs = mixed_run
    assert [(s.family, s.fusion) for s in specs] == [
        ("masked", "initial"), ("masked", "second"), ("masked", "fc"),
        ("matched", "second"), ("matched", "fc"), ("a2", "second"), ("a2", "fc")]
    assert [group_of(s) for s in specs] == ["masked"] * 3 + ["matched"] * 2 + ["a2-second", "a2-fc"]
    assert set(state) == {"step", *GROUPS}
    assert specs[3].name == "family=matched,fusion=second,modalities=both,a=0.5,v=0.25,seed=0"
    assert specs[0].name == "fusion=initial,modalities=both,a=0.5,v=0.25,seed=0"  # masked names unchanged
    # initial fusion is one network in every family: asking for it in another family gives the masked model
    assert ModelSpec("initial", "both", 0.5, 0.25, 0, "a2") == specs[0]


def test_a_mixed_family_sweep_equals_each_family_trained_alone(mixed_run, tmp_path, data_dir):
    """The same pairs and each model's own noise whatever else trains beside it: every model of the
    three-family sweep equals the same model in a sweep of its family alone."""
    from clstm_jax.config.experiments import sweep_models

    _, state, specs = mixed_run
    together = params_by_name(state, specs)
    seen = set()
    for family in ("matched", "a2"):  # each alone with its (masked) initial model
        config = micro(*SETTINGS, f"sweep.family={family}")
        alone_specs = sweep_models(config)
        alone = params_by_name(run_sweep(config, tmp_path / family, data_dir, progress=False), alone_specs)
        for name, params in alone.items():
            seen.add(name)
            chex.assert_trees_all_close(together[name], params, rtol=1e-5, atol=1e-6, custom_message=name)
    assert seen == {s.name for s in specs if s.family != "masked" or s.fusion == "initial"}


def test_an_interrupted_mixed_sweep_resumes_bit_identically(mixed_run, tmp_path, data_dir, monkeypatch):
    """Stopped at the checkpoint of step 4 (after step 2's), resumed: the whole state (every group's
    parameters, Adam state and best parameters) equals the uninterrupted run's bit for bit."""
    import orbax.checkpoint as ocp

    _, straight, _ = mixed_run
    save = ocp.CheckpointManager.save

    def stop_at_step_4(self, step, *args, **kwargs):
        if step == 4:
            raise KeyboardInterrupt
        return save(self, step, *args, **kwargs)

    run_dir = tmp_path / "stopped"
    monkeypatch.setattr(ocp.CheckpointManager, "save", stop_at_step_4)
    with pytest.raises(Interrupted, match=r"interrupted after step 4 of 4; .* \(from the checkpoint of step 2\)"):
        run_sweep(micro(*SETTINGS, THREE), run_dir, data_dir, progress=False)
    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    resumed = run_sweep(micro(*SETTINGS, THREE), run_dir, data_dir, progress=False)
    chex.assert_trees_all_equal(straight, resumed)


def test_load_run_evaluate_modality_use_and_inspect_take_every_family(mixed_run, data_dir, tmp_path):
    """Evaluation rows follow the models' order across groups: each row equals that model's own
    predictions (RunModel.logits on the inputs evaluate uses), and modality use's clean, matched outcomes
    equal the evaluation's clean corner."""
    from clstm_jax.evaluation.evaluate import evaluate, evaluation_inputs
    from clstm_jax.evaluation.inspection import inspect_model
    from clstm_jax.evaluation.modality_use import measure
    from clstm_jax.evaluation.run import load_run
    from clstm_jax.study.report import draw_report, figure_name
    from clstm_jax.study.view import Study

    run_dir, state, specs = mixed_run
    run = load_run(run_dir)
    assert run.specs == tuple(specs) and run.step == 4
    best = {group: state[group]["best_params"] for group in GROUPS}
    chex.assert_trees_all_equal(run.params, best)
    evaluation = evaluate(run, data_dir=str(data_dir), progress=False)
    snrs = run.config.evaluate.snrs
    models = [run.model(spec.name) for spec in specs]
    for i, a in enumerate(snrs):
        for j, v in enumerate(snrs):
            images, spectrograms, labels = evaluation_inputs(run, a, v, data_dir=str(data_dir))
            own = np.stack([np.argmax(np.asarray(m.logits(images, spectrograms))[:, -1], -1) == labels for m in models])
            np.testing.assert_array_equal(evaluation.correct[:, i, j], own, err_msg=f"test SNRs ({a}, {v})")
    use = measure(run, str(data_dir), progress=False)
    assert list(use.names) == run.names
    orig = list(snrs).index("orig")
    n = run.config.evaluate.point_examples
    for m in range(len(specs)):
        np.testing.assert_array_equal(use.of(m, "clean", "matched"), evaluation.correct[m, orig, orig, :n])
    # the stored rows and the report name each model's family; each family's Fig. 3 reads its own late models
    evaluation.save(tmp_path / "eval", run.specs)
    use.save(tmp_path / "eval", run.specs)
    for name in ("accuracy.csv", "modality_use.csv"):
        with open(tmp_path / "eval" / name) as f:
            rows = list(csv.DictReader(f))
        assert {(row["model"], row["family"]) for row in rows} == {(s.name, s.family) for s in specs}, name
    study = Study(evaluation, run.specs, modality_use=use)
    assert study.families == ["masked", "matched", "a2"]
    lines = draw_report(run, study, tmp_path / "report")
    assert [line.split(":")[0] for line in lines if line.startswith("fig3")] == ["fig3", "fig3-matched", "fig3-a2"]
    for family in ("masked", "matched", "a2"):
        with open(tmp_path / "report" / f"{figure_name(3, family)}.csv") as f:
            rows = list(csv.DictReader(f))
        second = evaluation.accuracy[run.index(family=family, fusion="second")]
        initial = evaluation.accuracy[run.index(fusion="initial")]
        np.testing.assert_allclose([float(row["accuracy_second"]) for row in rows], second.ravel(), atol=1e-6)
        np.testing.assert_allclose([float(row["accuracy_initial"]) for row in rows], initial.ravel(), atol=1e-6)
    a2_fc = run.index(family="a2", fusion="fc")
    png, csv_path = inspect_model(run, None, 0, tmp_path, str(data_dir), family="a2", fusion="fc")
    assert png.exists() and csv_path.name == f"model{a2_fc}-example0.csv"


def test_a_checkpoint_from_before_the_groups_restores_as_the_masked_group(mixed_run, tmp_path):
    """A one-family run's checkpoint written before the family groups (its stack not keyed by group)."""
    from clstm_jax.training import checkpoint

    _, state, _ = mixed_run
    grouped = {"step": state["step"], "masked": state["masked"]}
    mngr = checkpoint.manager(tmp_path)
    checkpoint.save(mngr, 4, {**state["masked"], "step": state["step"]})  # the old layout
    restored = checkpoint.restore_latest(mngr, grouped)
    checkpoint.close(mngr)
    chex.assert_trees_all_equal(restored, grouped)
