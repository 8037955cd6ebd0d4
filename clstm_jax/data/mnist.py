"""MNIST IDX files (gzip-compressed or raw) -> numpy arrays, validated."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from clstm_jax.core.errors import DataError
from clstm_jax.data.paths import mnist_path

# SHA-256 of the *decompressed* IDX files (the gzip wrapper may differ between mirrors).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
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


def read_images(path: Path, raw: bytes | None = None) -> np.ndarray:
    """uint8 images [n, 28, 28] from an IDX3 file (raw: its decompressed content, when already read)."""
    images = parse_idx(read_bytes(path) if raw is None else raw, IMAGES_MAGIC, path)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{path}: images of shape {images.shape[1:]}, expected (28, 28)")
    return images


def read_labels(path: Path, raw: bytes | None = None) -> np.ndarray:
    """uint8 labels [n] from an IDX1 file, each in 0..9 (raw: its decompressed content, when already read)."""
    labels = parse_idx(read_bytes(path) if raw is None else raw, LABELS_MAGIC, path)
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {labels.max()} found, expected digits 0..9")
    return labels


def load_mnist(root: Path, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """All 70,000 MNIST images and labels, the official train set followed by the test set.

    Returns (images uint8 [n, 28, 28], labels uint8 [n], {file name: SHA-256 of its decompressed
    content}). verify: refuse files whose content is not the canonical MNIST's (one DataError naming them).
    """
    images, labels, digests, paths = [], [], {}, {}
    for part in ("train", "t10k"):
        raw = {}
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{part}-{kind}-ubyte"
            found = mnist_path(root, name)
            if found is None:
                raise DataError(f"{root / 'mnist' / name}[.gz]: file not found (expected an MNIST IDX file)")
            paths[kind], raw[kind] = found, read_bytes(found)
            digests[name] = hashlib.sha256(raw[kind]).hexdigest()
        part_images = read_images(paths["images-idx3"], raw["images-idx3"])
        part_labels = read_labels(paths["labels-idx1"], raw["labels-idx1"])
        if len(part_images) != len(part_labels):
            raise DataError(
                f"{paths['labels-idx1']}: {len(part_labels)} labels for {len(part_images)} images "
                f"in {paths['images-idx3']}; expected one label per image"
            )
        images.append(part_images)
        labels.append(part_labels)
    altered = sorted(name for name, digest in digests.items() if digest != MNIST_SHA256[name])
    if verify and altered:
        raise DataError(f"{root / 'mnist'}: the content of {', '.join(altered)} is not MNIST's (SHA-256 differs); "
                        "fetch the data again, or set data.verify = false to use your own files")
    return np.concatenate(images), np.concatenate(labels), digests
