"""`data fetch` against local fixtures: a file:// URL and an HTTP server on 127.0.0.1."""

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
import soundfile as sf

from clstm_jax.core.errors import DataError
from clstm_jax.data.fetch import Sources, fetch
from clstm_jax.data.mnist import load_mnist


def idx_bytes(magic, array):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def wav_bytes(seed):
    buffer = io.BytesIO()
    samples = np.random.default_rng(seed).integers(-2000, 2000, 500).astype(np.int16)
    sf.write(buffer, samples, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
def server_dir(tmp_path):
    """Small fixture files as a server would have them, and the Sources that describe them."""
    served = tmp_path / "served"
    served.mkdir()
    mnist_sha = {}
    rng = np.random.default_rng(0)
    for name, magic, shape in (
        ("train-images-idx3-ubyte", 0x803, (4, 28, 28)),
        ("train-labels-idx1-ubyte", 0x801, (4,)),
        ("t10k-images-idx3-ubyte", 0x803, (2, 28, 28)),
        ("t10k-labels-idx1-ubyte", 0x801, (2,)),
    ):
        content = idx_bytes(magic, rng.integers(0, 10, shape))
        (served / f"{name}.gz").write_bytes(gzip.compress(content))
        mnist_sha[name] = hashlib.sha256(content).hexdigest()
    recordings = {f"{d}_alice_0.wav": wav_bytes(d) for d in range(3)}
    with tarfile.open(served / "fsdd.tar.gz", "w:gz") as tar:
        for name, data in recordings.items():
            info = tarfile.TarInfo(f"free-spoken-digit-dataset-1.0.10/recordings/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fsdd_sha = {name: hashlib.sha256(data).hexdigest() for name, data in recordings.items()}
    return served, mnist_sha, fsdd_sha


def file_sources(served, mnist_sha, fsdd_sha):
    return Sources(served.as_uri(), mnist_sha, (served / "fsdd.tar.gz").as_uri(), fsdd_sha)


def leftovers(root):
    return sorted(p.name for p in root.rglob("*") if p.name.startswith("."))


def test_fetch_from_file_url_verifies_and_then_skips(tmp_path, server_dir):
    root = tmp_path / "data"
    sources = file_sources(*server_dir)
    lines = fetch(root, sources, progress=False)
    assert sum("downloaded and verified" in line for line in lines) == 5
    images, labels, _ = load_mnist(root, verify=False)  # a made-up MNIST of 6 images
    assert images.shape == (6, 28, 28) and labels.shape == (6,)
    assert sorted(p.name for p in (root / "fsdd" / "recordings").iterdir()) == [f"{d}_alice_0.wav" for d in range(3)]
    assert leftovers(root) == []
    again = fetch(root, sources, progress=False)
    assert all("skipped" in line for line in again)


def test_corrupted_mnist_file_is_rejected_and_nothing_is_left(tmp_path, server_dir):
    served, mnist_sha, fsdd_sha = server_dir
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 5))
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: content SHA-256 .* expected"):
        fetch(root, file_sources(served, mnist_sha, fsdd_sha), progress=False)
    assert not (root / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert leftovers(root) == []


def test_truncated_archive_is_rejected_and_no_recording_is_written(tmp_path, server_dir):
    served, mnist_sha, fsdd_sha = server_dir
    archive = served / "fsdd.tar.gz"
    archive.write_bytes(archive.read_bytes()[:100])
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"fsdd.tar.gz: not a readable .tar.gz archive"):
        fetch(root, file_sources(served, mnist_sha, fsdd_sha), progress=False)
    assert list((root / "fsdd" / "recordings").iterdir()) == []


def test_archive_with_a_wrong_recording_writes_nothing(tmp_path, server_dir):
    served, mnist_sha, fsdd_sha = server_dir
    fsdd_sha = dict(fsdd_sha, **{"1_alice_0.wav": "0" * 64})
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"1_alice_0.wav has SHA-256 .* expected 0{64}; nothing was written"):
        fetch(root, file_sources(served, mnist_sha, fsdd_sha), progress=False)
    assert list((root / "fsdd" / "recordings").iterdir()) == []


def test_fetch_over_http_on_loopback(tmp_path, server_dir):
    served, mnist_sha, fsdd_sha = server_dir
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        root = tmp_path / "data"
        try:
            fetch(root, Sources(base, mnist_sha, f"{base}/fsdd.tar.gz", fsdd_sha), progress=False)
            with pytest.raises(DataError, match="download failed"):
                fetch(tmp_path / "other", Sources(f"{base}/nothing-here", mnist_sha, f"{base}/fsdd.tar.gz", fsdd_sha), progress=False)
        finally:
            httpd.shutdown()
    assert load_mnist(root, verify=False)[0].shape == (6, 28, 28)
    assert len(list((root / "fsdd" / "recordings").iterdir())) == 3
    assert leftovers(tmp_path / "other") == []
