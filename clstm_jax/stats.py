"""Intervals and paired tests for accuracies measured on shared test examples."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion correct / n (elementwise); n > 0."""
    correct, n = np.asarray(correct, np.float64), np.asarray(n, np.float64)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def mcnemar_exact(b, c) -> np.ndarray:
    """Two-sided exact McNemar p-values (elementwise) from discordant counts.

    b: pairs right under A and wrong under B; c: the reverse. Under the null
    each discordant pair is a fair coin, so p = min(1, 2 P(X <= min(b, c)))
    with X ~ Binomial(b + c, 1/2); p = 1 when there is no discordant pair.
    """
    b, c = np.broadcast_arrays(np.asarray(b, np.int64), np.asarray(c, np.int64))
    out = np.ones(b.shape)
    for idx in np.ndindex(b.shape):
        n, k = int(b[idx] + c[idx]), int(min(b[idx], c[idx]))
        if n:
            ks = np.arange(k + 1)
            log_pmf = [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) - n * math.log(2) for j in ks]
            out[idx] = min(1.0, 2 * float(np.sum(np.exp(log_pmf))))
    return out


def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values (same shape): controls the family-wise error over all of p."""
    p = np.asarray(p, np.float64)
    flat = p.ravel()
    order = np.argsort(flat, kind="stable")
    m = flat.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * flat[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.reshape(p.shape)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, axes: tuple[int, ...]) -> dict:
    """Accuracy of A minus B, and McNemar's test, pooling the paired observations over `axes`.

    correct_a, correct_b: bool arrays of one shape, paired elementwise (same
    example, same noise, same seed index). Returns difference, b (A right, B
    wrong), c (A wrong, B right) and p, each reduced over `axes`.
    """
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    b = np.sum(a & ~b_, axis=axes)
    c = np.sum(~a & b_, axis=axes)
    n = np.prod([a.shape[ax] for ax in axes])
    return {"difference": (b - c) / n, "b": b, "c": c, "p": mcnemar_exact(b, c)}
