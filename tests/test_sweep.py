"""The vmapped sweep: equivalence with one-at-a-time training, exact resume, sharding, learning."""

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import MICRO, ROOT, micro

from clstm_jax.config import load_config
from clstm_jax.core.errors import ConfigError, RunError
from clstm_jax.training.sweep import run_sweep

SWEEPS = ROOT / "sweeps"
pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)


def final_params(run_dir):
    """The parameters of the newest checkpoint, as numpy arrays."""
    from clstm_jax.evaluation.run import read_config, read_specs, restore_state

    run_dir = Path(run_dir)
    state = restore_state(run_dir, read_config(run_dir), read_specs(run_dir))
    return jax.tree.map(np.asarray, state["masked"]["params"])


def test_models_trained_together_equal_models_trained_alone(tmp_path, data_dir):
    # The fusion comparison's three models (three masks, one program that other tests here compile too)
    together = run_sweep(micro("train.length=3", "train.length_unit=batches"), tmp_path / "all", data_dir, progress=False)
    for i, fusion in enumerate(("initial", "second", "fc")):
        alone = run_sweep(micro("train.length=3", "train.length_unit=batches", "sweep.experiment=", f"sweep.fusion={fusion}"),
                          tmp_path / fusion, data_dir, progress=False)
        model = lambda state, index: jax.tree.map(lambda x: x[index], state["masked"]["params"])
        chex.assert_trees_all_close(model(together, i), model(alone, 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk, groups", [(0, 1), (1, 1), (2, 1), (4, 1), (1, 2), (2, 2)])
def test_over_models_equals_a_loop_over_models(chunk, groups):
    """Every chunking of the model axis gives each model fn of its own slices (6 models; 2 + 1 leaves a remainder)."""
    from clstm_jax.model.multi_model import over_models

    rng = np.random.default_rng(0)
    weights, biases, x = rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 3)), rng.normal(size=(4, 5))
    fn = lambda w, b: ({"y": w @ x + b[:, None]}, w.sum())
    out, total = over_models(fn, (weights, biases), chunk, groups)
    for m in range(6):
        np.testing.assert_allclose(out["y"][m], weights[m] @ x + biases[m][:, None], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(total[m], weights[m].sum(), rtol=1e-5, atol=1e-5)


def test_a_different_config_or_dataset_is_refused_and_nothing_is_touched(tmp_path, data_dir):
    from clstm_jax.data.splits import load_dataset
    from clstm_jax.evaluation.evaluate import evaluation_inputs
    from clstm_jax.evaluation.run import load_run

    copy = tmp_path / "data"  # the data as a user's own: not checked against the published checksums
    (copy / "mnist").mkdir(parents=True)
    for path in (data_dir / "mnist").iterdir():
        (copy / "mnist" / path.name).symlink_to(path)
    shutil.copytree(data_dir / "fsdd" / "recordings", copy / "fsdd" / "recordings")
    settings = ["train.length=2", "train.length_unit=batches", "data.verify=false"]
    run_dir = tmp_path / "run"
    run_sweep(micro(*settings), run_dir, copy, progress=False)
    record = json.loads((run_dir / "data.json").read_text())
    assert record["verified"] is False and record["files"] == 4 + 3000
    assert record["counts"]["train"] == {"images": 56000, "recordings": 2400}
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    with pytest.raises(ConfigError, match=r"holds a run with a different config \(differs in train.learning_rate\)"):
        run_sweep(micro(*settings, "train.learning_rate=0.01"), run_dir, copy)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before

    # A run written before some keys existed resumes with them at their defaults, and only then.
    stored = json.loads((run_dir / "config.json").read_text())
    for key in ("compute_dtype", "matmul_precision", "unroll"):
        del stored["model"][key]
    (run_dir / "config.json").write_text(json.dumps(stored))
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    run_sweep(micro(*settings), run_dir, copy, progress=False)  # resumes: the run is complete, nothing to train
    assert json.loads((run_dir / "config.json").read_text()) == stored
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == checkpoints
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    with pytest.raises(ConfigError, match=r"different config \(differs in model.compute_dtype\)"):
        run_sweep(micro(*settings, "model.compute_dtype=bfloat16"), run_dir, copy)

    # One recording's samples change: a resume and an evaluation on that data are refused.
    wave = copy / "fsdd" / "recordings" / "7_george_7.wav"
    raw = bytearray(wave.read_bytes())
    raw[-10:] = bytes(10)
    wave.write_bytes(bytes(raw))
    load_dataset.cache_clear()  # this process read the files before
    with pytest.raises(ConfigError, match=r"trained on other data than resume would use \(differs in sha256;"):
        run_sweep(micro(*settings), run_dir, copy)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before
    with pytest.raises(ConfigError, match=r"trained on other data than evaluation would use \(differs in sha256;"):
        evaluation_inputs(load_run(run_dir), "orig", "orig", [0], data_dir=str(copy))


def sweep_command(run_dir, data_dir, *overrides, experiment="fusion.toml"):
    args = [str(SWEEPS / experiment), "--out", str(run_dir), "--data-dir", str(data_dir), "--quiet"]
    for item in (*MICRO, *overrides):
        args += ["--set", item]
    return [sys.executable, "-m", "clstm_jax", "sweep", *args]


def test_resume_after_sigkill_is_bit_identical(tmp_path, data_dir):
    settings = ["train.length=12", "train.length_unit=batches", "train.checkpoint_every=4"]
    straight = tmp_path / "straight"  # in this process: the same flags, so the same compiled program
    run_sweep(micro(*settings), straight, data_dir, progress=False)

    killed = tmp_path / "killed"
    process = subprocess.Popen(sweep_command(killed, data_dir, *settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "4").exists():
        assert process.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps_at_kill = sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    assert steps_at_kill and steps_at_kill[-1] < 12  # killed before the end
    resumed = subprocess.run(sweep_command(killed, data_dir, *settings), check=True, capture_output=True, text=True)
    assert f"resuming {killed} from step {steps_at_kill[-1]} of 12" in resumed.stdout  # said, even with --quiet

    chex.assert_trees_all_equal(final_params(straight), final_params(killed))
    lines = [json.loads(l) for l in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(2, 13, 2))  # no step logged twice


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path, data_dir):
    run_dir = tmp_path / "interrupted"
    settings = ["train.length=12", "train.length_unit=batches", "train.checkpoint_every=4"]  # as the resume test
    process = subprocess.Popen(sweep_command(run_dir, data_dir, *settings), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "4").exists():
        assert process.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert re.search(r"interrupted after step \d+ of 12; re-run the same command to resume "
                     r"\(from the checkpoint of step (4|8)\)", err), err


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     ValueError('RESOURCE_EXHAUSTED: Error writing "x" in OCDBT database')])
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_keeps_the_earlier_ones(tmp_path, data_dir, capsys,
                                                                                  monkeypatch, failure):
    """A full disk at the second checkpoint: one line naming the directory and the cause, exit 2, and the
    first checkpoint and the records stay as they were. Any other ValueError keeps its traceback."""
    import orbax.checkpoint as ocp

    from clstm_jax.cli import main

    save = ocp.CheckpointManager.save

    def fail_at_step_4(self, step, *args, **kwargs):
        if step == 4:
            raise failure
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", fail_at_step_4)
    run_dir = tmp_path / "full"
    args = sweep_command(run_dir, data_dir, "train.length=6", "train.length_unit=batches", "train.checkpoint_every=2")
    assert main(args[3:]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"clstm-jax: error: {(run_dir / 'checkpoints').resolve()}: "
                                                  "cannot write the checkpoint of step 4 (") and "resume" in err, err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [2, 4]

    def bug(self, step, *args, **kwargs):
        raise ValueError("a shape mismatch")

    monkeypatch.setattr(ocp.CheckpointManager, "save", bug)
    with pytest.raises(ValueError, match="a shape mismatch"):  # not an output problem: the traceback stays
        run_sweep(micro("train.length=2", "train.length_unit=batches"), tmp_path / "bug", data_dir, progress=False)


