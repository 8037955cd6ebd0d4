"""Free Spoken Digit Dataset recordings -> int16 waveforms, validated."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from clstm_jax.core import interrupts
from clstm_jax.core.errors import DataError

SAMPLE_RATE = 8000
NAME_PATTERN = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[a-z]+)_(?P<index>[0-9]+)\.wav$")
# The five speakers of FSDD v1.0.9, the release the paper's pair counts match.
PAPER_SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")
RELEASE = "v1.0.10"  # the release whose per-recording SHA-256 list ships with the package


@dataclass(frozen=True)
class RecordingName:
    """The fields of a file name `{digit}_{speaker}_{index}.wav`."""

    digit: int
    speaker: str
    index: int


@dataclass(frozen=True)
class Recordings:
    """FSDD recordings in a fixed order (digit, speaker, index).

    waves: list of int16 arrays [length_i]; labels: int [n]; names: RecordingName per wave;
    digests: SHA-256 of each file as read.
    """

    waves: list[np.ndarray]
    labels: np.ndarray
    names: list[RecordingName]
    digests: list[str]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(w) for w in self.waves], dtype=np.int32)


def parse_name(path: Path) -> RecordingName:
    """Fields of a recording's file name, or a DataError naming the stray file."""
    match = NAME_PATTERN.match(path.name)
    if match is None:
        raise DataError(
            f"{path}: unexpected file in recordings/ (expected names like 3_george_12.wav: "
            "{digit}_{speaker}_{index}.wav); move it out of the directory"
        )
    return RecordingName(int(match["digit"]), match["speaker"], int(match["index"]))


def list_recordings(recordings_dir: Path) -> list[tuple[Path, RecordingName]]:
    """Every recording in the directory, sorted by (digit, speaker, index); stray files are errors."""
    if not recordings_dir.is_dir():
        raise DataError(f"{recordings_dir}: directory not found (expected FSDD recordings/ with .wav files)")
    entries = [(path, parse_name(path)) for path in recordings_dir.iterdir()]
    if not entries:
        raise DataError(f"{recordings_dir}: no recordings (expected {{digit}}_{{speaker}}_{{index}}.wav files)")
    return sorted(entries, key=lambda e: (e[1].digit, e[1].speaker, e[1].index))


def pinned_manifest() -> dict[str, str]:
    """{recording file name: SHA-256} of FSDD v1.0.10, shipped with the package."""
    return parse_manifest(resources.files("clstm_jax.data").joinpath(f"fsdd_{RELEASE}.sha256").read_text())


def parse_manifest(text: str) -> dict[str, str]:
    """Parse `sha256sum` output ("<hash>  recordings/<name>") into {name: hash}."""
    manifest = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            manifest[Path(name.strip()).name] = digest
    return manifest


@interrupts.deferred()  # as read_wave
def check_format(path: Path, source=None) -> sf._SoundFileInfo:
    """The file's audio info, or a DataError unless it is mono 8 kHz 16-bit PCM.

    source: the file's bytes as a file object, when already read (else `path` is opened).
    """
    try:
        info = sf.info(source if source is not None else str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DataError(f"{path}: not a readable WAV file ({err}); expected mono 8 kHz 16-bit PCM") from None
    problems = []
    if info.channels != 1:
        problems.append(f"{info.channels} channels (expected 1, mono)")
    if info.samplerate != SAMPLE_RATE:
        problems.append(f"sample rate {info.samplerate} Hz (expected {SAMPLE_RATE})")
    if info.subtype != "PCM_16":
        problems.append(f"sample format {info.subtype} (expected PCM_16)")
    if info.frames == 0:
        problems.append("no samples")
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    return info


@interrupts.deferred()  # libsndfile reads through Python callbacks, where an interrupt would be printed and dropped
def read_wave(path: Path) -> tuple[np.ndarray, str]:
    """(int16 samples [length], SHA-256 of the file) of one recording, format checked; the file is read once."""
    data = path.read_bytes()
    check_format(path, io.BytesIO(data))
    try:
        samples, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DataError(f"{path}: could not read samples ({err}); the file may be truncated") from None
    return samples, hashlib.sha256(data).hexdigest()


def checksum_problems(digests: dict[str, str], manifest: dict[str, str], speakers: set[str] | None = None) -> dict:
    """{"altered or truncated": [...], "missing": [...], "not in the release": [...]}: file names, sorted.

    digests: {file name: SHA-256} of the files present; manifest: the expected list. speakers: compare
    only these speakers' recordings (None: all).
    """
    if speakers is not None:
        manifest = {n: d for n, d in manifest.items() if n.split("_")[1] in speakers}
    return {
        "altered or truncated": sorted(n for n, d in digests.items() if n in manifest and manifest[n] != d),
        "missing": sorted(set(manifest) - set(digests)),
        "not in the release": sorted(set(digests) - set(manifest)),
    }


def describe_problems(problems: dict, shown: int = 5) -> str:
    """'altered or truncated: a.wav, b.wav; missing: c.wav (and 3 more)', empty problems left out."""
    parts = []
    for kind, names in problems.items():
        if names:
            more = f" (and {len(names) - shown} more)" if len(names) > shown else ""
            parts.append(f"{kind} ({len(names)}): {', '.join(names[:shown])}{more}")
    return "; ".join(parts)


def load_fsdd(root: Path, speakers: tuple[str, ...] | None = None, verify: bool = True) -> Recordings:
    """Recordings of the chosen speakers (all speakers when None) from `root/fsdd/recordings`.

    verify: refuse recordings that are not FSDD v1.0.10's (altered, truncated, missing or extra files
    of the chosen speakers; with speakers None, of the whole release), from the SHA-256 of the bytes
    read, with one DataError naming them.
    """
    recordings_dir = root / "fsdd" / "recordings"
    entries = list_recordings(recordings_dir)
    available = sorted({name.speaker for _, name in entries})
    if speakers is not None:
        unknown = sorted(set(speakers) - set(available))
        if unknown:
            raise DataError(
                f"unknown FSDD speaker(s) {', '.join(unknown)}; the recordings in "
                f"{root / 'fsdd' / 'recordings'} have: {', '.join(available)}"
            )
        entries = [e for e in entries if e[1].speaker in speakers]
    waves, digests = zip(*(read_wave(path) for path, _ in entries))
    names = [name for _, name in entries]
    if verify:
        used = {path.name: digest for (path, _), digest in zip(entries, digests)}
        problems = checksum_problems(used, pinned_manifest(), set(speakers) if speakers is not None else None)
        if any(problems.values()):
            raise DataError(
                f"{recordings_dir}: the recordings are not FSDD {RELEASE}'s: {describe_problems(problems)}. "
                "`clstm-jax data verify` lists every file; fetch the data again, or set data.verify = false "
                "to train on your own recordings"
            )
    return Recordings(list(waves), np.array([n.digit for n in names], dtype=np.int32), names, list(digests))


def pad_front(waves: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-length waveforms, end-aligned: (int16 [n, length], int32 [n] samples of each recording kept).

    A shorter recording gets zeros in front (silent padding); a longer one
    keeps its last `length` samples, so every recording ends on the last frame.
    """
    if length < 1:
        raise DataError(f"pad length {length}: expected a positive number of samples")
    out = np.zeros((len(waves), length), dtype=np.int16)
    for row, wave in zip(out, waves):
        kept = wave[-length:]
        row[length - len(kept) :] = kept
    return out, np.array([min(len(w), length) for w in waves], np.int32)
