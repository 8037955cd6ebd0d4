"""Output directories, checked before any work: one clear error instead of a traceback after it."""

from __future__ import annotations

import os
from pathlib import Path


class OutputError(Exception):
    """A directory a command must write cannot be written; the message names it and the OS error.

    The CLI prints it as one line and exits 2.
    """


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
