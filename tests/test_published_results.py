"""The decided study's published parameters (docs/results-decided-cpu/): the page's example runs, without training."""

import re

import numpy as np
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # trains or evaluates runs: not in the fast tier (`pytest -m "not slow"`)

PAGE = ROOT / "docs" / "results-decided-cpu.md"
PUBLISHED = ROOT / "docs" / "results-decided-cpu" / "decided-cpu.tar.xz"


def test_the_published_study_loads_and_redraws_fig3_as_its_report_did(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLSTM_JAX_DATA", raising=False)  # the example names its data directory itself
    assert PUBLISHED.stat().st_size < 20 * 2**20
    code = re.search(r"```python\n(.*?)```", PAGE.read_text(), re.S).group(1)
    scope = {"PUBLISHED": str(PUBLISHED), "DATA": str(data_dir), "OUT": str(tmp_path / "redrawn")}
    exec(compile(code, str(PAGE.relative_to(ROOT)), "exec"), scope)  # it checks one model's stored accuracy itself
    report = scope["run"].path / "report"
    for name in ("fig3.csv", "fig3-seeds.csv"):
        assert (tmp_path / "redrawn" / name).read_text() == (report / name).read_text(), name
    assert len(scope["run"].names) == 62 and np.isfinite(scope["result"]["second"]["low"]).all()
