"""A run directory's files, and the check that a resume or an evaluation uses the run's own config and data."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from clstm_jax.config import Config, from_record
from clstm_jax.core import distributed
from clstm_jax.core.errors import ConfigError
from clstm_jax.core.output import staged


@dataclass(frozen=True)
class RunFiles:
    """The files of a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def models(self) -> Path:
        return self.root / "models.json"

    @property
    def feature_stats(self) -> Path:
        return self.root / "feature_stats.npz"

    @property
    def data(self) -> Path:
        return self.root / "data.json"

    @property
    def environment(self) -> Path:
        return self.root / "environment.jsonl"  # one record per start and resume (clstm_jax/core/environment.py)

    @property
    def lock(self) -> Path:
        return self.root / "lock"  # "pid P on HOST" of the job that holds the run (run_lock)

    @property
    def unusable_checkpoints(self) -> Path:
        return self.root / "unusable-checkpoints"  # set aside by a resume, never deleted (clstm_jax/training/checkpoint.py)


_held: set[Path] = set()  # run directories this process holds


@contextlib.contextmanager
def run_lock(run_dir: Path, log=print):
    """Hold run_dir for one job: a second job on it is refused with one line naming the holder.

    An exclusive `flock` on RUN/lock, which holds "pid P on HOST". The kernel drops the lock when its process
    ends, however it ends; the file is removed on a normal release, so one left behind names a job that
    died, and taking it over says so. Nested holds in one process (a study's sweep) are one hold. Only
    the primary process of a multi-process job locks. (flock is advisory and local: jobs on other hosts
    that share the folder over NFS may not see it.)
    """
    run_dir = Path(run_dir).resolve()
    if run_dir in _held or not distributed.is_primary():  # the outer hold (or process 0) releases it
        yield
        return
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = RunFiles(run_dir).lock
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(f"{run_dir} is in use by another clstm-jax job ({holder}); wait for it to end, "
                          "or give this one another --out") from None
    handle.seek(0)
    if stale := handle.read().strip():
        log(f"{run_dir}: took over the lock of {stale}, a job that ended without releasing it")
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _held.add(run_dir)
    try:
        yield
    finally:
        _held.discard(run_dir)
        path.unlink(missing_ok=True)
        handle.close()
        if created:  # a job refused before it wrote anything leaves no empty directory behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def config_record(config: Config) -> dict:
    return json.loads(json.dumps(asdict(config)))



def claim_run_dir(run_dir: Path, config: Config, data_identity: dict) -> bool:
    """Write the resolved config and the data's identity into a new run directory, or check that they
    match an existing one.

    Returns True when resuming. A longer `train.length` (and nothing else changed) extends the run: the
    stored config takes the new length. Any other difference in config, or other data, is refused and
    nothing in the directory is touched. Every process reads before process 0 writes, so all of them take the same branch.
    """
    files = RunFiles(run_dir)
    record = config_record(config)
    stored = None  # the stored config, keys added since it was written at their defaults
    if files.config.exists():
        stored_config = from_record(json.loads(files.config.read_text()), str(files.config))
        stored = config_record(stored_config)
    distributed.barrier("claim_run_dir")
    if stored is not None:
        differing = sorted(key for key in diff_keys(stored, record) if not key.startswith("runtime."))  # runtime: how, not what
        if differing == ["train.length"] and config.train.steps > stored_config.train.steps:
            check_run_data(run_dir, data_identity, "resume")
            if distributed.is_primary():
                print(f"{run_dir}: training extended from {stored_config.train.steps} to {config.train.steps} steps "
                      f"(train.length {stored_config.train.length:g} -> {config.train.length:g}); the learning rate is "
                      "constant and each step's pairs and noise depend on the step alone, so this is the run that "
                      "length would have trained", flush=True)
                files.config.write_text(json.dumps(record, indent=2) + "\n")
            return True
        if differing:
            raise ConfigError(
                f"{run_dir} holds a run with a different config (differs in {', '.join(differing)}); "
                "nothing there was changed. Use a new --out directory, or re-run with the same config to resume."
            )
        check_run_data(run_dir, data_identity, "resume")
        return True
    if distributed.is_primary():
        run_dir.mkdir(parents=True, exist_ok=True)
        files.config.write_text(json.dumps(record, indent=2) + "\n")
        files.data.write_text(json.dumps(data_identity, indent=2) + "\n")
    return False


def discard_new_run(run_dir: Path) -> None:
    """Remove what a new run wrote before its first step (its records, an empty checkpoint folder), when the
    job is refused there: a re-run with other settings then starts afresh instead of meeting "a different
    config". Only for a run this job began; a resumed run keeps everything."""
    files = RunFiles(run_dir)
    for path in (files.config, files.data, files.models, files.environment, files.feature_stats):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (run_dir / "checkpoints").rmdir()


def check_run_data(run_dir: Path, data_identity: dict, action: str) -> None:
    """Refuse to `action` a run on data other than its own (RUN/data.json), naming what differs.

    Runs written before data.json existed are not checked."""
    path = RunFiles(run_dir).data
    if not path.exists():
        return
    stored = json.loads(path.read_text())
    if stored != data_identity:
        differing = sorted(diff_keys(stored, data_identity))
        raise ConfigError(
            f"{run_dir} was trained on other data than {action} would use (differs in {', '.join(differing)}; "
            f"the run's record: {path}); nothing there was changed. Point --data-dir at the run's data."
        )


def diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += diff_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.append(prefix + key)
    return keys


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop metrics lines written after the checkpoint we resume from (they will be written again)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        with staged(path.parent, "the metrics") as aside:  # a failure keeps the metrics as they were
            (aside / path.name).write_text("".join(line + "\n" for line in lines))
