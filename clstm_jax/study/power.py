"""`clstm-jax power`: plan a study from the variance components a run measured.

Every judged claim's deciding test (`claims.Evidence.deciding`) carries two
variance components of its per-unit paired difference: `between`, the
variance of a seed's mean beyond its examples' sampling error (the seed
random effect), and `within`, the variance of one example's difference
inside a seed. With S seeds and N test pairs per point the test's standard
error is sqrt((between + within / N) / S) on S - 1 degrees of freedom, so
the minimum detectable effect at 80% power is (t(1 - alpha / 2k, S - 1) +
t(0.8, S - 1)) times that, with k the claim's own comparisons times the
claims its verdict is corrected over: a verdict stands only if its p,
Holm-adjusted across every judged claim, is below 5% (`claims.judge`), so the
plan prices Holm's first step, the Bonferroni level (docs/results-decided-cpu.md
shows what planning at the claim's own level left undecided). For
each target MDE the planner finds the cheapest (S, N) that reaches it,
counting the cost as training S seeds of the claim's models and evaluating
them on the grid, priced from the run's own measured step time
(metrics.jsonl) and evaluation rate (eval/accuracy.npz) when it has them. A claim measured on one seed has no seed
variance of its own: it is planned with the median between-seed variance
of the run's multi-seed claims, and says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from clstm_jax.config.experiments import FUSION_POINT
from clstm_jax.core.stats import detectable
from clstm_jax.study.claims import Judged

PAIRS = (64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)  # candidate test pairs per point
MAX_SEEDS = 200
FORWARD_SHARE = 1 / 3  # a forward pass costs about a third of a training example (forward + backward)


def mde(between: float, within: float, seeds, pairs, tests: int = 1) -> np.ndarray:
    """The minimum detectable effect (accuracy fraction) of a seed-level test with `seeds` seeds and `pairs`
    test pairs (elementwise); one seed: the test about those networks (normal quantiles, no seed variance)."""
    seeds, pairs = np.broadcast_arrays(np.asarray(seeds, np.float64), np.asarray(pairs, np.float64))
    df = np.where(seeds > 1, seeds - 1, np.inf)
    variance = np.where(seeds > 1, between, 0.0) + within / pairs
    return detectable(np.sqrt(variance / seeds), tests, df=df)


def cheapest(between: float, within: float, target: float, tests: int, seed_cost: float, pair_cost: float):
    """The (seeds, pairs) of `PAIRS` x 2..`MAX_SEEDS` reaching MDE <= target at the least cost
    seeds x (seed_cost + pairs x pair_cost); None when none does."""
    seeds, pairs = np.meshgrid(np.arange(2, MAX_SEEDS + 1), np.array(PAIRS), indexing="ij")
    ok = mde(between, within, seeds, pairs, tests) <= target
    if not ok.any():
        return None
    cost = np.where(ok, seeds * (seed_cost + pairs * pair_cost), np.inf)
    k = np.unravel_index(np.argmin(cost), cost.shape)
    return int(seeds[k]), int(pairs[k])


def step_seconds(run_dir: Path) -> float | None:
    """Median seconds per training step of the whole run, from metrics.jsonl (None when not recorded)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    values = [r["step_seconds"] for r in map(json.loads, path.read_text().splitlines()) if r.get("step_seconds")]
    return float(np.median(values)) if values else None


