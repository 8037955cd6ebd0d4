"""Every random key of a run, from one seed: one root per purpose, folded in by model seed and step.

Keys (one root, `train.seed`, split by purpose with fold_in):
- pairs of step s:            fold_in(fold_in(root, PAIRS), s), shared by every model;
- noise of model m at step s: fold_in(fold_in(fold_in(root, NOISE), seed_m), s);
- parameters of model m:      fold_in(fold_in(root, INIT), seed_m).
So models that differ only in fusion depth or SNR start from the same
parameters and see the same pairs and the same standard-normal noise draws
(scaled to their own SNR): a paired design, and a model trains identically
alone or inside any sweep. Validation and the test subset have roots of their own.
"""

from __future__ import annotations

import jax

INIT, PAIRS, NOISE, VALIDATION, TEST, TEST_NOISE = 0, 1, 2, 3, 4, 5


def purpose_key(seed: int, purpose: int) -> jax.Array:
    """The root key of one purpose (INIT, PAIRS, NOISE, VALIDATION, TEST, TEST_NOISE), from a seed."""
    return jax.random.fold_in(jax.random.key(seed), purpose)
