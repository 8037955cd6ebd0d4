"""Runs written by earlier versions still load and evaluate: the layout change of issue 32 kept the
run-directory files (config.json, models.json, data.json, metrics.jsonl, orbax checkpoints) as they were."""

import tarfile
from pathlib import Path

import jax
import numpy as np
import pytest

from clstm_jax import load_run
from clstm_jax.evaluation.evaluate import evaluate, evaluation_inputs
from clstm_jax.model.families import init

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)

# The MICRO fusion sweep (tests/conftest.py) trained for 4 steps by commit 875ed01, the last one before the
# package was cut into layers:
#   PYTHONPATH=<875ed01's tree> python -m clstm_jax sweep sweeps/fusion.toml --out run --set preset=tiny \
#     --set features.hop_length=6000 --set model.frames=3 --set model.channels=2 --set model.dense=8 \
#     --set train.batch_size=4 --set train.validation_examples=8 --set train.validate_every=2 \
#     --set train.length=4 --set train.length_unit=batches --set train.checkpoint_every=4
FIXTURE = Path(__file__).parent / "fixtures" / "run-875ed01.tar.xz"


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("old")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(out, filter="data")
    return load_run(out / "run")


def test_a_run_written_at_875ed01_loads_with_its_models_and_parameter_shapes(old_run):
    assert old_run.names == [f"fusion={f},modalities=both,a=0.5,v=0.25,seed=0" for f in ("initial", "second", "fc")]
    assert old_run.step == 4 and old_run.complete
    model = old_run.model(fusion="second")
    fresh = init(jax.random.key(0), old_run.config.model, "masked")
    shapes = lambda tree: jax.tree.map(lambda leaf: (leaf.shape, leaf.dtype), tree)
    assert shapes(model.params) == shapes(fresh)


def test_a_run_written_at_875ed01_evaluates_as_its_models_predict(old_run, data_dir):
    """Every grid point's outcomes equal each model's own predictions on the inputs evaluate uses."""
    evaluation = evaluate(old_run, examples=8, data_dir=str(data_dir), progress=False)
    snrs = old_run.config.evaluate.snrs
    models = [old_run.model(name) for name in old_run.names]
    expected = np.zeros((len(models), len(snrs), len(snrs), 8), bool)
    for i, a in enumerate(snrs):
        for j, v in enumerate(snrs):
            images, spectrograms, labels = evaluation_inputs(old_run, a, v, data_dir=str(data_dir), examples=8)
            for m, model in enumerate(models):
                expected[m, i, j] = np.asarray(model.logits(images, spectrograms))[:, -1].argmax(-1) == labels
    np.testing.assert_array_equal(evaluation.correct, expected)
