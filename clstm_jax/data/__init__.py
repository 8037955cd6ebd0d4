"""Data: files -> arrays, splits and pair sampling, on-device noise and spectrograms.

Modules: `paths` (data directory), `mnist` and `fsdd` (readers), `splits` (8:1:1 splits and the
same-label pair sampler), `features` (noise + STFT on device), `verify` and `fetch` (what is on disk,
and getting it). May import: core.
"""