PLACEMENT = """
import json, numpy as np
from clstm_jax.training.programs import Placement

for n in (4, 3):  # the largest device count that divides the model count is used: no model is padded
    leaf = Placement.for_counts(n).state({"w": np.zeros((n, 2))})["w"]
    print(json.dumps([n, len(leaf.sharding.device_set), sorted({s.data.shape[0] for s in leaf.addressable_shards})]))
"""


def device_env(n_devices):
    """This environment with the host platform split into n_devices CPU devices."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n_devices}"
    return {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}


def test_model_axis_is_sharded_over_four_devices_with_the_same_results(tmp_path, data_dir):
    # Where models go on 4 devices: 4 models one per device, 3 models on 3 of them.
    out = subprocess.run([sys.executable, "-c", PLACEMENT], env=device_env(4), check=True, capture_output=True, text=True)
    assert [json.loads(line) for line in out.stdout.splitlines()] == [[4, 4, [1]], [3, 3, [1]]]
    # One sweep of 4 models as a two-process JAX program (jax.distributed), 2 devices each, against the same
    # sweep on this process's one device: every entry of every model, from a checkpoint both processes
    # wrote; only process 0 prints and logs.
    grid = ["train.length=2", "train.length_unit=batches", "sweep.experiment=", "sweep.audio_snr=[2, 1]", "sweep.visual_snr=[1, 0.5]"]
    reference = micro(*grid, experiment="snr_grid.toml")  # run here while the two processes start
    grid += ["train.model_chunk=1"]  # models loop within each device (lax.map); the same numbers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = sweep_command(tmp_path / "two_processes", data_dir, *grid, experiment="snr_grid.toml")
    logs = [tmp_path / f"process{i}.txt" for i in range(2)]  # files, not pipes: a full pipe would stall its process
    processes = []
    for i, log in enumerate(logs):
        with open(log, "w") as f:
            processes.append(subprocess.Popen(
                [*command, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                env=device_env(2), stdout=f, stderr=subprocess.STDOUT))
    try:
        one = run_sweep(reference, tmp_path / "one", data_dir, progress=False)
        for process in processes:
            process.wait(timeout=300)
    finally:  # a failure here leaves no process behind
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert len(one["masked"]["params"]["layer1"]["hidden_kernel"].sharding.device_set) == 1
    outputs = [log.read_text() for log in logs]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert "4 models on 4 device(s) in 2 process(es)" in outputs[0] and "done: step 2" in outputs[0]
    assert "models on" not in outputs[1] and "done:" not in outputs[1]  # (Gloo's own lines aside)
    chex.assert_trees_all_close(jax.tree.map(np.asarray, one["masked"]["params"]), final_params(tmp_path / "two_processes"),
                                rtol=1e-5, atol=1e-6)
    lines = (tmp_path / "two_processes" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2]


def test_multi_process_arguments_and_uneven_model_counts_are_clear_errors(monkeypatch):
    from clstm_jax.core import distributed

    with pytest.raises(ValueError, match="--coordinator HOST:PORT, --num-processes N and --process-id I together"):
        distributed.initialize("127.0.0.1:1234", 2, None)
    with pytest.raises(ValueError, match=r"--process-id 2 with --num-processes 2; expected 0 <= id < N"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match=r"--coordinator 'localhost'; expected HOST:PORT"):
        distributed.initialize("localhost", 2, 0)
    # Two processes of one device each: 4 models take both devices, 3 models cannot be split evenly.
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "local_device_count", lambda: 1)
    with pytest.raises(ValueError, match="3 models cannot be spread evenly over 2 processes; use a model count divisible by 2"):
        distributed.devices_per_process(3)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_tiny_preset_lowers_the_loss_and_beats_chance(tmp_path, data_dir, capsys, compute_dtype):
    """The tiny preset, one model at orig SNR (at the grid's noisy SNRs 480 examples teach little)."""
    config = load_config(SWEEPS / "fusion.toml", ["preset=tiny", "sweep.experiment=", "sweep.audio_snr=orig",
                                                      "sweep.visual_snr=orig", f"model.compute_dtype={compute_dtype}"])
    run_sweep(config, tmp_path / "tiny", data_dir, progress=True)
    progress = capsys.readouterr().err
    assert "0/60" in progress and "compiling the training step" in progress.split("1/60")[0]  # said before the first step
    records = [json.loads(l) for l in (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()]
    first, last = records[0], records[-1]
    assert np.mean(list(last["loss"].values())) < np.mean(list(first["loss"].values())) - 0.2
    # Chance is 10%; with 128 validation pairs a model at chance exceeds 30% with probability < 1e-6.
    assert min(last["validation_accuracy"].values()) > 0.3


def test_bench_rows_cover_both_modes_and_add_up(data_dir):
    from clstm_jax.study.bench import bench_specs, run_bench
    from clstm_jax.training.device_data import feature_stats, load_checked_data, split_arrays
    from clstm_jax.training.stacking import build_models, initial_state

    config, steps = micro(), 2
    start = time.perf_counter()
    rows = run_bench(config, [1, 3], steps=steps, data_dir=data_dir)  # the programs of sweeps of 1 and 3 MICRO models
    wall = time.perf_counter() - start
    assert [(r["models"], r["mode"]) for r in rows] == [(1, "vmapped"), (1, "sequential"), (3, "vmapped"), (3, "sequential")]
    # The timed steps are part of the call, timed here from outside.
    assert 0 < sum(r["seconds_per_step"] * steps for r in rows) < wall
    # XLA's argument bytes are exactly the bytes of the program's inputs, counted here from the arrays:
    # the sweep state and model constants of the models in one program, and the training split.
    split = load_checked_data(config, data_dir).splits["train"]
    train = split_arrays(split, feature_stats(config, split))
    for row in rows:
        in_program = row["models"] if row["mode"] == "vmapped" else 1
        state_and_models = build_models(config, bench_specs(in_program))
        inputs = [initial_state(config, state_and_models[0]), state_and_models[1], train]
        assert row["argument_mb"] * 2**20 == sum(x.nbytes for x in jax.tree.leaves(inputs)), row


def test_standardised_runs_store_the_training_statistics_and_evaluation_reads_them(tmp_path, data_dir):
    from clstm_jax.data.features import BinStats, bin_stats, compressed, load_bin_stats, save_bin_stats, waves_to_float
    from clstm_jax.data.splits import load_splits
    from clstm_jax.evaluation.evaluate import evaluation_inputs, test_set
    from clstm_jax.evaluation.run import load_run

    run_dir = tmp_path / "standardised"
    config = micro("train.length=2", "train.length_unit=batches", "features.normalization=standardize")
    run_sweep(config, run_dir, data_dir, progress=False)
    stored = load_bin_stats(run_dir / "feature_stats.npz")
    train = load_splits(data_dir, None, config.data.split_seed)["train"]
    expected = bin_stats(train.waves, train.wave_lengths, config.features)
    np.testing.assert_array_equal(stored.mean, expected.mean)
    np.testing.assert_array_equal(stored.std, expected.std)

    # Evaluation standardises with the stored values, whatever they are: replace them and look.
    planted = BinStats(stored.mean + 1.0, stored.std * 2.0)
    save_bin_stats(run_dir / "feature_stats.npz", planted)
    run = load_run(run_dir)
    _, spectrograms, _ = evaluation_inputs(run, "orig", "orig", example_ids=[0, 1], data_dir=str(data_dir))
    test, _, audio_idx, _ = test_set(run.config, run.config.evaluate.examples, str(data_dir))
    clean = compressed(waves_to_float(test.waves[audio_idx[:2]]), config.features)
    np.testing.assert_allclose(spectrograms, (clean - planted.mean) / planted.std, rtol=1e-5, atol=1e-5)
    (run_dir / "feature_stats.npz").unlink()
    with pytest.raises(RunError, match="feature_stats.npz: missing"):
        load_run(run_dir)


def test_keep_best_takes_the_new_parameters_only_where_validation_improved():
    from clstm_jax.training.validation import keep_best

    params = {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.array([10.0, 20.0, 30.0])}  # 3 models
    best = {"w": -jnp.ones((3, 2)), "b": -jnp.ones(3)}
    # models 0 and 1 in one group, model 2 in another: the accuracies (models,) split in the models' order
    group = lambda rows: {"params": jax.tree.map(lambda x: x[rows], params), "best_params": jax.tree.map(lambda x: x[rows], best),
                          "best_accuracy": jnp.full(len(range(3)[rows]), 0.5), "best_step": jnp.full(len(range(3)[rows]), 4),
                          "loss_sum": jnp.array([3.0, 2.0, 1.0])[rows]}
    state = {"masked": group(slice(0, 2)), "a2-fc": group(slice(2, 3)), "step": jnp.array(8)}
    out = keep_best(state, jnp.array([0.6, 0.5, 0.7]))  # models 0 and 2 improve; a tie (model 1) is not an improvement
    both = lambda key: jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out["masked"][key], out["a2-fc"][key])
    chex.assert_trees_all_equal(both("best_params"), {"w": jnp.array([[0.0, 1.0], [-1, -1], [4.0, 5.0]]),
                                                      "b": jnp.array([10.0, -1, 30.0])})
    chex.assert_trees_all_equal(both("best_accuracy"), jnp.array([0.6, 0.5, 0.7]))
    chex.assert_trees_all_equal(both("best_step"), jnp.array([8, 4, 8]))
    chex.assert_trees_all_equal(both("loss_sum"), jnp.zeros(3))
    chex.assert_trees_all_equal(both("params"), params)


def damage(run_dir, how):
    """Damage the newest checkpoint (step 4) of run_dir as a failing disk or a careless hand would."""
    step = run_dir / "checkpoints" / "4"
    if how == "truncated":
        for f in (step / "default" / "ocdbt.process_0" / "d").iterdir():
            os.truncate(f, 50)
    elif how == "emptied metadata":
        (step / "default" / "_METADATA").write_text("")
    else:  # values changed after the write: one recorded checksum off by one
        record = json.loads((step / "clstm_jax_checksum.json").read_text())
        record["uint32_sums"][3] = (record["uint32_sums"][3] + 1) % 2**32
        (step / "clstm_jax_checksum.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, data_dir):
    """A micro sweep of 4 steps with the checkpoints of steps 2 and 4, and a copy of it to damage."""
    settings = ["train.length=4", "train.length_unit=batches", "train.checkpoint_every=2"]
    root = tmp_path_factory.mktemp("checkpointed")
    run_sweep(micro(*settings), root / "straight", data_dir, progress=False)
    shutil.copytree(root / "straight", root / "copy")
    return settings, root / "straight", root / "copy"


@pytest.mark.parametrize("how", ["truncated", "emptied metadata", "checksum mismatch"])
def test_a_damaged_checkpoint_is_named_and_the_older_one_used(checkpointed, data_dir, tmp_path, capsys, how):
    """Restore falls back to step 2 and says why in one line; a resume sets step 4 aside (nothing deleted) and
    ends bit-identical to the run that was never damaged."""
    from clstm_jax.evaluation.run import read_config, read_specs, restore_state

    settings, straight, stopped = checkpointed
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    damage(run_dir, how)
    assert int(restore_state(run_dir, read_config(run_dir), read_specs(run_dir))["step"]) == 2
    said = capsys.readouterr().out.splitlines()
    reason = {"truncated": "OUT_OF_RANGE", "emptied metadata": "JSONDecodeError",
              "checksum mismatch": "do not match the checksum recorded when it was written"}[how]
    assert len(said) == 1 and said[0].startswith(f"checkpoint of step 4 in {run_dir / 'checkpoints'} cannot be used (")
    assert reason in said[0] and said[0].endswith("; trying step 2")

    run_sweep(micro(*settings), run_dir, data_dir, progress=False)
    assert sorted(p.name for p in (run_dir / "unusable-checkpoints").iterdir()) == ["4"]
    assert "resuming from step 2; the unusable checkpoint(s) of step 4 moved to" in capsys.readouterr().out
    chex.assert_trees_all_equal(final_params(straight), final_params(run_dir))


def test_no_usable_checkpoint_is_one_error_and_keeps_them(checkpointed, tmp_path, capsys):
    from clstm_jax.evaluation.run import read_config, read_specs, restore_state

    run_dir = tmp_path / "run"
    shutil.copytree(checkpointed[2], run_dir)
    damage(run_dir, "truncated")
    (run_dir / "checkpoints" / "2" / "default" / "_METADATA").write_text("")
    before = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    with pytest.raises(ConfigError, match=r"none of its 2 checkpoint\(s\) can be used \(each named above\); they are kept"):
        restore_state(run_dir, read_config(run_dir), read_specs(run_dir))
    assert capsys.readouterr().out.count("cannot be used") == 2
    assert sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) == before


def test_checksums_change_with_any_one_word_and_not_with_the_sharding():
    """Hand-checked on a small case: sum of w_i (2i + 1) mod 2^32; then one bit flipped anywhere changes it."""
    from clstm_jax.training.checkpoint import checksums

    x = np.array([1.0, -2.0, 0.5], np.float32)
    words = x.view(np.uint32).astype(np.uint64)
    expected = int(sum(w * (2 * i + 1) for i, w in enumerate(words)) % 2**32)
    assert checksums({"x": jnp.asarray(x), "n": jnp.int32(7)}).tolist() == [7, expected]  # leaves in key order
    rng = np.random.default_rng(0)
    big = rng.standard_normal(1000).astype(np.float32)
    base = int(checksums({"x": jnp.asarray(big)})[0])
    for index, bit in zip(rng.integers(0, 1000, 20), rng.integers(0, 32, 20)):
        flipped = big.view(np.uint32).copy()
        flipped[index] ^= np.uint32(1 << int(bit))
        assert int(checksums({"x": jnp.asarray(flipped.view(np.float32))})[0]) != base


@pytest.mark.parametrize("signum,delay", [(signal.SIGINT, 0.3), (signal.SIGINT, 4.0), (signal.SIGTERM, 4.0)])
def test_an_interrupt_outside_training_is_one_line_and_exit_130(checkpointed, signum, delay):
    """Ctrl-C or SIGTERM while importing, loading or evaluating: one line saying where, exit 130, no traceback."""
    command = [sys.executable, "-m", "clstm_jax", "evaluate", str(checkpointed[1]), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "CLSTM_JAX_COMPILATION_CACHE": "off"})
    time.sleep(delay)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert re.fullmatch(r"clstm-jax: interrupted while [a-z ]+( \((nothing kept|\d+ of \d+ chunks kept in \S+)\))?; "
                        r"what was written before is kept: re-run the same command to go on\n", err), err


