"""On-device batch features: white noise at a chosen SNR, then the STFT magnitude.

Everything here is a pure, jittable function of arrays, vmappable over
per-model SNRs and keys, so a training step draws fresh noise with no host
round trip. SNRs are linear power ratios; `orig` (no noise) is `inf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.core.choices import Compression, Normalization, Window, check_fields

UTTERANCE_VARIANCE_FLOOR = 1e-4  # normalization "utterance": added to each bin's variance (a constant bin stays finite)
LOG_FLOOR = 1e-3  # compression "log": log(LOG_FLOOR + magnitude); FSDD's median clean magnitude is about 0.02


@dataclass(frozen=True)
class FeatureConfig:
    """How a padded waveform becomes the spectrogram the model reads."""

    window_length: int = 400  # STFT window and FFT size, in samples (201 frequency bins)
    hop_length: int = 200  # samples between frame starts; no centring, so frames = 1 + (L - window) // hop
    window: Window = "hann"  # window function: "hann" (periodic) or "rect"
    compression: Compression = "log1p"  # "none" (magnitude), "log1p" (log(1 + magnitude); silence stays 0) or "log" (log(1e-3 + magnitude): docs/data.md)
    normalization: Normalization = "none"  # "none", "max" (each spectrogram / its maximum), "standardize" (per bin, clean training statistics: BinStats) or "utterance" (per bin, each recording's own frames): docs/data.md

    def __post_init__(self):
        check_fields(self, "features")
        if self.window_length < 2 or self.hop_length < 1:
            raise ValueError(
                f"features.window_length = {self.window_length}, hop_length = {self.hop_length}; "
                "expected window_length >= 2 and hop_length >= 1"
            )

    @property
    def n_bins(self) -> int:
        return self.window_length // 2 + 1

    def n_frames(self, pad_length: int) -> int:
        """Frames of a `pad_length`-sample waveform (no centring)."""
        if pad_length < self.window_length:
            raise ValueError(f"pad length {pad_length} is shorter than the STFT window ({self.window_length})")
        return 1 + (pad_length - self.window_length) // self.hop_length


def window_function(cfg: FeatureConfig) -> np.ndarray:
    """The analysis window [window_length]; periodic Hann as in torch.hann_window."""
    n = np.arange(cfg.window_length)
    if cfg.window == "hann":
        return (0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.window_length)).astype(np.float32)
    return np.ones(cfg.window_length, np.float32)


def stft_magnitude(waves: jax.Array, cfg: FeatureConfig) -> jax.Array:
    """|STFT| of waveforms [..., L] -> [..., frames, bins], no centring."""
    n_frames = cfg.n_frames(waves.shape[-1])
    starts = np.arange(n_frames)[:, None] * cfg.hop_length
    frames = waves[..., starts + np.arange(cfg.window_length)]  # (..., frames, window)
    return jnp.abs(jnp.fft.rfft(frames * window_function(cfg), axis=-1))  # (..., frames, bins)


class BinStats(NamedTuple):
    """Per-bin mean and standard deviation float32 [bins] of the compressed spectrogram of the clean training split.

    `normalization = "standardize"` maps each bin to (x - mean) / std. A run
    computes them once (`bin_stats`), stores them (feature_stats.npz) and
    evaluates with the stored values.
    """

    mean: jax.Array
    std: jax.Array


def compressed(waves: jax.Array, cfg: FeatureConfig) -> jax.Array:
    """|STFT| of waveforms [..., L], then the compression -> [..., frames, bins]."""
    spec = stft_magnitude(waves, cfg)
    if cfg.compression == "log1p":
        return jnp.log1p(spec)
    return jnp.log(LOG_FLOOR + spec) if cfg.compression == "log" else spec


def bin_stats(waves: np.ndarray, lengths: np.ndarray, cfg: FeatureConfig, chunk: int = 256) -> BinStats:
    """BinStats of clean int16 recordings [n, L] (front-padded; `lengths` samples each).

    Mean and (population) standard deviation over every frame that reaches
    into its recording: the silent padding in front would otherwise weigh
    short recordings down. Sums are accumulated in float64.
    """
    length = waves.shape[1]
    features = jax.jit(lambda w: compressed(waves_to_float(w), cfg))
    total, total_sq, count = np.zeros(cfg.n_bins), np.zeros(cfg.n_bins), 0
    for start in range(0, len(waves), chunk):
        spec = np.asarray(features(waves[start : start + chunk]), np.float64)  # (n, frames, bins)
        in_recording = np.asarray(frames_in_recording(lengths[start : start + chunk], length, cfg))  # (n, frames)
        picked = spec[in_recording]  # (frames kept, bins)
        total, total_sq, count = total + picked.sum(0), total_sq + (picked**2).sum(0), count + len(picked)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    if not np.all(std > 0):
        raise ValueError(f"bins {np.flatnonzero(std == 0).tolist()} are constant over the training recordings; "
                         "they cannot be standardised (expected recordings with energy in every bin)")
    return BinStats(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32))


def save_bin_stats(path: Path, stats: BinStats) -> None:
    """Write BinStats to an .npz file atomically."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mean=np.asarray(stats.mean), std=np.asarray(stats.std))
    tmp.replace(path)


