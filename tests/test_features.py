import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clstm_jax.core.errors import ConfigError
from clstm_jax.core.snr import ORIG, snr_label, snr_value
from clstm_jax.data.features import (
    BinStats,
    FeatureConfig,
    add_noise,
    bin_stats,
    images_to_float,
    make_batch,
    spectrogram,
    stft_magnitude,
    waves_to_float,
)


def numpy_stft(wave, window=400, hop=200):
    """Reference |STFT|: a plain loop, float64, periodic Hann = symmetric Hann of length N+1 minus its last point."""
    hann = np.hanning(window + 1)[:-1]
    frames = [wave[start : start + window] * hann for start in range(0, len(wave) - window + 1, hop)]
    return np.array([np.abs(np.fft.rfft(f)) for f in frames])


@pytest.fixture(scope="module")
def clean(paper_splits):
    """A fixed batch of 256 clean pairs from the test split."""
    split = paper_splits["test"]
    rng = np.random.default_rng(0)
    img, aud = rng.integers(0, len(split.images), 256), rng.integers(0, len(split.waves), 256)
    return split.images[img], split.waves[aud], split.wave_lengths[aud]


def test_stft_matches_numpy(clean):
    _, waves, _ = clean
    floats = waves[:32].astype(np.float64) / 32768
    got = np.asarray(stft_magnitude(jnp.asarray(floats, jnp.float32), FeatureConfig()))
    reference = np.stack([numpy_stft(w) for w in floats])
    assert got.shape == reference.shape == (32, 90, 201)
    assert np.abs(got - reference).max() < 1e-4


def test_18262_samples_make_90_frames_of_201_bins():
    cfg = FeatureConfig()
    assert cfg.n_frames(18262) == 90 and cfg.n_bins == 201
    assert stft_magnitude(jnp.zeros((2, 18262)), cfg).shape == (2, 90, 201)


def test_compression_and_normalisation_options(clean):
    waves = jnp.asarray(clean[1][:8], jnp.float32) / 32768
    magnitude = stft_magnitude(waves, FeatureConfig())
    np.testing.assert_allclose(spectrogram(waves, FeatureConfig(compression="none")), magnitude)
    np.testing.assert_allclose(spectrogram(waves, FeatureConfig()), np.log1p(magnitude), rtol=1e-6)
    np.testing.assert_allclose(spectrogram(waves, FeatureConfig(compression="log")), np.log(1e-3 + np.asarray(magnitude, np.float64)),
                               rtol=1e-5, atol=1e-6)
    peaks = spectrogram(waves, FeatureConfig(normalization="max")).max(axis=(1, 2))
    np.testing.assert_allclose(peaks, 1.0, rtol=1e-6)
    rect = np.asarray(stft_magnitude(waves[:1], FeatureConfig(window="rect")))[0]
    reference = np.array([np.abs(np.fft.rfft(np.asarray(waves[0], np.float64)[s : s + 400])) for s in range(0, 18262 - 399, 200)])
    assert np.abs(rect - reference).max() < 1e-4


def test_bad_feature_options_are_named():
    with pytest.raises(ValueError, match="features.window = 'hamming': expected one of hann, rect"):
        FeatureConfig(window="hamming")
    with pytest.raises(ValueError, match="features.compression"):
        FeatureConfig(compression="log10")


def test_one_snr_parser_for_config_values_and_command_line_text():
    assert [snr_value(x) for x in ("orig", " ORIG ", ORIG, "0.25", 0.25, 2)] == [ORIG, ORIG, ORIG, 0.25, 0.25, 2.0]
    for bad, expected in (("0", "a positive number"), ("-1", "a positive number"), ("inf", "a positive number"),
                          ("loud", "a positive number or 'orig'"), (0.0, "a positive number"), (float("nan"), "")):
        with pytest.raises(ConfigError, match=f"^sweep.audio_snr = {bad!r}: expected {expected}"):
            snr_value(bad, "sweep.audio_snr")
    assert [snr_label(x) for x in (ORIG, 0.5, 2.0, 0.0625)] == ["orig", "0.5", "2", "0.0625"]


@pytest.mark.parametrize("snr", [4.0, 0.5, 0.0625])
def test_measured_image_snr_is_within_5_percent(clean, snr):
    images = jnp.asarray(clean[0], jnp.float32) / 255  # (256, 28, 28)
    keys = jax.random.split(jax.random.key(3), len(images))
    noisy = jax.vmap(add_noise, in_axes=(0, 0, None))(keys, images, snr)
    noise = np.asarray(noisy - images, np.float64)
    signal_power = np.mean(np.asarray(images, np.float64) ** 2, axis=(1, 2))
    measured = np.mean(signal_power) / np.mean(np.mean(noise**2, axis=(1, 2)))
    assert abs(measured / snr - 1) < 0.05


@pytest.mark.parametrize("snr", [2.0, 0.25])
def test_measured_audio_snr_is_within_5_percent_and_padding_stays_silent(clean, snr):
    _, waves, lengths = clean
    floats = jnp.asarray(waves, jnp.float32) / 32768
    mask = np.arange(waves.shape[1])[None, :] >= (waves.shape[1] - lengths)[:, None]
    keys = jax.random.split(jax.random.key(4), len(waves))
    noisy = np.asarray(jax.vmap(add_noise, in_axes=(0, 0, None, 0))(keys, floats, snr, jnp.asarray(mask)))
    assert np.all(noisy[~mask] == 0)  # front padding untouched
    clean64 = np.asarray(floats, np.float64)
    ratios = [
        np.mean(clean64[i][mask[i]] ** 2) / np.mean((noisy[i][mask[i]] - clean64[i][mask[i]]) ** 2)
        for i in range(len(waves))
    ]
    assert abs(np.mean(np.array(ratios) ** -1) * snr - 1) < 0.05