def test_zero_examples_is_refused_not_taken_for_the_default(checkpointed):
    from clstm_jax.evaluation.evaluate import evaluate
    from clstm_jax.evaluation.run import load_run

    with pytest.raises(ConfigError, match=r"--examples 0: expected a positive number of test pairs"):
        evaluate(load_run(checkpointed[1]), examples=0)


def test_one_job_per_run_directory(tmp_path, capsys):
    """A second job on a held run is refused naming the holder; a lock left by a killed job is taken over, said."""
    from clstm_jax.training.run_dir import run_lock

    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom clstm_jax.training.run_dir import run_lock\n"
                               f"with run_lock({str(run_dir)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(run_dir))} is in use by another clstm-jax job "
                                          rf"\(pid {holder.pid} on {re.escape(socket.gethostname())}\); wait for it"):
        with run_lock(run_dir):
            pass
    holder.kill()
    holder.wait()
    with run_lock(run_dir):
        with run_lock(run_dir):  # nested in one process: one hold
            assert (run_dir / "lock").read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
    assert capsys.readouterr().out == f"{run_dir}: took over the lock of pid {holder.pid} on {socket.gethostname()}, " \
                                      "a job that ended without releasing it\n"
    assert not (run_dir / "lock").exists()  # released


def test_a_diverging_run_stops_with_one_line_naming_the_step(tmp_path, data_dir, capsys):
    """Learning rate 1e6: losses near 1e13 by the first validation. One line, exit 2, no metrics written for
    the diverged interval, and the checkpoint of the step before it kept."""
    from clstm_jax.cli import main

    run_dir = tmp_path / "diverged"
    args = ["sweep", str(SWEEPS / "fusion.toml"), "--out", str(run_dir), "--data-dir", str(data_dir), "--quiet"]
    for item in (*MICRO, "train.length=8", "train.length_unit=batches", "train.validate_every=4",
                 "train.checkpoint_every=2", "train.learning_rate=1e6"):
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("clstm-jax: error: training diverged at step 4: the mean loss of steps 1-4 "
                                              "grew over 100 x chance's 2.30 for fusion=initial"), err
    assert "stopped before the checkpoint of step 4 (earlier ones are kept)" in err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == ["2"]
    assert not (run_dir / "metrics.jsonl").exists()


