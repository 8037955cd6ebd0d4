import json
import re
from pathlib import Path

import pytest
from conftest import PAPER_SPEAKERS, ROOT

from clstm_jax.cli import main

PAPER_PAIRS = {"train": 11_202_076, "validation": 174_490, "test": 175_389}


def test_stats_json_gives_the_papers_pair_counts(data_dir, capsys):
    assert main(["data", "stats", "--data-dir", str(data_dir), "--speakers", ",".join(PAPER_SPEAKERS), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    for split, expected in PAPER_PAIRS.items():
        assert abs(stats["pairs"][split] / expected - 1) < 0.01
        per_split = stats["splits"][split]
        assert sum(per_split["pairs_per_label"]) == stats["pairs"][split]
        assert per_split["pairs_per_label"] == [a * b for a, b in zip(per_split["images_per_label"], per_split["recordings_per_label"])]


def test_stats_table_lists_every_split(data_dir, capsys):
    assert main(["data", "stats", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{split}\s+images", out, re.M) for split in ("train", "validation", "test"))


def test_bad_speaker_is_one_clear_line(data_dir, capsys):
    assert main(["data", "stats", "--data-dir", str(data_dir), "--speakers", "george,zed"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown FSDD speaker(s) zed" in err


def readme_commands():
    """The shell commands of the first code block of README.md."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)[1]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_test_command():
    commands = readme_commands()
    assert len(commands) == 2 and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_model_summary_json_matches_the_hand_count(capsys):
    """Same small configuration as tests/test_model.py's hand count; the A.2 networks counted here."""
    assert main(["model", "summary", "--channels", "8", "--bins", "11", "--dense", "16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # A.2 second: conv 9*8+8, LSTM (11+8)*32+32, C-LSTM 2*9*8*32+8*32+32, dense 7*7*8*16+16, output 16*10+10
    second = 80 + 640 + 4896 + 6288 + 170
    # A.2 fc: conv 80, conv 9*8*8+8, LSTM 640, LSTM (8+8)*32+32, dense (7*7*8+8)*16+16, output 170
    fc = 80 + 584 + 640 + 544 + 6416 + 170
    # The width-matched family: layers of 16 channels (64 gate columns), 8 per modality below the fusion layer and
    # 8 live in a fused layer. Below it a layer-1 group: image or audio -> its 32 columns, its own 8 -> 32
    # (hidden), bias; layer 2 per group: layer-1 group's 8 and its own 8 -> 32. Fused: all 16 or 8 -> 32.
    full_total = (9 * 64 + 9 * 16 * 64 + 11 * 64 + 64) + (2 * 9 * 16 * 64 + 64) + (7 * 7 * 16 * 16 + 16 + 170)
    layer1_split = 9 * 32 + 2 * 9 * 8 * 32 + 11 * 32 + 64  # 5312
    layer2_split, layer2_fused = 2 * 2 * 9 * 8 * 32 + 64, 9 * 16 * 32 + 9 * 8 * 32 + 32
    head_16, head_8 = 7 * 7 * 16 * 16 + 16 + 170, 7 * 7 * 8 * 16 + 16 + 170
    assert {name: v["live"] for name, v in summary.items()} == {
        "initial": 14074, "second": 12602, "fc": 10298, "visual-only": 13722, "audio-only": 13786,
        # (initial fusion is one network in every family: no matched-initial row)
        "matched-second": layer1_split + layer2_fused + head_8, "matched-fc": layer1_split + layer2_split + head_16,
        "a2-second": second, "a2-fc": fc,
    }
    assert {name: v["total"] for name, v in summary.items()} == {
        **{name: 14074 for name in ("initial", "second", "fc", "visual-only", "audio-only")},
        "matched-second": full_total, "matched-fc": full_total,
        "a2-second": second, "a2-fc": fc,
    }
    assert main(["model", "summary", "--channels", "8", "--bins", "11", "--dense", "16"]) == 0
    table = capsys.readouterr().out
    assert "a2, (second, both)" in table and f"{fc:,}" in table and "masked, (fc, both)" in table
    assert "matched, (second, both)" in table


def test_model_summary_rejects_a_bad_width(capsys):
    assert main(["model", "summary", "--channels", "0"]) == 2
    assert "model.channels = 0; expected a positive integer" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path, capsys):
    """--out under a file (not a directory), and /proc (a file system that refuses new files)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    for out, reason in ((blocker / "run", "a-file is not a directory"), (Path("/proc/clstm-jax-run"), "cannot write there")):
        assert main(["sweep", str(ROOT / "sweeps" / "tiny.toml"), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and reason in err and str(out) in err, err
    assert blocker.read_text() == "kept"
    assert list(tmp_path.iterdir()) == [blocker]  # no probe left behind


DATA_COMMANDS = {"sweep", "study", "evaluate", "report", "inspect", "bench"}
PLACEHOLDER = re.compile(r"=[A-Z_]+$")  # a value the text tells the reader to fill in (docs/training.md's tables)


def documented_commands():
    """(file, argv) of every clstm-jax command line in README.md, docs/*.md and the sweeps' comments,
    continuation lines joined, comments and the shell prefix dropped."""
    import shlex

    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "sweeps").glob("*.toml"))]:
        text = path.read_text()
        if path.suffix == ".md":  # only inside code blocks
            text = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S))
        else:  # the files' comment lines
            text = "\n".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
        for command in re.sub(r"\\\n\s*", " ", text).splitlines():
            command = command.split("&& ")[-1].strip()
            if re.match(r"(\.venv/bin/)?clstm-jax ", command):
                argv = shlex.split(command, comments=True)[1:]
                found.append((path.relative_to(ROOT), [a for a in argv if a != "$F"]))
    return found


def test_every_documented_command_parses_and_names_its_data(monkeypatch):
    """Every command line the docs give parses against the CLI as written, its config and --set values
    load, and a command that reads data says where the data is on these machines."""
    from clstm_jax.cli import build_parser
    from clstm_jax.config import load_config

    monkeypatch.chdir(ROOT)  # the docs' paths are relative to the project root
    commands = documented_commands()
    assert len(commands) > 30
    for path, argv in commands:
        args = build_parser().parse_args(argv)  # argparse exits (SystemExit) on anything it does not know
        if argv[0] in DATA_COMMANDS or argv[:2] in (["data", "verify"], ["data", "stats"]):
            assert "--data-dir" in argv, (str(path), argv)
        sets = getattr(args, "set", None)
        if getattr(args, "config", None) and not any(PLACEHOLDER.search(s) for s in sets):
            preset = [f"preset={args.preset}"] if argv[0] == "bench" else []
            load_config(args.config, preset + sets)  # unknown keys and bad values raise


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    """The CLI turns only the project's own error types into one line; anything else is a bug and propagates."""
    import clstm_jax.model.families

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(clstm_jax.model.families, "parameter_summary", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["model", "summary"])
