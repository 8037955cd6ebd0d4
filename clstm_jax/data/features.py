"""On-device batch features: white noise at a chosen SNR, then the STFT magnitude.

Everything here is a pure, jittable function of arrays, vmappable over
per-model SNRs and keys, so a training step draws fresh noise with no host
round trip. SNRs are linear power ratios; `orig` (no noise) is `inf`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

ORIG = math.inf  # the SNR that means "no noise"
WINDOWS = ("hann", "rect")
COMPRESSIONS = ("none", "log1p")
NORMALIZATIONS = ("none", "max")


def parse_snr(value: str | float) -> float:
    """An SNR from text or a number: 'orig' -> inf; anything else must be a positive number."""
    if isinstance(value, str) and value.strip().lower() == "orig":
        return ORIG
    try:
        snr = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"SNR {value!r} is not a number; expected a positive number or 'orig'") from None
    if not snr > 0:
        raise ValueError(f"SNR {value!r} must be positive (a linear power ratio) or 'orig'")
    return snr


@dataclass(frozen=True)
class FeatureConfig:
    """How a padded waveform becomes the spectrogram the model reads."""

    window_length: int = 400  # STFT window and FFT size, in samples (201 frequency bins)
    hop_length: int = 200  # samples between frame starts; no centring, so frames = 1 + (L - window) // hop
    window: str = "hann"  # window function: "hann" (periodic) or "rect"
    compression: str = "log1p"  # "none" (magnitude) or "log1p" (log(1 + magnitude); silence stays 0)
    normalization: str = "none"  # "none" or "max" (each spectrogram divided by its own maximum)

    def __post_init__(self):
        for field, value, allowed in (
            ("window", self.window, WINDOWS),
            ("compression", self.compression, COMPRESSIONS),
            ("normalization", self.normalization, NORMALIZATIONS),
        ):
            if value not in allowed:
                raise ValueError(f"features.{field} = {value!r}; expected one of {', '.join(allowed)}")
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


def spectrogram(waves: jax.Array, cfg: FeatureConfig) -> jax.Array:
    """Model features of waveforms [..., L]: |STFT|, then compression and normalisation -> [..., frames, bins]."""
    spec = stft_magnitude(waves, cfg)
    if cfg.compression == "log1p":
        spec = jnp.log1p(spec)
    if cfg.normalization == "max":
        peak = spec.max(axis=(-2, -1), keepdims=True)
        spec = spec / jnp.where(peak > 0, peak, 1.0)
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
) -> tuple[jax.Array, jax.Array]:
    """Clean pairs -> noisy model inputs, on device.

    images: uint8 [B, 28, 28]; waves: int16 [B, L], front-padded; wave_lengths:
    int32 [B]; audio_snr, visual_snr: scalars (inf = orig). Noise is added to
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
    return noisy_images, spectrogram(noisy_waves, cfg)
