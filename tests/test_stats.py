"""Wilson intervals, McNemar's exact test, Holm's correction: against hand-computed values."""

import math

import numpy as np

from clstm_jax.stats import (bootstrap_weights, holm, mcnemar_exact, paired_difference, paired_se, paired_test, sign_flip_p,
                             wilson_interval)


def test_wilson_interval_matches_hand_computed_values():
    low, high = wilson_interval(8, 10)
    # p = 0.8, z = 1.96: centre = (0.8 + 0.19208) / 1.38415 = 0.71674, half = 0.22653
    assert math.isclose(float(low), 0.49016, abs_tol=1e-4)
    assert math.isclose(float(high), 0.94332, abs_tol=1e-4)
    low, high = wilson_interval(0, 20)
    assert float(low) == 0.0 and math.isclose(float(high), 0.16113, abs_tol=1e-4)


def test_mcnemar_exact_equals_the_binomial_sum():
    # b = 3, c = 10: p = 2 * (C(13,0) + C(13,1) + C(13,2) + C(13,3)) / 2**13 = 2 * 378 / 8192
    assert math.isclose(float(mcnemar_exact(3, 10)), 2 * 378 / 8192, rel_tol=1e-9)
    for b, c in [(0, 7), (5, 5), (40, 61), (200, 150)]:
        n, k = b + c, min(b, c)
        expected = min(1.0, 2 * sum(math.comb(n, j) for j in range(k + 1)) / 2**n)
        assert math.isclose(float(mcnemar_exact(b, c)), expected, rel_tol=1e-9)
    assert float(mcnemar_exact(0, 0)) == 1.0
    assert mcnemar_exact(np.array([[3, 0]]), np.array([[10, 0]])).shape == (1, 2)


def test_holm_adjusts_step_down_and_keeps_order():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> cumulative max 0.09, then 0.5
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, 0.5])
    assert holm(np.array([0.6, 0.7])).max() == 1.0


def test_paired_difference_counts_discordant_pairs():
    a = np.array([[1, 1, 0, 1], [1, 0, 0, 1]], bool)  # (seeds, examples)
    b = np.array([[0, 1, 1, 0], [1, 0, 0, 0]], bool)
    result = paired_difference(a, b, axes=(0, 1))
    assert int(result["b"]) == 3 and int(result["c"]) == 1
    assert math.isclose(float(result["difference"]), (3 - 1) / 8)
    assert math.isclose(float(result["p"]), float(mcnemar_exact(3, 1)))


def test_paired_se_adds_one_pseudo_pair_to_each_discordant_cell():
    # b = 3, c = 1, n = 8 -> b' = 4, c' = 2 of 10: mean 0.2, variance (6 - 10 * 0.04) / 9, se = sqrt(variance / 8)
    assert math.isclose(float(paired_se(3, 1, 8)), math.sqrt((6 - 0.4) / 9 / 8), rel_tol=1e-12)
    assert float(paired_se(0, 0, 50)) > 0  # identical outcomes do not claim certainty


def test_sign_flip_p_enumerates_every_pattern():
    # non-zero differences 0.5, 1, -0.5 (the zero drops out): |sum| over the 8 sign patterns is
    # 1, 2, 1, 0, 0, 1, 2, 1; the observed |sum| = 1 is reached by 6 of 8
    assert sign_flip_p(np.array([[0.5, 1.0, 0.0, -0.5]])) == 0.75
    assert sign_flip_p(np.zeros((2, 5))) == 1.0
    assert sign_flip_p(np.ones(10)) == 2 * 0.5**10  # the exact floor: all signs alike
    many = np.ones(40)  # Monte Carlo: never below 1 / (1 + draws)
    assert sign_flip_p(many, draws=999) == 1 / 1000


def test_bootstrap_weights_resample_units_or_seed_clusters():
    rng = np.random.default_rng(0)
    flat = bootstrap_weights(2, 50, 300, rng)
    assert flat.shape == (300, 2, 50) and np.all(flat.sum(axis=(1, 2)) == 100)
    clustered = bootstrap_weights(3, 50, 300, rng)
    assert np.all(clustered.sum(axis=(1, 2)) == 150)
    assert np.all(clustered.sum(axis=2) % 50 == 0)  # whole seeds drawn, each followed by 50 examples
    assert np.any(clustered.sum(axis=2) == 0) and np.any(clustered.sum(axis=2) == 100)


def test_paired_test_uses_the_unit_test_or_the_cluster_bootstrap():
    d = np.array([[0.5, 1.0, 0.0, -0.5]])
    one = paired_test(d)
    assert one.p == 0.75 and one.mean == 0.25 and "sign-flip" in one.method
    assert paired_test(np.zeros((3, 20))).p == 1.0
    clustered = paired_test(np.ones((3, 20)))
    assert "bootstrap" in clustered.method and clustered.p == 2 / (1 + 4000)  # no resample at or below 0


def null_pair(rng, seeds: int, points: int, examples: int):
    """Outcomes of two models with identical distributions: each (model, seed, example) has its own skill,
    fixed across the grid points (a model that knows an example knows it at every noise level)."""
    difficulty = rng.normal(size=examples)

    def model():
        skill = 1 / (1 + np.exp(-(difficulty + 1.5 * rng.normal(size=(seeds, examples)))))
        return rng.random((seeds, points, examples)) < skill[:, None, :]

    return model(), model()


def test_region_test_rejects_equal_models_at_its_level_and_the_pooled_test_does_not():
    rng = np.random.default_rng(1)
    for seeds, draws, (low, high) in ((1, 200, (0.015, 0.09)), (3, 150, (0.0, 0.09))):
        region, pooled = [], []
        for _ in range(draws):
            a, b = null_pair(rng, seeds, 100, 96)
            region.append(paired_test(a.mean(axis=1) - b.mean(axis=1), seed=int(rng.integers(1 << 30))).p < 0.05)
            pooled.append(float(mcnemar_exact(np.sum(a & ~b), np.sum(~a & b))) < 0.05)  # 100 x 96 "independent" pairs
        assert low <= np.mean(region) <= high, (seeds, np.mean(region))
        assert np.mean(pooled) > 0.5, (seeds, np.mean(pooled))
