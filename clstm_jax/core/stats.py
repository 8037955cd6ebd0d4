"""Intervals and paired tests for accuracies of trained networks, measured on shared test examples.

A claim about an architecture (a fusion depth, a modality) is a claim about
training runs: the replicate is the training seed, and test examples are
nested in it (SPEC 8b). `paired_test` therefore reduces each seed to the mean
of its per-example paired differences and tests the mean of those per-seed
means across seeds (a t-test on S - 1 degrees of freedom), with the variance
of a seed's mean never taken below what its examples alone give it (the
within-seed sampling error carried along). With one seed no seed variance
can be estimated: the test is then over that seed's examples and its
verdict is about those trained networks (`PairedTest.about`). Outcomes at
several grid points of one unit are never independent draws: a test over a
region first reduces each unit to its mean over the region. docs/study.md
says why, and tests/test_stats.py measures the level and the power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

Z95 = 1.959963984540054  # two-sided 95% normal quantile
ALPHA = 0.05
POWER = 0.8  # the power at which minimum detectable effects are stated
SIGN_FLIP_DRAWS = 20_000
MEDIAN_BOOTSTRAP_DRAWS = 200  # per seed, for the sampling error of a seed's median over points
EXACT_LIMIT = 16  # sign-flip tests enumerate every pattern up to this many non-zero units
NETWORKS, ARCHITECTURE = "networks", "architecture"  # what a test's verdict is about: 1 seed, or several


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
    return np.minimum(1.0, 2 * scipy_stats.binom.cdf(np.minimum(b, c), b + c, 0.5))


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

    A test about the networks measured (their examples are the replicates), never about the architecture
    when the axes pool seeds: tests/test_stats.py shows how far it overstates significance then.
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


def t_quantile(q: float, df) -> np.ndarray:
    """Student's t quantile; df = inf gives the normal one."""
    df = np.asarray(df, np.float64)
    return np.where(np.isinf(df), scipy_stats.norm.ppf(q), scipy_stats.t.ppf(q, np.where(np.isinf(df), 1.0, df)))


def half_width(se, df) -> np.ndarray:
    """Half the width of the two-sided 95% interval of a mean with standard error se on df degrees of freedom."""
    return t_quantile(0.975, df) * np.asarray(se)


def t_sf(t, df) -> np.ndarray:
    """Upper tail of Student's t (df = inf: the normal)."""
    t, df = np.broadcast_arrays(np.asarray(t, np.float64), np.asarray(df, np.float64))
    return np.where(np.isinf(df), scipy_stats.norm.sf(t), scipy_stats.t.sf(t, np.where(np.isinf(df), 1.0, df)))


def detectable(se, tests: int = 1, alpha: float = ALPHA, sided: int = 2, df=np.inf) -> np.ndarray:
    """Minimum detectable effect at `POWER`: (t_(1 - alpha / (sided * tests), df) + t_(power, df)) * se;
    df = inf for a test over examples (normal quantiles)."""
    return (t_quantile(1 - alpha / (sided * tests), df) + t_quantile(POWER, df)) * np.asarray(se)


