"""Data: files -> arrays, splits and pair sampling, on-device noise and spectrograms.

Modules: `paths` (data directory), `mnist` and `fsdd` (readers), `splits`
(8:1:1 splits and the same-label pair sampler), `features` (noise + STFT on
device), `verify` and `fetch` (what is on disk, and getting it).
"""


class DataError(Exception):
    """A data file or directory is missing or not what was expected.

    The message names the file and what was expected; the CLI prints it as
    one line and exits non-zero.
    """
