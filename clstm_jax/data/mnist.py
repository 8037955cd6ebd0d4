"""MNIST IDX files (gzip-compressed or raw) -> numpy arrays, validated."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from clstm_jax.data import DataError
from clstm_jax.data.paths import mnist_path

# IDX magic numbers: two zero bytes, type code 0x08 (unsigned byte), number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def read_bytes(path: Path) -> bytes:
    """The decompressed content of a `.gz` file, or the raw bytes of any other file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected an MNIST IDX file)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip file ({err}); fetch it again") from None


def parse_idx(raw: bytes, magic: int, path: Path) -> np.ndarray:
    """Parse IDX bytes with the given magic number into a uint8 array of the header's shape."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header (expected at least {header})")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: {len(raw)} bytes, but its IDX header {shape} needs {expected}; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_images(path: Path) -> np.ndarray:
    """uint8 images [n, 28, 28] from an IDX3 file."""
    images = parse_idx(read_bytes(path), IMAGES_MAGIC, path)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{path}: images of shape {images.shape[1:]}, expected (28, 28)")
    return images


def read_labels(path: Path) -> np.ndarray:
    """uint8 labels [n] from an IDX1 file, each in 0..9."""
    labels = parse_idx(read_bytes(path), LABELS_MAGIC, path)
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {labels.max()} found, expected digits 0..9")
    return labels


def load_mnist(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 MNIST images and labels, the official train set followed by the test set.

    Returns (images uint8 [n, 28, 28], labels uint8 [n]).
    """
    images, labels = [], []
    for part in ("train", "t10k"):
        paths = {}
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{part}-{kind}-ubyte"
            found = mnist_path(root, name)
            if found is None:
                raise DataError(f"{root / 'mnist' / name}[.gz]: file not found (expected an MNIST IDX file)")
            paths[kind] = found
        part_images = read_images(paths["images-idx3"])
        part_labels = read_labels(paths["labels-idx1"])
        if len(part_images) != len(part_labels):
            raise DataError(
                f"{paths['labels-idx1']}: {len(part_labels)} labels for {len(part_images)} images "
                f"in {paths['images-idx3']}; expected one label per image"
            )
        images.append(part_images)
        labels.append(part_labels)
    return np.concatenate(images), np.concatenate(labels)
