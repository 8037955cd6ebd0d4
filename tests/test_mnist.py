import gzip
import shutil
import struct

import numpy as np
import pytest

from clstm_jax.core.errors import DataError
from clstm_jax.data.mnist import load_mnist, read_images, read_labels


def write_idx(path, magic, array):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_reads_a_hand_built_idx_file(tmp_path, suffix):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(tmp_path / f"img{suffix}", 0x803, images)
    write_idx(tmp_path / f"lab{suffix}", 0x801, np.array([7, 0, 9]))
    np.testing.assert_array_equal(read_images(tmp_path / f"img{suffix}"), images)
    np.testing.assert_array_equal(read_labels(tmp_path / f"lab{suffix}"), [7, 0, 9])


def test_real_mnist_has_70000_images_with_the_known_label_counts(data_dir):
    images, labels, _ = load_mnist(data_dir)
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    # Known class counts of MNIST train + test (e.g. 5923 + 980 zeros).
    np.testing.assert_array_equal(
        np.bincount(labels), [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]
    )


def test_truncated_gzip_names_the_file(tmp_path, data_dir):
    source = data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    broken = tmp_path / source.name
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as err:
        read_labels(broken)
    assert str(broken) in str(err.value)


def test_wrong_magic_names_the_file_and_both_numbers(tmp_path, data_dir):
    copy = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copy(data_dir / "mnist" / copy.name, copy)
    with pytest.raises(DataError, match=r"magic number 0x00000801, expected 0x00000803") as err:
        read_images(copy)  # a label file where images are expected
    assert str(copy) in str(err.value)


def test_size_that_disagrees_with_the_header_is_an_error(tmp_path):
    path = tmp_path / "lab"
    path.write_bytes(struct.pack(">II", 0x801, 5) + bytes([1, 2, 3]))
    with pytest.raises(DataError, match=r"3 bytes|8 bytes|needs 13"):
        read_labels(path)


def test_missing_file_in_a_data_directory(tmp_path, data_dir):
    (tmp_path / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(data_dir / "mnist" / name, tmp_path / "mnist" / name)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*file not found"):
        load_mnist(tmp_path)