def test_orig_leaves_inputs_bit_identical(clean):
    images, waves, lengths = clean
    cfg = FeatureConfig()
    noisy_images, spec = make_batch(jax.random.key(0), images, waves, lengths, ORIG, ORIG, cfg)
    np.testing.assert_array_equal(noisy_images, images_to_float(images))
    np.testing.assert_array_equal(spec, spectrogram(waves_to_float(waves), cfg))
    # The conversions themselves are the exact ones (to float32 rounding).
    np.testing.assert_allclose(images_to_float(images), images / 255.0, rtol=2e-7)
    np.testing.assert_allclose(waves_to_float(waves), waves / 32768.0, rtol=0, atol=0)
    x = jnp.linspace(-1, 1, 50)
    np.testing.assert_array_equal(add_noise(jax.random.key(0), x, jnp.inf), x)


def test_batch_is_deterministic_per_key_and_vmaps_over_model_snrs(clean):
    images, waves, lengths = clean
    cfg = FeatureConfig()
    batch = jax.jit(make_batch, static_argnums=6)
    a = batch(jax.random.key(5), images[:16], waves[:16], lengths[:16], 0.5, 0.25, cfg)
    b = batch(jax.random.key(5), images[:16], waves[:16], lengths[:16], 0.5, 0.25, cfg)
    c = batch(jax.random.key(6), images[:16], waves[:16], lengths[:16], 0.5, 0.25, cfg)
    assert a[0].shape == (16, 28, 28) and a[1].shape == (16, 90, 201)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)
    # One program over per-model SNRs (models = 3) equals three separate calls.
    audio_snrs, visual_snrs = jnp.array([2.0, 0.5, jnp.inf]), jnp.array([1.0, 0.25, 0.125])
    keys = jax.random.split(jax.random.key(7), 3)
    stacked = jax.vmap(make_batch, in_axes=(0, None, None, None, 0, 0, None))(
        keys, images[:16], waves[:16], lengths[:16], audio_snrs, visual_snrs, cfg
    )
    for m in range(3):
        single = make_batch(keys[m], images[:16], waves[:16], lengths[:16], audio_snrs[m], visual_snrs[m], cfg)
        np.testing.assert_allclose(stacked[0][m], single[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(stacked[1][m], single[1], rtol=1e-5, atol=1e-5)


def test_bin_stats_match_a_numpy_loop_over_the_frames_inside_each_recording():
    """Per-bin mean and std of log1p|STFT| over every frame that reaches into its (unpadded) recording."""
    rng = np.random.default_rng(3)
    length, lengths = 1400, np.array([1400, 700, 401, 950])
    waves = np.zeros((4, length), np.int16)
    for row, n in zip(waves, lengths):
        row[length - n :] = rng.integers(-8000, 8000, n)
    cfg = FeatureConfig()
    got = bin_stats(waves, lengths, cfg, chunk=3)  # two chunks
    kept = []
    for wave, n in zip(waves.astype(np.float64) / 32768, lengths):
        for frame, start in zip(np.log1p(numpy_stft(wave)), range(0, length - 400 + 1, 200)):
            if start + 400 > length - n:  # the frame ends inside the recording
                kept.append(frame)
    kept = np.array(kept)
    assert len(kept) == 6 + 4 + 3 + 5  # frames end at 400, 600, ..., 1400; the recordings start at 0, 700, 999, 450
    np.testing.assert_allclose(got.mean, kept.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.std, kept.std(0), rtol=1e-4, atol=1e-6)


def test_standardize_uses_the_given_statistics_and_refuses_to_run_without_them(clean):
    waves = jnp.asarray(clean[1][:4], jnp.float32) / 32768
    cfg = FeatureConfig(normalization="standardize")
    stats = BinStats(jnp.linspace(0.1, 0.5, 201), jnp.linspace(2.0, 3.0, 201))
    expected = (np.log1p(np.asarray(stft_magnitude(waves, cfg))) - np.asarray(stats.mean)) / np.asarray(stats.std)
    np.testing.assert_allclose(spectrogram(waves, cfg, stats), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs the per-bin statistics of the clean training split"):
        spectrogram(waves, cfg)


def test_constant_bins_cannot_be_standardised():
    with pytest.raises(ValueError, match="constant over the training recordings"):
        bin_stats(np.zeros((2, 800), np.int16), np.array([800, 800]), FeatureConfig())


def test_utterance_normalisation_standardises_each_bin_over_the_recordings_own_frames():
    rng = np.random.default_rng(5)
    length, lengths = 1400, np.array([1400, 700, 950])
    waves = np.zeros((3, length), np.float32)
    for row, n in zip(waves, lengths):
        row[length - n :] = rng.normal(0, 0.1, n)
    cfg = FeatureConfig(compression="log", normalization="utterance")
    got = np.asarray(spectrogram(jnp.asarray(waves), cfg, lengths=jnp.asarray(lengths)))
    for wave, n, out in zip(waves.astype(np.float64), lengths, got):
        frames = np.log(1e-3 + numpy_stft(wave))  # (6, 201)
        inside = np.array([start + 400 > length - n for start in range(0, length - 400 + 1, 200)])
        mean, var = frames[inside].mean(0), frames[inside].var(0)
        expected = np.where(inside[:, None], (frames - mean) / np.sqrt(var + 1e-4), 0.0)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="needs the length of each recording"):
        spectrogram(jnp.asarray(waves), cfg)
