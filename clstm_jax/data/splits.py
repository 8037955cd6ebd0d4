"""The paper's splits and the same-label pair sampler.

Each dataset's own train and test sets are combined, shuffled with a fixed
seed and split 8:1:1 into train / validation / test (paper 4.1). An example
is an (image, recording) pair with the same label, drawn uniformly from all
such pairs of a split: the label with weight n_img(l) * n_aud(l), then an
image and a recording uniformly within it. The millions of pairs are never
materialised.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from clstm_jax.data.fsdd import load_fsdd, pad_front
from clstm_jax.data.mnist import load_mnist

SPLITS = ("train", "validation", "test")
NUM_CLASSES = 10


def split_indices(n: int, seed: int | list[int]) -> dict[str, np.ndarray]:
    """Indices of a shuffled 8:1:1 split of n items: {split name: int array}.

    seed: anything `numpy.random.default_rng` takes (an int or a list of ints).
    """
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = round(0.8 * n), round(0.1 * n)
    return {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }


@dataclass(frozen=True)
class Split:
    """One split's images and recordings (host arrays).

    images: uint8 [n_img, 28, 28]; image_labels: int32 [n_img];
    waves: int16 [n_aud, pad_length], front-padded with zeros;
    wave_lengths: int32 [n_aud], samples of each recording kept (before padding);
    wave_labels: int32 [n_aud].
    """

    images: np.ndarray
    image_labels: np.ndarray
    waves: np.ndarray
    wave_lengths: np.ndarray
    wave_labels: np.ndarray

    def label_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(images per label [10], recordings per label [10])."""
        return (
            np.bincount(self.image_labels, minlength=NUM_CLASSES),
            np.bincount(self.wave_labels, minlength=NUM_CLASSES),
        )

    def pair_count(self) -> int:
        """Number of same-label (image, recording) pairs: sum over labels of n_img(l) * n_aud(l)."""
        n_img, n_aud = self.label_counts()
        return int(np.dot(n_img.astype(np.int64), n_aud.astype(np.int64)))


@dataclass(frozen=True)
class DataSet:
    """The splits, and what they were made from.

    identity: a JSON-able record of the data (stored in every run as data.json): a SHA-256 over the
    SHA-256 of every file used, the speakers, the split seed and pad length, the counts per split, and
    whether the files were checked against the published checksums.
    """

    splits: dict[str, Split]
    identity: dict


@lru_cache(maxsize=2)  # runs in one process (tests, a study) read the same files once
def load_dataset(
    data_dir: Path,
    speakers: tuple[str, ...] | None = None,
    seed: int = 0,
    pad_length: int | None = None,
    verify: bool = True,
) -> DataSet:
    """The train / validation / test splits of MNIST x FSDD, and their identity.

    speakers: FSDD speakers to use (None: all on disk). seed: the split seed;
    MNIST and FSDD are shuffled with independent streams derived from it.
    pad_length: samples per recording (None: the longest recording); longer
    recordings keep their last pad_length samples (see fsdd.pad_front).
    verify: refuse files that are not the published MNIST and FSDD v1.0.10
    (from the SHA-256 of the bytes read; see mnist.load_mnist, fsdd.load_fsdd).
    """
    images, image_labels, mnist_digests = load_mnist(data_dir, verify)
    recordings = load_fsdd(data_dir, speakers, verify)
    waves, lengths = pad_front(recordings.waves, pad_length or int(recordings.lengths.max()))
    image_parts = split_indices(len(images), [seed, 0])
    audio_parts = split_indices(len(waves), [seed, 1])
    splits = {
        name: Split(
            images=images[image_parts[name]],
            image_labels=image_labels[image_parts[name]].astype(np.int32),
            waves=waves[audio_parts[name]],
            wave_lengths=lengths[audio_parts[name]],
            wave_labels=recordings.labels[audio_parts[name]],
        )
        for name in SPLITS
    }
    files = sorted([*mnist_digests.items(),
                    *((f"{n.digit}_{n.speaker}_{n.index}.wav", d) for n, d in zip(recordings.names, recordings.digests))])
    identity = {
        "sha256": hashlib.sha256("".join(f"{digest}  {name}\n" for name, digest in files).encode()).hexdigest(),
        "files": len(files),
        "speakers": sorted({n.speaker for n in recordings.names}),
        "split_seed": seed,
        "pad_length": int(waves.shape[1]),
        "counts": {name: {"images": len(split.images), "recordings": len(split.waves)} for name, split in splits.items()},
        "verified": verify,
    }
    return DataSet(splits, identity)


def load_splits(data_dir: Path, speakers: tuple[str, ...] | None = None, seed: int = 0,
                pad_length: int | None = None, verify: bool = True) -> dict[str, Split]:
    """The splits of `load_dataset`."""
    return load_dataset(data_dir, speakers, seed, pad_length, verify).splits


class PairTable(NamedTuple):
    """Per-label index lists of a split, for sampling pairs on device.

    image_order: int32 [n_img], image indices sorted by label; image_start,
    image_count: int32 [10], where each label's run starts and how long it is.
    The audio_* fields are the same for recordings.
    """

    image_order: jax.Array
    image_start: jax.Array
    image_count: jax.Array
    audio_order: jax.Array
    audio_start: jax.Array
    audio_count: jax.Array


def pair_table(image_labels: np.ndarray, wave_labels: np.ndarray) -> PairTable:
    """Build the PairTable of a split from its label arrays."""

    def runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(labels, kind="stable").astype(np.int32)
        count = np.bincount(labels, minlength=NUM_CLASSES).astype(np.int32)
        start = (np.cumsum(count) - count).astype(np.int32)
        return order, start, count

    return PairTable(*map(jnp.asarray, (*runs(image_labels), *runs(wave_labels))))


def sample_pairs(key: jax.Array, table: PairTable, batch_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw same-label pairs uniformly from all pairs of a split (jittable).

    Returns (image indices, recording indices, labels), each int32 [batch_size].
    """
    label_key, image_key, audio_key = jax.random.split(key, 3)
    weight = table.image_count.astype(jnp.float32) * table.audio_count.astype(jnp.float32)  # (10,)
    labels = jax.random.categorical(label_key, jnp.log(weight), shape=(batch_size,))
    image_pos = jax.random.randint(image_key, (batch_size,), 0, table.image_count[labels])
    audio_pos = jax.random.randint(audio_key, (batch_size,), 0, table.audio_count[labels])
    image_idx = table.image_order[table.image_start[labels] + image_pos]
    audio_idx = table.audio_order[table.audio_start[labels] + audio_pos]
    return image_idx, audio_idx, labels.astype(jnp.int32)


def split_stats(splits: dict[str, Split]) -> dict:
    """Per split: images, recordings and same-label pairs per label, and the totals (JSON-ready)."""
    stats = {"pairs": {name: split.pair_count() for name, split in splits.items()}, "splits": {}}
    for name, split in splits.items():
        n_img, n_aud = split.label_counts()
        stats["splits"][name] = {
            "images": int(n_img.sum()),
            "recordings": int(n_aud.sum()),
            "pairs": split.pair_count(),
            "images_per_label": n_img.tolist(),
            "recordings_per_label": n_aud.tolist(),
            "pairs_per_label": (n_img.astype(np.int64) * n_aud).tolist(),
        }
    return stats
