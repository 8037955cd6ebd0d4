"""The benchmark scripts' own behaviour (their figures are measured by running them, not here)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, written", [
    (["--size", "tiny"], False),  # checking the kit leaves the tracked figures alone
    (["--size", "tiny", "--write"], True),
    (["--size", "paper"], True),  # a GPU measurement goes into docs/performance.md
    (["--size", "paper", "--no-write"], False),
])
def test_gpu_kit_writes_the_tracked_figures_only_at_paper_size_or_when_asked(tmp_path, monkeypatch, capsys, argv, written):
    gpu = load_script("gpu")
    doc = tmp_path / "performance.md"
    before = f"# Performance\n\n{gpu.START}\nold tables\n{gpu.END}\n\nafter\n"
    doc.write_text(before)
    monkeypatch.setattr(gpu, "PERFORMANCE", doc)
    monkeypatch.setattr(gpu, "run_part", lambda part, size, data_dir: (f"{part} table", 1.0))
    monkeypatch.setattr(gpu, "device_line", lambda: "a test device")
    monkeypatch.setattr(sys, "argv", ["gpu.py", *argv, "--parts", "plan", "--data-dir", "unused"])
    gpu.main()
    assert "plan table" in capsys.readouterr().out
    after = doc.read_text()
    if written:
        assert "old tables" not in after and "plan table" in after
        assert after.startswith("# Performance\n\n") and after.endswith("\n\nafter\n")
    else:
        assert after == before