def plan(judged: list[Judged], targets, models: int, steps: int, batch: int, grid_points: int,
         seconds_per_step: float | None, item_seconds: float | None = None) -> list[dict]:
    """One row per judged claim with a deciding test: its components and, per target MDE (points), the
    cheapest seeds and pairs with their cost. Costs in model-examples (training) and forward passes
    (evaluation); in seconds too when the run's step time is known (`seconds_per_step` of all `models`),
    evaluation priced by the run's measured `item_seconds` (all models) or, without it, as a third of a
    training example per forward pass."""
    tests = [j for j in judged if j.evidence.deciding is not None]
    across = max(1, sum(math.isfinite(j.p_family) for j in judged))  # the claims the verdicts are Holm-corrected over
    measured = [j.evidence.deciding.between for j in tests if j.evidence.seeds > 1]
    fallback = float(np.median(measured)) if measured else math.nan
    example_seconds = seconds_per_step / (models * batch) if seconds_per_step else None
    forward_seconds = (item_seconds / models if item_seconds else
                       example_seconds * FORWARD_SHARE if example_seconds else None)
    rows = []
    for j in tests:
        t, k = j.evidence.deciding, j.evidence.tests * across
        assumed = j.evidence.seeds == 1
        between = fallback if assumed else t.between
        compared = 1 + j.evidence.tests  # a reference model and each model it is compared with
        seed_cost = compared * steps * batch  # model-examples of training per seed
        pair_cost = compared * grid_points * (forward_seconds / example_seconds if example_seconds else FORWARD_SHARE)
        row = {"id": j.id, "verdict": j.verdict, "seeds": t.seeds, "examples": t.examples,
               "between": None if math.isnan(between) else between, "between_assumed": assumed,
               "within": t.within, "mde_now": j.evidence.detectable, "tests": j.evidence.tests, "across_claims": across,
               "mde_now_corrected": None if math.isnan(between) else float(mde(between, t.within, t.seeds, t.examples, k)),
               "targets": []}
        for target in targets:
            best = None if math.isnan(between) else cheapest(between, t.within, target / 100, k, seed_cost, pair_cost)
            entry = {"mde": target, "seeds": None, "pairs": None}
            if best:
                s, n = best
                entry.update(seeds=s, pairs=n, train_model_examples=s * seed_cost,
                             eval_forward_passes=int(s * compared * grid_points * n))
                if example_seconds:
                    entry.update(train_seconds=s * seed_cost * example_seconds,
                                 eval_seconds=s * compared * grid_points * n * forward_seconds)
            row["targets"].append(entry)
        rows.append(row)
    return rows


def plan_text(rows: list[dict], seconds_known: bool) -> list[str]:
    across = rows[0]["across_claims"] if rows else 1
    lines = ["claim: seed sd (between), unit sd (within), MDE now (its own test; after the correction across the "
             f"{across} judged claims) -> per target MDE after that correction: seeds x test pairs per point "
             "(training, evaluation cost)"]
    for row in rows:
        between = "unknown" if row["between"] is None else f"{100 * math.sqrt(row['between']):.2f} points"
        lines.append(f"{row['id']} [{row['seeds']} seed(s) x {row['examples']} pairs, {row['verdict']}]: seed sd "
                     f"{between}{' (assumed: the median of the multi-seed claims)' if row['between_assumed'] else ''}, unit sd "
                     f"{100 * math.sqrt(row['within']):.1f} points, MDE now {100 * row['mde_now']:.1f} points"
                     + ("" if row["mde_now_corrected"] is None else f" ({100 * row['mde_now_corrected']:.1f} corrected)"))
        for t in row["targets"]:
            if t["seeds"] is None:
                lines.append(f"  MDE {t['mde']:g} points: not reachable with up to {MAX_SEEDS} seeds and "
                             f"{PAIRS[-1]} pairs" if row["between"] is not None else
                             f"  MDE {t['mde']:g} points: needs a run with at least 2 seeds to estimate the seed variance")
                continue
            cost = (f"{t['train_seconds'] / 3600:.1f} h training, {t['eval_seconds'] / 3600:.1f} h evaluation"
                    if seconds_known else f"{t['train_model_examples']:,} model-examples of training, "
                    f"{t['eval_forward_passes']:,} forward passes")
            lines.append(f"  MDE {t['mde']:g} points: {t['seeds']} seeds x {t['pairs']} pairs ({cost})")
    return lines


def stored_study(run_dir: Path, fusion_point=FUSION_POINT):
    """The study view of a run's stored outcomes alone (RUN/eval: no checkpoint needed), its models read
    from models.json, or from the evaluation's model names; its fusion comparison at `fusion_point`
    (`study.fusion_point`)."""
    from clstm_jax.evaluation.evaluate import load_evaluation
    from clstm_jax.evaluation.modality_use import load_modality_use
    from clstm_jax.evaluation.run import read_specs
    from clstm_jax.model.spec import ModelSpec
    from clstm_jax.study.view import Study
    from clstm_jax.training.run_dir import RunFiles

    evaluation = load_evaluation(run_dir)
    specs = (read_specs(run_dir) if RunFiles(run_dir).models.exists()
             else tuple(ModelSpec.from_name(name) for name in evaluation.names))
    return Study(evaluation, specs, modality_use=load_modality_use(run_dir), fusion_point=fusion_point)


def judge_stored(study, config) -> list[Judged]:
    """The claims of `config.study` judged on stored outcomes; 4.6-audio-arrives only if its audio swap
    was measured (it needs the models)."""
    from clstm_jax.study.claims import judge, scope_ids

    ids = [i for i in scope_ids(config.study.scope) if i != "4.6-audio-arrives" or study.audio_swap is not None]
    return judge(study, config.study.margin, ids, config.study.families)