def test_a_non_finite_or_exploded_loss_is_named_per_model():
    from clstm_jax.training.validation import check_loss

    names = [f"m{k}" for k in range(6)]
    check_loss(np.array([2.3, 0.1, 229.0, 1e-9, 5.0, 2.0]), names, 10, 5)  # all still learning: no error
    with pytest.raises(FloatingPointError) as err:
        check_loss(np.array([2.3, np.nan, 0.5, np.inf, 231.0, 1e20]), names, 10, 5)
    assert str(err.value).startswith("training diverged at step 10: the mean loss of steps 6-10 is not finite for "
                                     "m1 (nan), m3 (inf), m4 (231) and 1 more; ")
    with pytest.raises(FloatingPointError, match=r"steps 1-3 grew over 100 x chance's 2.30 for m0 \(1e\+14\); "):
        check_loss(np.array([1e14]), names[:1], 3, 3)


def test_a_batch_over_the_memory_budget_is_refused_before_any_work(tmp_path, data_dir, capsys):
    """train.batch_size = 1e8 would run out of memory in its first step: one line naming the budget, exit 2,
    and the new run leaves nothing behind, so a re-run with a smaller batch starts afresh."""
    from clstm_jax.cli import main

    run_dir = tmp_path / "too-big"
    args = ["sweep", str(SWEEPS / "fusion.toml"), "--out", str(run_dir), "--data-dir", str(data_dir), "--quiet"]
    for item in (*MICRO, "train.batch_size=100000000", "train.memory_budget_gb=4"):
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"clstm-jax: error: the training step at train.batch_size = 100000000, train.model_chunk = 0 "
                        r"needs [0-9.e+]+ GiB per device, over the 4 GiB budget \(train.memory_budget_gb; .*\); "
                        r"expected a smaller train.batch_size .*", err), err
    assert not run_dir.exists()


