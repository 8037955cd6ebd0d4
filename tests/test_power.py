"""The planner against synthetic outcomes with known variance components: it recovers them, and the seeds
and pairs it asks for give the promised power in simulation."""

import math

import numpy as np

from clstm_jax.core.stats import paired_test, seed_level, t_p
from clstm_jax.study.power import cheapest, mde


def outcomes(rng, draws, seeds, examples, effect, sigma_seed, sigma_unit):
    """Per-unit differences (seeds, draws, examples): effect + a seed effect + an example-level one."""
    return (effect + sigma_seed * rng.normal(size=(seeds, draws, 1))
            + sigma_unit * rng.normal(size=(seeds, draws, examples)))


def test_the_components_are_recovered():
    rng = np.random.default_rng(0)
    d = outcomes(rng, 1, 60, 2000, 0.0, 0.03, 0.4)[:, 0]
    t = paired_test(d)
    assert math.isclose(math.sqrt(t.within), 0.4, rel_tol=0.02)
    assert math.isclose(math.sqrt(t.between), 0.03, rel_tol=0.25)  # 60 seeds: the seed sd within a quarter


def test_planned_seeds_and_pairs_detect_the_target_four_times_in_five():
    """For a 3-point target with a 2-point seed sd and a 40-point unit sd, the cheapest plan, simulated
    2,000 times at exactly the target effect, rejects in about 80% of draws (the stated power)."""
    between, within, target = 0.02**2, 0.4**2, 0.03
    seeds, pairs = cheapest(between, within, target, tests=1, seed_cost=1000.0, pair_cost=1.0)
    assert mde(between, within, seeds, pairs) <= target < mde(between, within, seeds - 1, pairs)
    d = outcomes(np.random.default_rng(1), 2000, seeds, pairs, target, 0.02, 0.4)
    s = seed_level(d)
    power = np.mean(t_p(s["mean"], s["se"], s["df"]) < 0.05)
    assert 0.7 <= power <= 0.95, (seeds, pairs, power)
    # dearer seeds buy more pairs instead, as far as the seed variance allows
    many_pairs = cheapest(between, within, target, tests=1, seed_cost=1e6, pair_cost=1.0)
    assert many_pairs[0] <= seeds and many_pairs[1] >= pairs
    assert cheapest(between, within, 0.001, tests=1, seed_cost=1.0, pair_cost=1.0) is None  # out of reach


def test_plans_reach_their_power_after_the_correction_across_claims():
    """A verdict must survive Holm across every judged claim: with 18 claims the plan for a 3-point target
    rejects at Holm's first step (5% / 18) in about 80% of 2,000 simulated studies at exactly the target;
    the seeds a single claim's own level asks for reach only about half that power there."""
    from types import SimpleNamespace

    from clstm_jax.study.power import plan

    between, within, target, claims = 0.02**2, 0.4**2, 0.03, 18
    deciding = SimpleNamespace(between=between, within=within, seeds=10, examples=96)
    judged = [SimpleNamespace(id=f"claim-{k}", verdict="inconclusive", p_family=0.5,
                              evidence=SimpleNamespace(deciding=deciding, tests=1, seeds=10, detectable=0.05))
              for k in range(claims)]
    row = plan(judged, [3], models=2, steps=100, batch=16, grid_points=100, seconds_per_step=None)[0]
    assert row["across_claims"] == claims
    seeds, pairs = row["targets"][0]["seeds"], row["targets"][0]["pairs"]
    alone = cheapest(between, within, target, tests=1, seed_cost=2 * 100 * 16, pair_cost=2 * 100 / 3)
    assert seeds > alone[0]
    for (s, n), (low, high) in (((seeds, pairs), (0.7, 0.95)), (alone, (0.2, 0.6))):
        d = outcomes(np.random.default_rng(2), 2000, s, n, target, 0.02, 0.4)
        summary = seed_level(d)
        power = np.mean(t_p(summary["mean"], summary["se"], summary["df"]) < 0.05 / claims)
        assert low <= power <= high, (s, n, power)
