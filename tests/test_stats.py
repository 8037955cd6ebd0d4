"""Wilson intervals, McNemar's exact test, Holm's correction: against hand-computed values."""

import math

import numpy as np

from clstm_jax.stats import holm, mcnemar_exact, paired_difference, wilson_interval


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