@pytest.mark.parametrize("measurement", ["evaluate", "modality use"])
def test_an_interrupted_evaluation_resumes_bit_identical(checkpointed, tmp_path, monkeypatch, capsys, measurement):
    """Interrupted at its 4th chunk, then run again: the finished chunks are read back, not computed again,
    and the result equals an uninterrupted run's; saving it removes the kept chunks."""
    from clstm_jax.core import interrupts
    from clstm_jax.evaluation.evaluate import evaluate
    from clstm_jax.evaluation.modality_use import measure
    from clstm_jax.evaluation.run import load_run

    run = load_run(checkpointed[1])
    run = dataclasses.replace(run, config=dataclasses.replace(run.config, evaluate=dataclasses.replace(
        run.config.evaluate, batch=50, point_examples=12)))  # 8 chunks of the grid; 10 of 2 points x 5 conditions
    measure_it = {"evaluate": lambda **kw: evaluate(run, examples=4, progress=False, **kw),
                  "modality use": lambda **kw: measure(run, progress=False, **kw)}[measurement]
    straight = measure_it()
    chunks = 8 if measurement == "evaluate" else 10
    partial = tmp_path / "eval" / ("accuracy.partial.npz" if measurement == "evaluate" else "modality_use.partial.npz")
    calls, stop_before = [], [4]

    def check():  # the loop's interrupt check, once before each chunk: Ctrl-C before the 4th, the first time
        calls.append(1)
        if len(calls) in stop_before:
            stop_before.clear()
            raise KeyboardInterrupt

    monkeypatch.setattr(interrupts, "check", check)
    with pytest.raises(KeyboardInterrupt) as stopped:
        measure_it(keep=tmp_path / "eval")
    what = "evaluating" if measurement == "evaluate" else "measuring modality use"
    assert str(stopped.value) == (f"interrupted while {what} (3 of {chunks} chunks kept in {partial}); what was written "
                                  "before is kept: re-run the same command to go on")
    calls.clear()
    resumed = measure_it(keep=tmp_path / "eval")
    assert len(calls) == chunks - 3  # only the chunks not kept were computed
    assert f"{partial}: resuming after 3 finished chunks" in capsys.readouterr().err
    for field in dataclasses.fields(straight):
        if field.name != "item_seconds":  # a timing
            chex.assert_trees_all_equal(getattr(resumed, field.name), getattr(straight, field.name))
    resumed.save(tmp_path / "eval", run.specs)
    assert not partial.exists()


