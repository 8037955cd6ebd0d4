"""Intervals and paired tests for accuracies measured on shared test examples.

The unit of inference is the test example, nested in seed: a unit is one
(seed, example). Outcomes at several grid points of one unit are never
independent draws; a test over a region first reduces each unit to its mean
over the region (`paired_test`). Tests at single points are McNemar's exact
test (`paired_difference`), corrected over points with Holm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
ALPHA = 0.05
POWER = 0.8  # the power at which minimum detectable effects are stated
CLUSTER_SEEDS = 3  # from this many seeds on, seeds are resampled as clusters
SIGN_FLIP_DRAWS = 20_000
BOOTSTRAP_DRAWS = 4_000
EXACT_LIMIT = 16  # sign-flip tests enumerate every pattern up to this many non-zero units


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
    return {"difference": (b - c) / n, "b": b, "c": c, "p": mcnemar_exact(b, c), "se": paired_se(b, c, n), "n": n}


def paired_se(b, c, n) -> np.ndarray:
    """Standard error of a paired accuracy difference (b - c) / n, with one pseudo-pair added to each
    discordant cell (as Agresti and Min add half a pair): never 0, so that a few identical outcomes
    do not claim certainty. Elementwise."""
    b, c = np.asarray(b, np.float64) + 1, np.asarray(c, np.float64) + 1
    total = n + 2
    mean = (b - c) / total
    variance = (b + c - total * mean**2) / (total - 1)
    return np.sqrt(variance / n)


def z_quantile(q: float) -> float:
    return NormalDist().inv_cdf(q)


def detectable(se, tests: int = 1, alpha: float = ALPHA, sided: int = 2) -> np.ndarray:
    """Minimum detectable effect at `POWER`: (z_(1 - alpha / (sided * tests)) + z_power) * se."""
    return (z_quantile(1 - alpha / (sided * tests)) + z_quantile(POWER)) * np.asarray(se)


def sign_flip_p(d, draws: int = SIGN_FLIP_DRAWS, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0: the sign of each unit's paired difference is flipped at random.

    Units with d = 0 leave the statistic unchanged and are dropped. With at most
    `EXACT_LIMIT` others every sign pattern is enumerated (exact); otherwise
    `draws` random patterns, p = (1 + hits) / (1 + draws), never below what
    the exact test could give.
    """
    d = np.asarray(d, np.float64).ravel()
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    observed = abs(d.sum()) * (1 - 1e-12)
    if d.size <= EXACT_LIMIT:
        signs = 1 - 2 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
        return float(np.mean(np.abs(signs @ d) >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, draws, 1000):
        signs = rng.integers(0, 2, size=(min(1000, draws - start), d.size)) * 2.0 - 1
        hits += int(np.sum(np.abs(signs @ d) >= observed))
    return (1 + hits) / (1 + draws)


def bootstrap_weights(seeds: int, examples: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, seeds, examples) resampling counts of the units. Fewer than `CLUSTER_SEEDS` seeds: units
    drawn with replacement; otherwise two stages: seeds as clusters, then examples within each drawn seed."""
    units = seeds * examples
    if seeds < CLUSTER_SEEDS:
        picks = rng.integers(0, units, size=(draws, units))
    else:
        clusters = rng.integers(0, seeds, size=(draws, seeds, 1))
        picks = (clusters * examples + rng.integers(0, examples, size=(draws, seeds, examples))).reshape(draws, units)
    flat = (picks + units * np.arange(draws)[:, None]).ravel()
    return np.bincount(flat, minlength=draws * units).reshape(draws, seeds, examples)


def bootstrap_means(values: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> np.ndarray:
    """values (seeds, examples, ...) -> (draws, ...) means over resampled units (`bootstrap_weights`)."""
    values = np.asarray(values, np.float64)
    weights = bootstrap_weights(values.shape[0], values.shape[1], draws, np.random.default_rng(seed))
    return np.tensordot(weights, values, axes=([1, 2], [0, 1])) / (values.shape[0] * values.shape[1])


@dataclass(frozen=True)
class PairedTest:
    """A test of mean(d) = 0 over units (seed, example); d is in accuracy (fractions)."""

    mean: float
    se: float
    p: float  # two-sided
    seeds: int
    examples: int
    method: str

    def detectable(self, tests: int = 1) -> float:
        return float(detectable(self.se, tests))

    @property
    def low(self) -> float:
        return self.mean - Z95 * self.se

    @property
    def high(self) -> float:
        return self.mean + Z95 * self.se


def paired_test(d, seed: int = 0) -> PairedTest:
    """Is the mean of the per-unit paired differences d (seeds, examples) zero?

    Each unit's difference is already reduced over the region a claim names
    (e.g. its mean correctness over 70 grid points minus the other model's).
    Fewer than `CLUSTER_SEEDS` seeds: an exact (or Monte Carlo) sign-flip
    permutation test over the seeds x examples units. More: a two-stage
    bootstrap (seeds as clusters, then examples), p = 2 min(P(T* <= 0),
    P(T* >= 0)). The standard error (for intervals and the minimum detectable
    effect) is the larger of the bootstrap's and the units' own.
    """
    d = np.asarray(d, np.float64)
    seeds, examples = d.shape
    units = np.concatenate([d.ravel(), [1.0, -1.0]])  # one pseudo-unit each way, as in paired_se
    se = float(units.std(ddof=1) / math.sqrt(d.size))
    if seeds < CLUSTER_SEEDS:
        return PairedTest(float(d.mean()), se, sign_flip_p(d, seed=seed), seeds, examples, "sign-flip permutation test")
    means = bootstrap_means(d, seed=seed)
    tail = min(np.sum(means <= 0), np.sum(means >= 0))
    p = min(1.0, 2 * (1 + tail) / (1 + means.size))
    return PairedTest(float(d.mean()), max(se, float(means.std(ddof=1))), p, seeds, examples,
                      "two-stage bootstrap (seeds as clusters, then examples)")
