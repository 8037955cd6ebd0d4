import shutil

import numpy as np
import soundfile as sf

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
    assert len(problems) == 5, problems
    assert any("t10k-labels-idx1-ubyte.gz" in p and "truncated or corrupt" in p for p in problems)
    assert any("5_theo_9.wav: 2 channels" in p for p in problems)
    assert any("README.txt: unexpected file" in p for p in problems)
    assert any("speaker theo, digit 4: 49 takes" in p and "missing [9]" in p for p in problems)
    assert any("speaker theo, digit 5: 49 takes" in p for p in problems)  # the stereo take does not count
