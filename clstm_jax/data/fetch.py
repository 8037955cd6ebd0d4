"""`data fetch`: download MNIST and a pinned FSDD release, checksum-verified, atomically.

Each file is downloaded to a temporary name in its final directory, verified,
and only then renamed into place, so a final name never holds a partial or
unverified file. Files already present and verified are skipped.

Checksums: MNIST is checked by the SHA-256 of the decompressed IDX content
(mirrors re-gzip the files); FSDD by a pinned per-recording SHA-256 manifest
of release v1.0.10 shipped with the package (GitHub's tag archives are not
byte-stable, their content is).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from clstm_jax.core.errors import DataError
from clstm_jax.data.fsdd import RELEASE, pinned_manifest
from clstm_jax.data.mnist import MNIST_SHA256

MNIST_BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
FSDD_ARCHIVE_URL = (
    f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/{RELEASE}.tar.gz"
)
RECORDING_MEMBER = re.compile(r"(?:^|/)recordings/([^/]+\.wav)$")


@dataclass(frozen=True)
class Sources:
    """Where to download from and what the content must hash to (defaults: the public, pinned ones)."""

    mnist_base_url: str = MNIST_BASE_URL  # the four `<name>.gz` files are fetched from here
    mnist_sha256: dict[str, str] = field(default_factory=lambda: dict(MNIST_SHA256))
    fsdd_archive_url: str = FSDD_ARCHIVE_URL  # a .tar.gz whose */recordings/*.wav are the recordings
    fsdd_sha256: dict[str, str] | None = None  # None: the pinned v1.0.10 manifest


def sha256_file(path: Path, gunzip: bool = False) -> str | None:
    """SHA-256 of a file's content (decompressed when gunzip), or None when unreadable."""
    try:
        with (gzip.open(path, "rb") if gunzip else open(path, "rb")) as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None


def download(url: str, directory: Path, progress: bool) -> Path:
    """Download url to a temporary file in directory; return its path (the caller renames or deletes it)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise DataError(f"{url}: download ended after {out.tell()} of {total} bytes")
    except (urllib.error.URLError, OSError) as err:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"{url}: download failed ({err})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to a temporary name beside path, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".write-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_mnist(root: Path, sources: Sources, progress: bool) -> list[str]:
    """Fetch each MNIST .gz that is not already present and verified; returns what was done, a line per file."""
    done = []
    for name, expected in sources.mnist_sha256.items():
        final = root / "mnist" / f"{name}.gz"
        raw = root / "mnist" / name
        if sha256_file(final, gunzip=True) == expected or sha256_file(raw) == expected:
            done.append(f"mnist/{name}: already verified, skipped")
            continue
        url = sources.mnist_base_url.rstrip("/") + f"/{name}.gz"
        tmp = download(url, final.parent, progress)
        digest = sha256_file(tmp, gunzip=True)
        if digest != expected:
            tmp.unlink()
            found = "not a readable gzip file" if digest is None else f"content SHA-256 {digest}"
            raise DataError(f"{url}: {found}, expected {expected}; nothing was written")
        os.replace(tmp, final)
        done.append(f"mnist/{name}.gz: downloaded and verified")
    return done


def fetch_fsdd(root: Path, sources: Sources, progress: bool) -> list[str]:
    """Fetch the FSDD archive unless every recording is present and verified; write only verified recordings."""
    manifest = sources.fsdd_sha256 if sources.fsdd_sha256 is not None else pinned_manifest()
    recordings = root / "fsdd" / "recordings"
    todo = {name for name, digest in manifest.items() if sha256_file(recordings / name) != digest}
    if not todo:
        return [f"fsdd/recordings: all {len(manifest)} recordings already verified, skipped"]
    recordings.mkdir(parents=True, exist_ok=True)
    archive = download(sources.fsdd_archive_url, recordings, progress)
    try:
        contents = read_recordings(archive, sources.fsdd_archive_url)
    finally:
        archive.unlink()
    # Verify everything before writing anything, so a bad archive leaves no trace.
    for name in sorted(todo):
        if name not in contents:
            raise DataError(f"{sources.fsdd_archive_url}: recordings/{name} missing from the archive; nothing was written")
        digest = hashlib.sha256(contents[name]).hexdigest()
        if digest != manifest[name]:
            raise DataError(
                f"{sources.fsdd_archive_url}: recordings/{name} has SHA-256 {digest}, expected {manifest[name]}; "
                "nothing was written"
            )
    for name in sorted(todo):
        write_atomic(recordings / name, contents[name])
    return [f"fsdd/recordings: {len(todo)} recordings downloaded and verified ({len(manifest) - len(todo)} already present)"]


def read_recordings(archive: Path, url: str) -> dict[str, bytes]:
    """{file name: bytes} of every `*/recordings/*.wav` member of a .tar.gz archive."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            contents = {}
            for member in tar:
                match = RECORDING_MEMBER.search(member.name)
                if match and member.isfile():
                    contents[match[1]] = tar.extractfile(member).read()
            return contents
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{url}: not a readable .tar.gz archive ({err}); nothing was written") from None


def fetch(root: Path, sources: Sources = Sources(), progress: bool = True) -> list[str]:
    """Download whatever of MNIST and FSDD is missing or unverified under root; returns a line per action."""
    return fetch_mnist(root, sources, progress) + fetch_fsdd(root, sources, progress)
