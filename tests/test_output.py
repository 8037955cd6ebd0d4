"""Output that fails as one line and keeps the previous complete set (clstm_jax/core/output.py)."""

import csv
import errno
import os

import numpy as np
import pytest

from clstm_jax.core.errors import OutputError
from clstm_jax.core.output import staged

KEPT = "what was written before is kept as it was: make room or fix the permissions, then re-run the same command"


def files_of(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_staged_set_replaces_its_files_and_leaves_the_others(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "mine.txt").write_text("not the set's")
    with staged(tmp_path, "the pair") as aside:
        (aside / "a.txt").write_text("new a")
        (aside / "logs").mkdir()
        (aside / "logs" / "events").write_text("new events")
    assert files_of(tmp_path) == {"a.txt": b"new a", "logs/events": b"new events", "mine.txt": b"not the set's"}


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
                                         (errno.EACCES, "Permission denied"), (errno.ENOTDIR, "Not a directory")])
def test_a_failed_write_keeps_the_previous_set_and_is_one_line(tmp_path, code, cause):
    """The first file written, the second failing: neither replaces the old pair, nothing is left aside."""
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    before = files_of(tmp_path)
    with pytest.raises(OutputError) as err:
        with staged(tmp_path, "the pair") as aside:
            (aside / "a.txt").write_text("new a")
            raise OSError(code, os.strerror(code), str(aside / "b.txt"))
    assert str(err.value) == f"{tmp_path / 'b.txt'}: cannot write the pair ({cause}); {KEPT}"
    assert files_of(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_an_os_error_that_is_not_the_outputs_fault_keeps_its_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        with staged(tmp_path, "the pair"):
            open(tmp_path / "missing" / "input.txt")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_saving_an_evaluation_keeps_the_previous_one(tmp_path, monkeypatch):
    from conftest import micro

    from clstm_jax.config.experiments import sweep_models
    from clstm_jax.evaluation.evaluate import Evaluation, load_evaluation

    specs = sweep_models(micro())
    rng = np.random.default_rng(0)
    make = lambda n: Evaluation(tuple(s.name for s in specs), np.array([0.5, 1.0], np.float32),
                                np.array([0.5, 1.0], np.float32), rng.random((3, 2, 2, n)) < 0.5, np.arange(n) % 10,
                                "subset", 4)
    directory = tmp_path / "eval"
    make(5).save(directory, specs)
    before = files_of(directory)
    (directory / "accuracy.partial.npz").write_bytes(b"kept chunks")  # kept until an evaluation is saved

    def full_disk(f, *args, **kwargs):  # the npz is written; the CSV finds the disk full
        raise OSError(errno.ENOSPC, "No space left on device", f.name)

    monkeypatch.setattr(csv, "writer", full_disk)
    with pytest.raises(OutputError, match=rf"^{directory / 'accuracy.csv'}: cannot write the evaluation \(No space "):
        make(7).save(directory, specs)
    assert {k: v for k, v in files_of(directory).items() if k != "accuracy.partial.npz"} == before
    assert (directory / "accuracy.partial.npz").exists() and load_evaluation(tmp_path).examples == 5


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_a_directory_that_refuses_writes_is_refused_before_any_work(tmp_path, monkeypatch, code):
    """No write permission (which root, running this suite, cannot be denied: simulated), a read-only file
    system, a full disk: the probe's error is the one line, and nothing is left behind."""
    from clstm_jax.core import output

    def refused(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(output, "open", refused, raising=False)
    with pytest.raises(OutputError) as err:
        output.check_writable(tmp_path / "run")
    assert str(err.value) == (f"{tmp_path / 'run'}: cannot write there ({os.strerror(code)}); expected a writable "
                              "directory (choose another with --out)")
    assert list(tmp_path.iterdir()) == []
