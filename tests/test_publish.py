"""A published run: one .tar.xz that load_run opens as it opens the run directory, with no checkpoint in it."""

import re
import tarfile

import jax
import numpy as np
import pytest
from conftest import micro

from clstm_jax.cli import main
from clstm_jax.core.errors import RunError
from clstm_jax.evaluation.run import load_run
from clstm_jax.training.sweep import run_sweep

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("publish") / "run"
    config = micro("train.length=2", "train.length_unit=batches", "features.normalization=standardize")
    run_sweep(config, run_dir, data_dir, progress=False)
    return run_dir


def test_a_published_run_loads_as_its_directory_does(trained, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "shared" / "run.tar.xz"
    (trained / "report" / "tensorboard").mkdir(parents=True, exist_ok=True)  # as `report` writes them
    (trained / "report" / "fig5.csv").write_text("a figure's numbers\n")
    (trained / "report" / "tensorboard" / "events.out.tfevents.1").write_bytes(b"the figures again")
    assert main(["publish", str(trained), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"{out}: ")

    with tarfile.open(out) as archive:
        members = sorted(m.name for m in archive.getmembers() if m.isfile())
    kept = sorted(str(p.relative_to(trained)) for p in trained.rglob("*") if p.is_file()
                  and p.relative_to(trained).parts[0] not in ("checkpoints", "environment.jsonl")
                  and "tensorboard" not in p.relative_to(trained).parts)
    assert members == sorted([*kept, "best_params.npz"])
    assert "lock" not in kept and "metrics.jsonl" in kept and "feature_stats.npz" in kept and "report/fig5.csv" in kept

    original, published = load_run(trained), load_run(out)
    assert published.path != trained and published.path.is_relative_to(tmp_path / "cache")
    assert (published.names, published.step, published.config) == (original.names, original.step, original.config)
    assert jax.tree.structure(published.params) == jax.tree.structure(original.params)
    for a, b in zip(jax.tree.leaves(published.params), jax.tree.leaves(original.params)):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(published.feature_stats.mean, original.feature_stats.mean)
    np.testing.assert_array_equal(published.metrics()["validation_accuracy"], original.metrics()["validation_accuracy"])

    from clstm_jax.evaluation.evaluate import evaluation_inputs

    images, spectrograms, _ = evaluation_inputs(published, 0.5, 0.25, [0, 1, 2], str(data_dir))
    name = original.names[1]
    np.testing.assert_array_equal(np.asarray(published.model(name).logits(images, spectrograms)),
                                  np.asarray(original.model(name).logits(images, spectrograms)))
    assert load_run(out).path == published.path  # unpacked once


def test_publishing_refuses_bad_input_in_one_line_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    taken = tmp_path / "taken.tar.xz"
    taken.write_bytes(b"someone's file")
    cases = [([str(trained), "--out", str(taken)], f"{taken}: already exists; nothing was written"),
             ([str(trained), "--out", str(tmp_path / "run.zip")], "a published run is a .tar.xz file"),
             ([str(tmp_path), "--out", str(tmp_path / "new.tar.xz")], "not a run directory (no config.json)")]
    for args, message in cases:
        assert main(["publish", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert taken.read_bytes() == b"someone's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.tar.xz"]

    with pytest.raises(RunError, match=r"taken.tar.xz: not a published run \(.*\); expected a run directory"):
        load_run(taken)


def test_parameters_that_do_not_fit_the_config_are_named(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "run.tar.xz"
    assert main(["publish", str(trained), "--out", str(out)]) == 0
    unpacked = load_run(out).path
    with np.load(unpacked / "best_params.npz") as stored:
        arrays = dict(stored)
    key = next(k for k in arrays if k != "step")
    arrays[key] = arrays[key][..., :1]
    np.savez(unpacked / "best_params.npz", **arrays)
    with pytest.raises(RunError, match=rf"parameter {re.escape(key)} holds float32\[.*\]; expected"):
        load_run(unpacked)
