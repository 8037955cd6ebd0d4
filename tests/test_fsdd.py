import numpy as np
import pytest
import soundfile as sf

from clstm_jax.core.errors import DataError
from clstm_jax.data.fsdd import load_fsdd, pad_front


def recordings_dir(tmp_path, data_dir, names=("0_george_0.wav", "1_theo_3.wav")):
    """A temporary copy of a few real recordings, laid out as a data directory."""
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for name in names:
        (rec / name).write_bytes((data_dir / "fsdd" / "recordings" / name).read_bytes())
    return rec


def test_real_fsdd_shapes_speakers_and_lengths(data_dir):
    everyone = load_fsdd(data_dir)
    assert len(everyone.waves) == 3000
    assert (everyone.lengths.min(), everyone.lengths.max()) == (1148, 18262)
    assert np.bincount(everyone.labels).tolist() == [300] * 10
    five = load_fsdd(data_dir, ("george", "jackson", "nicolas", "theo", "yweweler"))
    assert len(five.waves) == 2500 and {n.speaker for n in five.names} == {"george", "jackson", "nicolas", "theo", "yweweler"}


def test_waves_match_the_file_samples(data_dir):
    path = data_dir / "fsdd" / "recordings" / "3_jackson_7.wav"
    expected, _ = sf.read(str(path), dtype="int16")
    rec = load_fsdd(data_dir, ("jackson",))
    found = [w for w, n in zip(rec.waves, rec.names) if (n.digit, n.index) == (3, 7)]
    np.testing.assert_array_equal(found[0], expected)


def test_unknown_speaker_lists_the_available_ones(data_dir):
    with pytest.raises(DataError, match="unknown FSDD speaker.*nobody.*george, jackson, lucas"):
        load_fsdd(data_dir, ("george", "nobody"))


def test_stereo_recording_is_named(tmp_path, data_dir):
    rec = recordings_dir(tmp_path, data_dir)
    sf.write(rec / "2_george_0.wav", np.zeros((100, 2), np.int16), 8000, subtype="PCM_16")
    with pytest.raises(DataError, match=r"2_george_0.wav: 2 channels \(expected 1, mono\)"):
        load_fsdd(tmp_path)


def test_wrong_sample_rate_is_named(tmp_path, data_dir):
    rec = recordings_dir(tmp_path, data_dir)
    sf.write(rec / "2_george_0.wav", np.zeros(100, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=r"2_george_0.wav: sample rate 16000 Hz \(expected 8000\)"):
        load_fsdd(tmp_path)


def test_stray_file_is_named(tmp_path, data_dir):
    rec = recordings_dir(tmp_path, data_dir)
    (rec / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes.txt: unexpected file in recordings/"):
        load_fsdd(tmp_path)


def test_truncated_wav_is_named(tmp_path, data_dir):
    rec = recordings_dir(tmp_path, data_dir)
    (rec / "0_george_0.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(DataError, match=r"0_george_0.wav: not a readable WAV file"):
        load_fsdd(tmp_path)


def test_missing_recordings_directory(tmp_path):
    with pytest.raises(DataError, match=r"recordings: directory not found"):
        load_fsdd(tmp_path)


def test_pad_front_right_aligns_with_silent_padding_and_keeps_the_end_of_longer_recordings():
    waves, lengths = pad_front([np.array([1, 2, 3], np.int16), np.array([4], np.int16),
                                np.array([5, 6, 7, 8, 9, 10, 11], np.int16)], 5)
    np.testing.assert_array_equal(waves, [[0, 0, 1, 2, 3], [0, 0, 0, 0, 4], [7, 8, 9, 10, 11]])
    np.testing.assert_array_equal(lengths, [3, 1, 5])
    with pytest.raises(DataError, match="pad length 0: expected a positive number"):
        pad_front([np.ones(6, np.int16)], 0)