def test_a_full_disk_after_the_compute_is_one_line_for_every_command(checkpointed, data_dir, tmp_path, monkeypatch,
                                                                      capsys):
    """The disk fills while `evaluate` writes its CSV, and while a sweep appends its metrics: one line each,
    exit 2, and what was there before is as it was."""
    import csv

    from clstm_jax.cli import main
    from clstm_jax.training import validation

    run_dir = tmp_path / "run"
    shutil.copytree(checkpointed[1], run_dir)
    shutil.rmtree(run_dir / "eval", ignore_errors=True)
    monkeypatch.setattr(csv, "writer", lambda f, *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device", f.name)))
    assert main(["evaluate", str(run_dir), "--data-dir", str(data_dir), "--quiet", "--examples", "4"]) == 2
    err = capsys.readouterr().err
    assert err == (f"clstm-jax: error: {run_dir / 'eval' / 'accuracy.csv'}: cannot write the evaluation (No space left "
                   "on device); what was written before is kept as it was: make room or fix the permissions, then "
                   "re-run the same command\n")
    assert sorted(p.name for p in (run_dir / "eval").iterdir()) == []  # no half of a new pair
    monkeypatch.undo()

    def full_disk(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(28, "No space left on device", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(validation, "open", full_disk, raising=False)
    args = ["sweep", str(SWEEPS / "fusion.toml"), "--out", str(tmp_path / "new"), "--data-dir", str(data_dir), "--quiet"]
    for item in (*MICRO, *checkpointed[0]):
        args += ["--set", item]
    assert main(args) == 2
    assert capsys.readouterr().err == (f"clstm-jax: error: {tmp_path / 'new' / 'metrics.jsonl'}: No space left on device; "
                                       "what was written before is kept as it was: make room or fix the permissions, "
                                       "then re-run the same command\n")


INTERRUPTED_AT = {  # phase -> (command, the function its first step calls, patched to be where Ctrl-C lands)
    "loading the data": ("sweep", "clstm_jax.training.sweep.load_checked_data"),
    "compiling the training step": ("sweep", "clstm_jax.training.memory.fit_training"),
    "loading the test data": ("evaluate", "clstm_jax.evaluation.evaluate.test_set"),
    "compiling the evaluation": ("evaluate", "clstm_jax.training.memory.fit_evaluation"),
    "measuring modality use": ("evaluate", "clstm_jax.evaluation.modality_use.evaluation_inputs"),
}


@pytest.mark.parametrize("phase", INTERRUPTED_AT)
def test_ctrl_c_in_each_phase_names_it_in_one_line_and_exits_130(checkpointed, data_dir, tmp_path, monkeypatch, capsys,
                                                                 phase):
    """The line names the phase the command was in (`interrupts.doing`); an evaluated run's files (but the
    new eval/) are as they were. (Real signals at real instants: the tests above; drawing the report: tests/test_study.py.)"""
    from clstm_jax.cli import main

    command, where = INTERRUPTED_AT[phase]
    run_dir = tmp_path / "run"
    shutil.copytree(checkpointed[1], run_dir)
    shutil.rmtree(run_dir / "eval", ignore_errors=True)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "lock"}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    if command == "sweep":  # a new run
        args = ["sweep", str(SWEEPS / "fusion.toml"), "--out", str(tmp_path / "new"), "--data-dir", str(data_dir), "--quiet"]
        for item in (*MICRO, *checkpointed[0]):
            args += ["--set", item]
    else:
        args = ["evaluate", str(run_dir), "--data-dir", str(data_dir), "--quiet", "--examples", "4"]
    assert main(args) == 130
    assert capsys.readouterr().err == (f"clstm-jax: interrupted while {phase}; what was written before is kept: re-run "
                                       "the same command to go on\n")
    outside_eval = lambda files: {p: b for p, b in files.items() if "eval" not in p.relative_to(run_dir).parts}
    assert outside_eval({p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "lock"}) == before


def test_bench_times_the_forward_programs_at_the_run_sizes(data_dir):
    """`bench --program validation|evaluation`: the run's programs, called with the sizes a run calls them with
    (validation: 4 batches of 4 pairs, capped at the 8 validation pairs; evaluation: evaluate.batch items)."""
    from clstm_jax.study.bench import run_bench

    config = micro("evaluate.batch=16")
    for program, items in (("validation", 8), ("evaluation", 16)):
        rows = run_bench(config, [2], steps=1, data_dir=data_dir, program=program)
        assert [(r["program"], r["models"], r["mode"], r["items_per_call"]) for r in rows] == \
            [(program, 2, "vmapped", items), (program, 2, "sequential", items)]
        assert all(r["seconds_per_step"] > 0 for r in rows)


def test_a_longer_train_length_extends_a_run_to_the_run_that_length_trains(tmp_path, data_dir, capsys):
    """Adam's learning rate is constant and a step's pairs and noise depend on the step alone, so 2 steps then
    2 more are 4 steps from the start, bit for bit; a shorter length is refused with nothing touched."""
    length = lambda n: micro(f"train.length={n}", "train.length_unit=batches")
    run_sweep(length(2), tmp_path / "extended", data_dir, progress=False)
    run_sweep(length(4), tmp_path / "extended", data_dir, progress=False)
    assert "training extended from 2 to 4 steps" in capsys.readouterr().out
    run_sweep(length(4), tmp_path / "fresh", data_dir, progress=False)
    chex.assert_trees_all_equal(final_params(tmp_path / "extended"), final_params(tmp_path / "fresh"))
    read = lambda run, name: (tmp_path / run / name).read_text()
    assert json.loads(read("extended", "config.json")) == json.loads(read("fresh", "config.json"))
    metrics = [[{k: v for k, v in json.loads(line).items() if k != "step_seconds"}
                for line in read(run, "metrics.jsonl").splitlines()] for run in ("extended", "fresh")]
    assert metrics[0] == metrics[1] and [r["step"] for r in metrics[0]] == [2, 4]
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "extended").rglob("*")}
    with pytest.raises(ConfigError, match=r"holds a run with a different config \(differs in train.length\)"):
        run_sweep(length(3), tmp_path / "extended", data_dir)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "extended").rglob("*")} == before
