import shutil

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT

from clstm_jax.cli import main
from clstm_jax.data.verify import verify


def test_the_shared_data_verifies(data_dir):
    report = verify(data_dir)
    assert report.problems == []
    assert [status for _, status in report.mnist_rows] == ["ok"] * 4
    assert sorted(report.fsdd_counts) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert all(sum(c.values()) == 500 for c in report.fsdd_counts.values())


def test_each_problem_is_one_line_naming_its_file(tmp_path, data_dir, capsys):
    """A temporary copy with a corrupted MNIST file, a stereo take, a missing take and a stray file."""
    shutil.copytree(data_dir / "mnist", tmp_path / "mnist")
    shutil.copytree(data_dir / "fsdd" / "recordings", tmp_path / "fsdd" / "recordings")
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-20])
    rec = tmp_path / "fsdd" / "recordings"
    (rec / "4_theo_9.wav").unlink()
    (rec / "5_theo_9.wav").unlink()
    sf.write(rec / "5_theo_9.wav", np.zeros((50, 2), np.int16), 8000, subtype="PCM_16")
    (rec / "README.txt").write_text("stray")

    assert main(["data", "verify", "--data-dir", str(tmp_path)]) == 1
    problems = capsys.readouterr().err.strip().splitlines()
    assert len(problems) == 7, problems
    assert any("t10k-labels-idx1-ubyte.gz" in p and "truncated or corrupt" in p for p in problems)
    assert any("5_theo_9.wav: 2 channels" in p for p in problems)
    assert any("README.txt: unexpected file" in p for p in problems)
    assert any("speaker theo, digit 4: 49 takes" in p and "missing [9]" in p for p in problems)
    assert any("speaker theo, digit 5: 49 takes" in p for p in problems)  # the stereo take does not count
    assert any("4_theo_9.wav: missing (against FSDD v1.0.10's checksums)" in p for p in problems)
    assert any("5_theo_9.wav: altered or truncated (against FSDD v1.0.10's checksums)" in p for p in problems)


def corrupted_copy(tmp_path, data_dir):
    """A copy of the data with a truncated, an altered (header intact), a deleted and an extra recording."""
    root = tmp_path / "copy"
    (root / "mnist").mkdir(parents=True)
    for path in (data_dir / "mnist").iterdir():
        (root / "mnist" / path.name).symlink_to(path)
    shutil.copytree(data_dir / "fsdd", root / "fsdd")
    rec = root / "fsdd" / "recordings"
    truncated = rec / "1_jackson_3.wav"
    truncated.write_bytes(truncated.read_bytes()[:100])
    altered = rec / "2_lucas_7.wav"
    raw = bytearray(altered.read_bytes())
    raw[-200:-100] = bytes(100)  # sample bytes only: the WAV header and the length stay as they were
    altered.write_bytes(bytes(raw))
    (rec / "3_theo_4.wav").unlink()
    shutil.copy(rec / "3_theo_5.wav", rec / "3_theo_50.wav")
    return root


def test_verify_names_truncated_altered_missing_and_extra_recordings(tmp_path, data_dir, capsys):
    root = corrupted_copy(tmp_path, data_dir)
    assert main(["data", "verify", "--data-dir", str(root)]) == 1
    problems = capsys.readouterr().err.strip().splitlines()
    for line in ("1_jackson_3.wav: altered or truncated (against FSDD v1.0.10's checksums)",
                 "2_lucas_7.wav: altered or truncated (against FSDD v1.0.10's checksums)",
                 "3_theo_4.wav: missing (against FSDD v1.0.10's checksums)",
                 "3_theo_50.wav: not in the release (against FSDD v1.0.10's checksums)",
                 f"2_lucas_7.wav: altered or truncated (against {root / 'fsdd' / 'SHA256SUMS'})"):
        assert any(line in p for p in problems), (line, problems)


def test_loading_refuses_data_that_is_not_the_published_one_unless_told(tmp_path, data_dir, capsys):
    from clstm_jax.core.errors import DataError
    from clstm_jax.data.fsdd import load_fsdd
    from clstm_jax.data.splits import load_dataset

    root = corrupted_copy(tmp_path, data_dir)
    with pytest.raises(DataError) as err:
        load_fsdd(root)
    message = str(err.value)
    for part in ("altered or truncated (2): 1_jackson_3.wav, 2_lucas_7.wav", "missing (1): 3_theo_4.wav",
                 "not in the release (1): 3_theo_50.wav", "data.verify = false"):
        assert part in message, message
    # Only the chosen speakers' files count; with no choice, the whole release does.
    assert len(load_fsdd(root, ("george", "nicolas")).waves) == 1000
    for path in (root / "fsdd" / "recordings").glob("*_lucas_*.wav"):
        path.unlink()
    with pytest.raises(DataError, match=r"missing \(501\): 0_lucas_0.wav"):
        load_fsdd(root)
    # The opt-out loads them, and the data's identity says so.
    unchecked = load_dataset(root, ("george", "jackson"), verify=False)
    assert unchecked.identity["verified"] is False and unchecked.identity["files"] == 4 + 1000
    assert unchecked.identity["sha256"] != load_dataset(data_dir, ("george", "jackson")).identity["sha256"]
    # The CLI refuses before training: one line on stderr, exit 2, nothing written.
    out = tmp_path / "run"
    assert main(["sweep", str(ROOT / "sweeps" / "tiny.toml"), "--data-dir", str(root), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "1_jackson_3.wav" in captured.err
    assert "Traceback" not in captured.err and not out.exists()