def load_bin_stats(path: Path) -> BinStats:
    with np.load(path) as z:
        return BinStats(jnp.asarray(z["mean"]), jnp.asarray(z["std"]))


def frames_in_recording(lengths: jax.Array, length: int, cfg: FeatureConfig) -> jax.Array:
    """bool [..., frames]: the frames that reach into a recording of `lengths` samples, end-aligned in `length`."""
    frame_end = jnp.arange(cfg.n_frames(length)) * cfg.hop_length + cfg.window_length
    return frame_end > (length - jnp.asarray(lengths))[..., None]


def spectrogram(waves: jax.Array, cfg: FeatureConfig, stats: BinStats | None = None,
                lengths: jax.Array | None = None) -> jax.Array:
    """Model features of waveforms [..., L]: |STFT|, then compression and normalisation -> [..., frames, bins].

    stats: the training split's BinStats, needed when normalization = "standardize".
    lengths: samples of each recording [...], needed when normalization = "utterance": each bin is
    standardised over the recording's own frames (a stationary noise floor becomes its mean and goes),
    and frames of pure padding become 0.
    """
    spec = compressed(waves, cfg)
    if cfg.normalization == "max":
        peak = spec.max(axis=(-2, -1), keepdims=True)
        spec = spec / jnp.where(peak > 0, peak, 1.0)
    elif cfg.normalization == "standardize":
        if stats is None:
            raise ValueError('features.normalization = "standardize" needs the per-bin statistics of the '
                             "clean training split (features.bin_stats); none were given")
        spec = (spec - stats.mean) / stats.std
    elif cfg.normalization == "utterance":
        if lengths is None:
            raise ValueError('features.normalization = "utterance" needs the length of each recording; none was given')
        inside = frames_in_recording(lengths, waves.shape[-1], cfg)[..., None]  # (..., frames, 1)
        count = jnp.maximum(inside.sum(axis=-2, keepdims=True), 1)
        mean = jnp.where(inside, spec, 0.0).sum(axis=-2, keepdims=True) / count
        var = jnp.where(inside, (spec - mean) ** 2, 0.0).sum(axis=-2, keepdims=True) / count
        spec = jnp.where(inside, (spec - mean) / jnp.sqrt(var + UTTERANCE_VARIANCE_FLOOR), 0.0)
    return spec


def add_noise(key: jax.Array, x: jax.Array, snr: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """One example plus white Gaussian noise of variance mean(x^2) / snr.

    x: any shape (one example). mask: bool like x, the samples that belong to
    the signal (power is measured over them and only they get noise); None
    means all. snr = inf returns x bit-identical.
    """
    mask = jnp.ones(x.shape, bool) if mask is None else mask
    power = jnp.sum(jnp.where(mask, x * x, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    std = jnp.sqrt(power / snr)
    noise = std * jax.random.normal(key, x.shape, x.dtype)
    return jnp.where(jnp.isinf(snr), x, jnp.where(mask, x + noise, x))


def images_to_float(images: jax.Array) -> jax.Array:
    """uint8 pixels -> float32 in [0, 1]."""
    return jnp.asarray(images).astype(jnp.float32) / 255.0


def waves_to_float(waves: jax.Array) -> jax.Array:
    """int16 samples -> float32 in [-1, 1)."""
    return jnp.asarray(waves).astype(jnp.float32) / 32768.0


def make_batch(
    key: jax.Array,
    images: jax.Array,
    waves: jax.Array,
    wave_lengths: jax.Array,
    audio_snr: jax.Array,
    visual_snr: jax.Array,
    cfg: FeatureConfig,
    stats: BinStats | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Clean pairs -> noisy model inputs, on device.

    images: uint8 [B, 28, 28]; waves: int16 [B, L], front-padded; wave_lengths:
    int32 [B]; audio_snr, visual_snr: scalars (inf = orig); stats: see
    `spectrogram`. Noise is added to
    the recording only (the padding stays silent), with power measured on the
    clean recording. Returns (images float32 [B, 28, 28] from [0, 1] plus
    noise, spectrograms float32 [B, frames, bins]).
    """
    image_key, audio_key = jax.random.split(key)
    batch, length = waves.shape
    clean_images = images_to_float(images)  # (B, 28, 28)
    clean_waves = waves_to_float(waves)  # (B, L)
    in_recording = jnp.arange(length)[None, :] >= (length - wave_lengths)[:, None]  # (B, L)
    noisy = jax.vmap(add_noise, in_axes=(0, 0, None, None))
    noisy_images = noisy(jax.random.split(image_key, batch), clean_images, visual_snr, None)
    noisy_waves = jax.vmap(add_noise, in_axes=(0, 0, None, 0))(
        jax.random.split(audio_key, batch), clean_waves, audio_snr, in_recording
    )
    return noisy_images, spectrogram(noisy_waves, cfg, stats, wave_lengths)