def sign_flip_p(d, draws: int = SIGN_FLIP_DRAWS, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0: the sign of each unit's paired difference is flipped at random.

    Units with d = 0 leave the statistic unchanged and are dropped. With at most
    `EXACT_LIMIT` others every sign pattern is enumerated (exact); otherwise
    `draws` random patterns, p = (1 + hits) / (1 + draws), never below what
    the exact test could give. On differences of two bool outcomes (-1, 0, 1)
    it is McNemar's exact test, which `paired_test` uses there.
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


@dataclass(frozen=True)
class PairedTest:
    """A test of the mean paired difference (accuracy, as a fraction) of two kinds of trained networks.

    seeds > 1: about the architecture (replicate: the training seed, df = seeds - 1); seeds = 1: about
    the networks measured (replicate: the test example, df = inf). between: the variance of a seed's
    mean beyond its examples' sampling error (0 when the seeds vary no more than that; nan with one
    seed); within: the variance of one unit's difference within a seed. The two plan a study
    (`clstm_jax.study.power`): with S seeds and N examples, se^2 = (between + within / N) / S.
    """

    mean: float
    se: float
    p: float  # two-sided
    seeds: int
    examples: int
    method: str
    df: float = math.inf
    between: float = math.nan
    within: float = math.nan

    @property
    def about(self) -> str:
        return NETWORKS if self.seeds == 1 else ARCHITECTURE

    def detectable(self, tests: int = 1, sided: int = 2) -> float:
        return float(detectable(self.se, tests, sided=sided, df=self.df))

    @property
    def low(self) -> float:
        return self.mean - float(half_width(self.se, self.df))

    @property
    def high(self) -> float:
        return self.mean + float(half_width(self.se, self.df))


def unit_variance(d: np.ndarray) -> np.ndarray:
    """Per-unit variance over the last axis, with one pseudo-unit each way (+1 and -1, as `paired_se` adds
    a pseudo-pair to each discordant cell): never 0, so identical outcomes do not claim certainty."""
    n = d.shape[-1]
    total = d.sum(-1)
    squares = (d * d).sum(-1) + 2
    mean = total / (n + 2)
    return (squares - (n + 2) * mean**2) / (n + 1)


def across_seeds(statistics, sampling) -> dict:
    """One statistic per seed (seeds, ...) and the sampling variance of one seed's statistic from its examples
    (...) -> mean, se, df, between: se^2 = max(var of the seed statistics, sampling) / seeds on seeds - 1
    degrees of freedom; one seed: se^2 = sampling, df = inf, between = nan."""
    statistics, sampling = np.asarray(statistics, np.float64), np.asarray(sampling, np.float64)
    seeds = statistics.shape[0]
    if seeds == 1:
        return {"mean": statistics[0], "se": np.sqrt(sampling), "df": math.inf, "between": np.full_like(sampling, np.nan)}
    spread = statistics.var(0, ddof=1)
    return {"mean": statistics.mean(0), "se": np.sqrt(np.maximum(spread, sampling) / seeds), "df": float(seeds - 1),
            "between": np.maximum(spread - sampling, 0.0)}


def seed_level(d) -> dict:
    """The seed-level summary of per-unit differences d (seeds, ..., examples), elementwise over the middle
    axes: `across_seeds` of the seed means, and within (see `PairedTest`)."""
    d = np.asarray(d, np.float64)
    within = unit_variance(d).mean(0)
    return {**across_seeds(d.mean(-1), within / d.shape[-1]), "within": within}


def t_p(mean, se, df) -> np.ndarray:
    """Two-sided p of mean = 0 with standard error se on df degrees of freedom; se = 0 gives 0 or 1."""
    mean, se = np.broadcast_arrays(np.asarray(mean, np.float64), np.asarray(se, np.float64))
    t = np.divide(np.abs(mean), se, out=np.where(mean != 0, np.inf, 0.0), where=se > 0)
    return np.minimum(1.0, 2 * t_sf(t, df))


def paired_test(d, seed: int = 0) -> PairedTest:
    """Is the mean paired difference zero? d: per-unit differences (seeds, examples), each unit already
    reduced over the region a claim names (e.g. its mean correctness over 70 grid points minus the other
    model's).

    Two or more seeds: a t-test across seeds of the per-seed means (`seed_level`), about the
    architecture. One seed: about those networks; McNemar's exact test when d is a difference of two bool
    outcomes, else the sign-flip permutation test over the examples.
    """
    d = np.asarray(d, np.float64)
    seeds, examples = d.shape
    s = seed_level(d)
    if seeds == 1:
        binary = np.all(np.isin(d, (-1.0, 0.0, 1.0)))
        p = float(mcnemar_exact(np.sum(d > 0), np.sum(d < 0))) if binary else sign_flip_p(d, seed=seed)
        method = ("McNemar exact test over the examples of one seed" if binary else
                  "sign-flip permutation test over the examples of one seed")
        return PairedTest(float(s["mean"]), float(s["se"]), p, 1, examples, method, within=float(s["within"]))
    return PairedTest(float(s["mean"]), float(s["se"]), float(t_p(s["mean"], s["se"], s["df"])), seeds, examples,
                      f"t-test across the {seeds} seeds of each seed's mean difference ({seeds - 1} df)",
                      s["df"], float(s["between"]), float(s["within"]))


def point_tests(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """`paired_test` at every grid point at once: bool (seeds, ..., examples) -> mean, se, df, p (...).
    One seed: McNemar over the examples; more: the t-test across seeds."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    s = seed_level(a.astype(np.float64) - b)
    if a.shape[0] == 1:
        s["p"] = mcnemar_exact(np.sum(a & ~b, axis=(0, -1)), np.sum(~a & b, axis=(0, -1)))
    else:
        s["p"] = t_p(s["mean"], s["se"], s["df"])
    return s


def lower_median(values: np.ndarray) -> np.ndarray:
    """The lower median over the last axis: positive exactly when a strict majority of values is positive."""
    return np.quantile(values, 0.5, axis=-1, method="lower")


def majority_test(d, seed: int = 0) -> PairedTest:
    """Is A ahead of B at a strict majority of grid points? d: per-unit differences (seeds, points, examples).

    Each seed's statistic is the lower median over the points of its accuracy differences, positive
    exactly when A is ahead at a strict majority of them (ties count against). Unlike the share of points
    ahead, it moves smoothly with the outcomes, so its sampling error is stable. That error within a seed
    comes from resampling the seed's examples (`MEDIAN_BOOTSTRAP_DRAWS`); across seeds the statistic is
    tested as `paired_test` tests a mean. Exact ties everywhere (se 0) read as a certain "not ahead".
    """
    d = np.asarray(d, np.float64)
    seeds, _, examples = d.shape
    medians = lower_median(d.mean(-1))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, examples, size=(MEDIAN_BOOTSTRAP_DRAWS, examples))
    counts = np.stack([np.bincount(row, minlength=examples) for row in picks]) / examples  # (draws, examples)
    resampled = lower_median(np.einsum("spe,be->sbp", d, counts))  # (seeds, draws)
    sampling = float(resampled.var(axis=1, ddof=1).mean())
    summary = across_seeds(medians, sampling)
    mean, se, df, between = (float(summary[k]) for k in ("mean", "se", "df", "between"))
    p = 0.0 if se == 0 else float(t_p(mean, se, df))  # se 0: exact ties everywhere, certainly no majority ahead
    level = f"t-test across the {seeds} seeds ({seeds - 1} df)" if seeds > 1 else "normal test over one seed's examples"
    return PairedTest(mean, se, p, seeds, examples, f"lower median over the points of each seed's accuracy "
                      f"differences; {level}, its sampling error by resampling examples", df, between,
                      sampling * examples)
