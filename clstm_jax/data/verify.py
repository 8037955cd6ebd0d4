"""`data verify`: check what is on disk against the canonical datasets."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from clstm_jax.core.errors import DataError
from clstm_jax.data.fsdd import RELEASE, check_format, checksum_problems, parse_manifest, parse_name, pinned_manifest
from clstm_jax.data.mnist import MNIST_SHA256, read_bytes
from clstm_jax.data.paths import MNIST_FILES, mnist_path

# Every FSDD release since v1.0.8 has 50 takes (index 0..49) of each digit per speaker.
TAKES_PER_DIGIT = 50


@dataclass
class VerifyReport:
    """Rows of the printed table and one line per problem found."""

    mnist_rows: list[tuple[str, str]] = field(default_factory=list)  # (file, status)
    fsdd_counts: dict[str, Counter] = field(default_factory=dict)  # speaker -> Counter(digit -> takes)
    problems: list[str] = field(default_factory=list)

    def table(self) -> str:
        lines = ["MNIST (SHA-256 of the decompressed file)"]
        lines += [f"  {name:<26} {status}" for name, status in self.mnist_rows]
        lines.append("FSDD recordings per speaker and digit")
        lines.append("  " + f"{'speaker':<10}" + "".join(f"{d:>4}" for d in range(10)) + f"{'total':>7}")
        for speaker, counts in sorted(self.fsdd_counts.items()):
            row = "".join(f"{counts[d]:>4}" for d in range(10))
            lines.append(f"  {speaker:<10}{row}{sum(counts.values()):>7}")
        lines.append(f"{len(self.problems)} problem(s)" if self.problems else "all files verified")
        return "\n".join(lines)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_mnist(root: Path, report: VerifyReport) -> None:
    for name in MNIST_FILES:
        path = mnist_path(root, name)
        if path is None:
            report.mnist_rows.append((name, "missing"))
            report.problems.append(f"{root / 'mnist' / name}[.gz]: file not found")
            continue
        try:
            digest = sha256(read_bytes(path))
        except DataError as err:
            report.mnist_rows.append((name, "unreadable"))
            report.problems.append(str(err))
            continue
        if digest == MNIST_SHA256[name]:
            report.mnist_rows.append((name, "ok"))
        else:
            report.mnist_rows.append((name, "checksum mismatch"))
            report.problems.append(f"{path}: SHA-256 of the content is {digest}, expected {MNIST_SHA256[name]}")


def verify_fsdd(root: Path, report: VerifyReport) -> None:
    """Every recording: name, format, takes per speaker and digit, and SHA-256 against FSDD v1.0.10's
    shipped list and against the data directory's own fsdd/SHA256SUMS when there is one."""
    recordings = root / "fsdd" / "recordings"
    if not recordings.is_dir():
        report.problems.append(f"{recordings}: directory not found (expected FSDD recordings/)")
        return
    takes: dict[tuple[str, int], set[int]] = {}
    digests: dict[str, str] = {}
    for path in sorted(recordings.iterdir()):
        try:
            name = parse_name(path)
            digests[path.name] = sha256(path.read_bytes())
            check_format(path)
        except DataError as err:
            report.problems.append(str(err))
            continue
        takes.setdefault((name.speaker, name.digit), set()).add(name.index)
    lists = [(f"FSDD {RELEASE}'s checksums", pinned_manifest())]
    if (sums := root / "fsdd" / "SHA256SUMS").exists():
        lists.append((str(sums), parse_manifest(sums.read_text())))
    for source, manifest in lists:
        for kind, names in checksum_problems(digests, manifest).items():
            report.problems += [f"{recordings / name}: {kind} (against {source})" for name in names]
    for speaker in sorted({s for s, _ in takes}):
        counts = Counter({d: len(takes.get((speaker, d), ())) for d in range(10)})
        report.fsdd_counts[speaker] = counts
        for digit in range(10):
            found = takes.get((speaker, digit), set())
            if found != set(range(TAKES_PER_DIGIT)):
                missing = sorted(set(range(TAKES_PER_DIGIT)) - found)
                extra = sorted(found - set(range(TAKES_PER_DIGIT)))
                report.problems.append(
                    f"{recordings}: speaker {speaker}, digit {digit}: {len(found)} takes, expected "
                    f"indices 0..{TAKES_PER_DIGIT - 1}"
                    + (f" (missing {missing[:5]}{'...' if len(missing) > 5 else ''})" if missing else "")
                    + (f" (unexpected {extra[:5]})" if extra else "")
                )


def verify(root: Path) -> VerifyReport:
    """Check the four MNIST files and every FSDD recording under `root`."""
    report = VerifyReport()
    verify_mnist(root, report)
    verify_fsdd(root, report)
    return report
