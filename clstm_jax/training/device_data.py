"""The data as a run uses it: checked against the model's shapes, on device, with its feature statistics."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.config import Config
from clstm_jax.core import distributed
from clstm_jax.core.errors import ConfigError
from clstm_jax.data.features import BinStats, bin_stats, load_bin_stats, save_bin_stats
from clstm_jax.data.paths import resolve_data_dir
from clstm_jax.data.splits import DataSet, PairTable, Split, load_dataset, pair_table
from clstm_jax.training.run_dir import RunFiles


class SplitArrays(NamedTuple):
    """A split on device: images uint8 (N, 28, 28), waves int16 (M, L), wave_lengths int32 (M,), its PairTable,
    and the training split's BinStats its spectrograms are standardised with (None unless
    features.normalization = "standardize")."""

    images: jax.Array
    waves: jax.Array
    wave_lengths: jax.Array
    table: PairTable
    stats: BinStats | None = None


def split_arrays(split: Split, stats: BinStats | None = None) -> SplitArrays:
    """The split on device, after chex checks the layout every program assumes (clstm_jax.data.splits.Split)."""
    arrays = (split.images, split.image_labels, split.waves, split.wave_lengths, split.wave_labels)
    chex.assert_rank(arrays, (3, 1, 2, 1, 1))
    chex.assert_type(arrays, (np.uint8, np.int32, np.int16, np.int32, np.int32))
    chex.assert_equal_shape_prefix((split.images, split.image_labels), 1)
    chex.assert_equal_shape_prefix((split.waves, split.wave_lengths, split.wave_labels), 1)
    return SplitArrays(
        jnp.asarray(split.images), jnp.asarray(split.waves), jnp.asarray(split.wave_lengths),
        pair_table(split.image_labels, split.wave_labels), stats,
    )


def feature_stats(config: Config, train: Split) -> BinStats | None:
    """The clean training split's per-bin statistics when the features are standardised, else None."""
    if config.features.normalization != "standardize":
        return None
    return bin_stats(train.waves, train.wave_lengths, config.features)


def run_feature_stats(files: RunFiles, config: Config, train: Split) -> BinStats | None:
    """feature_stats of a run: read from the run directory when stored there, else computed and stored
    (process 0 writes), so that evaluation standardises with exactly the training run's values."""
    if config.features.normalization != "standardize":
        return None
    if files.feature_stats.exists():
        return load_bin_stats(files.feature_stats)
    stats = feature_stats(config, train)
    if distributed.is_primary():
        save_bin_stats(files.feature_stats, stats)
    return stats


def check_shapes(config: Config, pad_length: int) -> None:
    """The model's frames and bins must be what the features produce; raised before training."""
    try:
        frames, bins = config.features.n_frames(pad_length), config.features.n_bins
    except ValueError as err:  # recordings shorter than the window
        raise ConfigError(f"data.pad_length: {err}") from None
    if (config.model.frames, config.model.bins) != (frames, bins):
        raise ConfigError(
            f"model.frames = {config.model.frames}, model.bins = {config.model.bins}, but the features give "
            f"{frames} frames of {bins} bins ({pad_length}-sample recordings, window {config.features.window_length}, "
            f"hop {config.features.hop_length}); set model.frames = {frames} and model.bins = {bins}"
        )


def load_checked_data(config: Config, data_dir: str | None = None) -> DataSet:
    """The config's splits and their identity, after checking that the model's frames and bins match the features."""
    root = resolve_data_dir(data_dir or config.data.data_dir or None)
    data = load_dataset(root, config.data.speakers or None, config.data.split_seed, config.data.pad_length or None,
                        config.data.verify)
    check_shapes(config, data.identity["pad_length"])
    return data
