"""Free Spoken Digit Dataset recordings -> int16 waveforms, validated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from clstm_jax.data import DataError

SAMPLE_RATE = 8000
NAME_PATTERN = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[a-z]+)_(?P<index>[0-9]+)\.wav$")
# The five speakers of FSDD v1.0.9, the release the paper's pair counts match.
PAPER_SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")


@dataclass(frozen=True)
class RecordingName:
    """The fields of a file name `{digit}_{speaker}_{index}.wav`."""

    digit: int
    speaker: str
    index: int


@dataclass(frozen=True)
class Recordings:
    """FSDD recordings in a fixed order (digit, speaker, index).

    waves: list of int16 arrays [length_i]; labels: int [n]; names: RecordingName per wave.
    """

    waves: list[np.ndarray]
    labels: np.ndarray
    names: list[RecordingName]

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


def check_format(path: Path) -> sf._SoundFileInfo:
    """The file's audio info, or a DataError unless it is mono 8 kHz 16-bit PCM."""
    try:
        info = sf.info(str(path))
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


def read_wave(path: Path) -> np.ndarray:
    """int16 samples [length] of one recording, format checked."""
    check_format(path)
    try:
        samples, _ = sf.read(str(path), dtype="int16", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DataError(f"{path}: could not read samples ({err}); the file may be truncated") from None
    return samples


def load_fsdd(root: Path, speakers: tuple[str, ...] | None = None) -> Recordings:
    """Recordings of the chosen speakers (all speakers when None) from `root/fsdd/recordings`."""
    entries = list_recordings(root / "fsdd" / "recordings")
    available = sorted({name.speaker for _, name in entries})
    if speakers is not None:
        unknown = sorted(set(speakers) - set(available))
        if unknown:
            raise DataError(
                f"unknown FSDD speaker(s) {', '.join(unknown)}; the recordings in "
                f"{root / 'fsdd' / 'recordings'} have: {', '.join(available)}"
            )
        entries = [e for e in entries if e[1].speaker in speakers]
    waves = [read_wave(path) for path, _ in entries]
    names = [name for _, name in entries]
    return Recordings(waves, np.array([n.digit for n in names], dtype=np.int32), names)


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
