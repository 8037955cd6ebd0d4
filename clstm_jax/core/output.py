"""Output that fails as one line: directories checked before any work, result sets written aside and then
moved into place (a failure leaves the previous complete set), and OS errors on writing named in words."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from clstm_jax.core.errors import OutputError

# OS errors that say the output's place is at fault (full, read-only, not permitted, not a directory),
# not the program: the CLI prints them as one line, exit 2. Others keep their traceback.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                 errno.EFBIG}


def check_writable(directory: str | Path) -> Path:
    """Prove that `directory` can be created (if missing) and written, without creating it.

    A probe file is written and removed in the directory, or in its nearest existing parent when it
    does not exist yet. Raises OutputError for a path that is a file, a read-only file system, missing
    permission or a full disk. Nothing already there is touched.
    """
    directory = Path(directory)
    existing = next(p for p in (directory, *directory.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{directory}: cannot write there ({existing} is not a directory); "
                          "expected a writable directory (choose another with --out)")
    probe = existing / f".clstm-jax-write-check-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise OutputError(f"{directory}: cannot write there ({err.strerror or err}); "
                          "expected a writable directory (choose another with --out)") from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:  # a read-only file system refuses even this: its error above is the one to say
            pass
    return directory


def describe(err: OSError, what: str | None = None) -> str:
    """One line for an OS error on output: the file, the cause, what is kept, what to do."""
    cause = f"cannot write {what} ({err.strerror or err})" if what else (err.strerror or str(err))
    return (f"{err.filename or 'the output directory'}: {cause}; what was written before is kept as it was: "
            "make room or fix the permissions, then re-run the same command")


@contextlib.contextmanager
def staged(directory: str | Path, what: str):
    """Write a set of files into a folder aside (DIRECTORY/.writing-PID), then move each into `directory`.

    Yields the folder to write into. A failure while writing (a full disk, say) removes it and leaves the
    files already in `directory` as they were: the previous complete set, never half of a new one. It is
    raised as one OutputError naming `what`. Moving is a rename in one file system, which does not fail
    for want of room.
    """
    directory = Path(directory)
    aside = directory / f".writing-{os.getpid()}"
    try:
        try:
            aside.mkdir(parents=True, exist_ok=True)
            yield aside
            for path in sorted(aside.rglob("*")):
                if path.is_file():
                    target = directory / path.relative_to(aside)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    path.replace(target)
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as err:
        if err.errno not in OUTPUT_ERRNOS:
            raise
        if err.filename and Path(err.filename).is_relative_to(aside):  # name the file it was to become
            err.filename = str(directory / Path(err.filename).relative_to(aside))
        raise OutputError(describe(err, what)) from None
