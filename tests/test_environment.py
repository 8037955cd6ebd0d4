"""TensorBoard beside metrics.jsonl, the environment record, the compilation cache, --version and python -m."""

import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, micro

from clstm_jax import __version__
from clstm_jax.core import environment
from clstm_jax.training.sweep import run_sweep

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)


def scalars(logdir):
    """{tag: {step: value}} of every event file under logdir, read record by record (TFRecord framing)."""
    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def test_a_sweep_writes_tensorboard_and_its_environment_and_resumes_with_other_runtime_settings(tmp_path, data_dir, capsys):
    from clstm_jax.evaluation.run import load_run

    settings = ["train.length=4", "train.length_unit=batches"]  # MICRO validates every 2 steps
    run_dir = tmp_path / "run"
    run_sweep(micro(*settings), run_dir, data_dir, progress=False)
    run = load_run(run_dir)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    board = scalars(run_dir / "tensorboard")
    tag = lambda name: re.sub(r"[^-/\w.]", "_", name)  # TensorBoard's tags: "=" and "," become "_"
    for name in run.names:
        loss = board[f"loss/{tag(name)}"]
        assert sorted(loss) == [1, 2, 3, 4]
        for record in metrics:  # the mean loss since the previous validation is the mean of the steps' losses
            steps = [record["step"] - 1, record["step"]]
            assert np.mean([loss[s] for s in steps]) == pytest.approx(record["loss"][name], rel=1e-4)
            assert board[f"validation_accuracy/{tag(name)}"][record["step"]] == pytest.approx(record["validation_accuracy"][name])
    assert board["train/learning_rate"] == {s: pytest.approx(run.config.train.learning_rate) for s in (1, 2, 3, 4)}
    assert sorted(board["train/step_seconds"]) == [2, 3, 4]  # the first step also compiles: not a step's time
    # Run.metrics: the same numbers as arrays in the run's model order.
    arrays = run.metrics()
    assert arrays["step"].tolist() == [2, 4]
    np.testing.assert_array_equal(arrays["loss"], [[r["loss"][n] for n in run.names] for r in metrics])
    np.testing.assert_array_equal(arrays["validation_accuracy"], [[r["validation_accuracy"][n] for n in run.names] for r in metrics])
    assert np.all(arrays["step_seconds"] > 0)

    # The environment: recorded at the start, again at a resume, which may change the runtime settings.
    (start,) = environment.read(run_dir / "environment.jsonl")
    import jax

    assert (start["event"], start["jax"], start["backend"], start["clstm_jax"]) == ("start", jax.__version__, "cpu", __version__)
    events = sorted(p.name for p in (run_dir / "tensorboard").iterdir())
    capsys.readouterr()
    run_sweep(micro(*settings, "runtime.tensorboard=false"), run_dir, data_dir, progress=False)  # complete: nothing to train
    assert [r["event"] for r in environment.read(run_dir / "environment.jsonl")] == ["start", "resume"]
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == events
    assert "another environment" not in capsys.readouterr().out
    # A resume on another environment says what changed, in one line.
    records = environment.read(run_dir / "environment.jsonl")
    records[-1]["jax"] = "0.0.1"
    (run_dir / "environment.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_sweep(micro(*settings), run_dir, data_dir, progress=False)
    out = capsys.readouterr().out
    assert f"resuming on another environment than the run's last (jax 0.0.1 -> {jax.__version__})" in out


def test_the_summary_names_the_versions_and_the_cpu():
    env = environment.describe()
    line = environment.summary(env)
    for part in (env["jax"], env["backend"], env["python"], env["cpu"]["model"], *env["cpu"]["flags"]):
        assert part in line
    assert environment.differences(env, env) == []
    assert environment.differences(env, {**env, "devices": "4 x cpu"}) == [f"devices {env['devices']} -> 4 x cpu"]


def run_python(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "CLSTM_JAX_COMPILATION_CACHE"}
    env.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **env_changes)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)


@pytest.mark.parametrize("setting, cached", [("{dir}", True), ("off", False), ("{dir}|config-off", False)])
def test_the_compilation_cache_is_on_by_default_and_turns_off(tmp_path, setting, cached):
    chosen, _, config_off = setting.format(dir=tmp_path / "xla").partition("|")
    code = ("from clstm_jax.training.compilation_cache import configure; import jax, jax.numpy as jnp; "
            f"print(configure({not config_off})); jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(5)).block_until_ready()")
    done = run_python(code, CLSTM_JAX_COMPILATION_CACHE=chosen)
    assert done.stdout.strip() == (str(tmp_path / "xla") if cached else "None")
    assert (any((tmp_path / "xla").iterdir()) if cached else not (tmp_path / "xla").exists())
    # Unset: the per-user cache directory.
    done = run_python("from clstm_jax.training.compilation_cache import configure; print(configure())", XDG_CACHE_HOME=str(tmp_path / "home"))
    assert done.stdout.strip() == str(tmp_path / "home" / "clstm_jax" / "xla")


def test_version_and_python_dash_m():
    version = subprocess.run([sys.executable, "-m", "clstm_jax", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"clstm-jax {__version__}"
    from importlib.metadata import version as installed

    assert installed("clstm_jax") == __version__  # pyproject reads it from clstm_jax/__init__.py
    helped = subprocess.run([sys.executable, "-m", "clstm_jax", "--help"], capture_output=True, text=True, check=True)
    assert "usage: clstm-jax" in helped.stdout and "study" in helped.stdout
