"""Every claim reaches each of its verdicts on synthetic outcomes; the family correction; the paper's words."""

import dataclasses
import re

import numpy as np
import pytest
from conftest import ROOT

from clstm_jax.config import load_config
from clstm_jax.config.experiments import APPENDIX, FUSION_POINT, GRID_AUDIO, GRID_VISUAL, LATE, study_models
from clstm_jax.evaluation.evaluate import Evaluation
from clstm_jax.evaluation.modality_use import CONDITIONS, ModalityUse
from clstm_jax.study.claims import (
    ABSENT,
    CLAIMS,
    FAILS,
    FOR_NETWORKS,
    HOLDS,
    INCONCLUSIVE,
    TOO_FEW,
    UNTESTABLE,
    UNUSED,
    Evidence,
    judge,
    modality_check,
    qualify,
    scope_ids,
)
from clstm_jax.study.view import Study

SNRS = np.array([np.inf, 16, 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625], np.float32)


class Synthetic:
    """A study of the real model list whose outcomes a test writes by hand; every model starts as the same
    random outcomes (identical models)."""

    def __init__(self, examples=96, seeds=(0, 1, 2), seed=0, flat=False, families=("masked",), scope="paper",
                 point=FUSION_POINT):
        config = load_config(ROOT / "sweeps" / "study.toml", ["preset=tiny", f"study.seeds={list(seeds)}",
                                                              f"study.families={','.join(families)}", f"study.scope={scope}",
                                                              f"study.fusion_point={list(point)}"])
        self.specs = study_models(config)
        self.rng = np.random.default_rng(seed)
        same = self.rng.random((1 if flat else 10, 1 if flat else 10, examples)) < 0.6  # flat: alike at every point
        correct = np.broadcast_to(same, (len(self.specs), 10, 10, examples)).copy()
        self.evaluation = Evaluation(tuple(s.name for s in self.specs), SNRS, SNRS, correct, np.zeros(examples, int),
                                     "subset", 1)
        swap = self.rng.random((len(seeds), examples)) < 0.6
        self.study = Study(self.evaluation, self.specs, (swap, swap.copy()), fusion_point=point)

    def models(self, fusion, modalities, a, v, family="masked"):
        return self.study.models(fusion, modalities, a, v, family)

    def set(self, fusion, modalities, a, v, value, where=(Ellipsis,), family="masked"):
        """Outcomes of a configuration (every seed): True, False, or "random" (a fresh draw), at `where`."""
        for m in self.models(fusion, modalities, a, v, family):
            block = self.evaluation.correct[m]
            block[where] = self.rng.random(block[where].shape) < 0.5 if value == "random" else value

    def verdict(self, claim_id, margin=2.0):
        return CLAIMS[claim_id].judge(self.study, margin).verdict


def fusion_point(s: Synthetic, initial):
    """Initial fusion at the study's fusion point set to `initial`, the late models random."""
    for late in LATE:
        s.set(late, "both", *s.study.fusion_point, "random")
    s.set("initial", "both", *s.study.fusion_point, initial)


@pytest.mark.parametrize("claim_id", ["4.3-training-point", "4.3-majority", "4.3-second-except-low-audio"])
def test_fusion_claims_reach_every_verdict(claim_id):
    for initial, expected in ((True, HOLDS), (False, FAILS)):
        s = Synthetic()
        fusion_point(s, initial)
        assert s.verdict(claim_id) == expected, (initial, expected)
    if claim_id != "4.3-majority":  # identical models tie everywhere: no majority (next test)
        assert Synthetic().verdict(claim_id) == INCONCLUSIVE


def test_second_fusion_may_lead_below_the_training_audio_snr():
    s = Synthetic()
    s.set("initial", "both", *FUSION_POINT, True)
    s.set("second", "both", *FUSION_POINT, "random")
    low_audio = (SNRS < FUSION_POINT[0],)  # rows: test audio SNRs
    s.set("initial", "both", *FUSION_POINT, False, low_audio)
    s.set("second", "both", *FUSION_POINT, True, low_audio)
    assert s.verdict("4.3-second-except-low-audio") == HOLDS
    s.set("second", "both", *FUSION_POINT, True, (SNRS == 1,))  # and now at an easier audio SNR too
    s.set("initial", "both", *FUSION_POINT, False, (SNRS == 1,))
    assert s.verdict("4.3-second-except-low-audio") == FAILS


def test_majority_is_strict_ties_count_against():
    s = Synthetic()  # identical models: every point tied
    assert s.verdict("4.3-majority") == FAILS
    rows = np.arange(10)[:, None] * np.ones(10, int)
    s.set("initial", "both", *FUSION_POINT, True, (rows < 6,))  # initial ahead at 60 points, tied at 40
    assert s.verdict("4.3-majority") == HOLDS
    s.set("initial", "both", *FUSION_POINT, False, (rows == 5,))  # 50 ahead, 10 behind, 40 tied: no strict majority
    assert s.verdict("4.3-majority") == FAILS
    # 48 points clearly ahead, 48 clearly behind, 4 ahead by one example each: the share is 52%, but uncertain
    s = Synthetic()
    ahead, behind = rows < 5, rows >= 5
    ahead[0, :2] = behind[9, :2] = False
    s.set("initial", "both", *FUSION_POINT, True, (ahead,))
    s.set("initial", "both", *FUSION_POINT, False, (behind,))
    for late in LATE:
        s.set(late, "both", *FUSION_POINT, True, (behind,))
    for i, j in ((0, 0), (0, 1), (9, 0), (9, 1)):
        m = s.models("initial", "both", *FUSION_POINT)[0]
        s.evaluation.correct[m, i, j, np.flatnonzero(~s.evaluation.correct[m, i, j])[0]] = True
    assert s.verdict("4.3-majority", margin=0.0) == INCONCLUSIVE
    assert s.verdict("4.3-majority") == "equivalent within 2 points"  # the median point's difference is near 0


def test_margin_claims_reach_every_verdict():
    # fc-never-worse: equal models on many examples: intervals exclude a 2-point loss
    big = Synthetic(examples=2000, flat=True)
    assert big.verdict("4.3-fc-never-worse") == HOLDS
    assert big.verdict("4.4-easier-points") == HOLDS
    # a loss of 1.9 points at one point: measured precisely, but its bound crosses -2: neither verdict
    i, j = 4, 4
    initial = big.models("initial", "both", *FUSION_POINT)
    right = np.flatnonzero(big.evaluation.correct[initial[0], i, j])[:38]  # 38 x 3 seeds = 1.9% of 6000 units
    for m in initial:
        big.evaluation.correct[m, i, j, right] = False
    assert big.verdict("4.3-fc-never-worse") == INCONCLUSIVE
    for m in big.models("initial", "both", 2.0, 1.0):  # the same at one easier point of a quadrant model
        big.evaluation.correct[m, 0, 0, np.flatnonzero(big.evaluation.correct[m, 0, 0])[:38]] = False
    assert big.verdict("4.4-easier-points") == INCONCLUSIVE
    small = Synthetic(examples=20, seeds=(0,), flat=True)  # equal models, too few examples to exclude a 2-point loss
    assert small.verdict("4.3-fc-never-worse") == UNTESTABLE
    assert small.verdict("4.4-easier-points") == UNTESTABLE
    assert small.verdict("4.3-fc-never-worse", margin=50) == HOLDS  # the margin is the config's
    worse = Synthetic()
    worse.set("initial", "both", *FUSION_POINT, False, (slice(0, 2),))
    worse.set("fc", "both", *FUSION_POINT, True, (slice(0, 2),))
    assert worse.verdict("4.3-fc-never-worse") == FAILS
    worse.set("initial", "both", 1.0, 0.5, True, (5, 6))  # training point right, an easier point wrong
    worse.set("initial", "both", 1.0, 0.5, False, (0, 0))
    assert worse.verdict("4.4-easier-points") == FAILS


def test_appendix_claim_is_judged_on_each_figures_region():
    s = Synthetic()
    for number, (a, v) in APPENDIX.items():
        s.set("fc", "both", a, v, "random")
        s.set("initial", "both", a, v, True)
        if number != 9:  # Figs. 10-12 claim nothing at test audio <= 1: fc may lead there
            s.set("initial", "both", a, v, False, (SNRS <= 1,))
            s.set("fc", "both", a, v, True, (SNRS <= 1,))
    assert s.verdict("A.3-appendix-fc") == HOLDS
    s.set("initial", "both", *APPENDIX[9], False, (SNRS <= 1,))  # Fig. 9's region is the whole grid
    s.set("fc", "both", *APPENDIX[9], True, (SNRS <= 1,))
    assert s.verdict("A.3-appendix-fc") == FAILS
    assert Synthetic().verdict("A.3-appendix-fc") == INCONCLUSIVE


def test_dependence_claims_reach_every_verdict():
    """Outcomes that vary with the test visual SNR only: vision dependence holds, audio dependence fails;
    varying with the audio SNR only, the reverse; identical random outcomes: neither."""
    for driven, visual_verdict, audio_verdict in (("visual", HOLDS, FAILS), ("audio", FAILS, HOLDS)):
        s = Synthetic()
        for a in GRID_AUDIO:
            for v in GRID_VISUAL:
                s.set("initial", "both", a, v, True)
                s.set("initial", "both", a, v, False, (slice(None), slice(5, None)) if driven == "visual" else (slice(5, None),))
        assert (s.verdict("4.4-visual-dependence"), s.verdict("4.4-audio-dependence")) == (visual_verdict, audio_verdict)
    s = Synthetic()
    assert (s.verdict("4.4-visual-dependence"), s.verdict("4.4-audio-dependence")) == (INCONCLUSIVE, INCONCLUSIVE)


def test_unimodal_claims_reach_every_verdict():
    for clean_trained, verdict in ((True, HOLDS), (False, FAILS)):
        s = Synthetic()
        for modalities, snrs in (("visual", (np.inf, 0.125)), ("audio", (np.inf, 0.25))):
            pairs = [(np.inf, x) if modalities == "visual" else (x, np.inf) for x in snrs]
            s.set("initial", modalities, *pairs[0], clean_trained)
            s.set("initial", modalities, *pairs[1], not clean_trained)
        assert s.verdict("4.5-unimodal-noise-cost") == verdict
    assert Synthetic().verdict("4.5-unimodal-noise-cost") == INCONCLUSIVE
    # one modality's model loses everything to noisy training, the other's nothing: is the audio loss larger?
    for audio_loses, verdict in ((True, HOLDS), (False, FAILS)):
        s = Synthetic()
        for modalities, noisiest in (("audio", (0.25, np.inf)), ("visual", (np.inf, 0.125))):
            s.set("initial", modalities, np.inf, np.inf, True)
            s.set("initial", modalities, *noisiest, not audio_loses if modalities == "audio" else audio_loses)
        assert s.verdict("4.5-audio-cost-larger") == verdict
    assert Synthetic().verdict("4.5-audio-cost-larger") == INCONCLUSIVE


def test_both_contribute_and_audio_arrives_reach_every_verdict():
    for multi, verdict in ((True, HOLDS), (False, FAILS)):
        s = Synthetic()
        s.set("initial", "visual", np.inf, FUSION_POINT[1], "random")
        s.set("initial", "audio", FUSION_POINT[0], np.inf, "random")
        s.set("initial", "both", *FUSION_POINT, multi)
        assert s.verdict("4.5-both-contribute") == verdict
    assert Synthetic().verdict("4.5-both-contribute") == INCONCLUSIVE
    s = Synthetic()
    matched, mismatched = s.study.audio_swap
    assert s.verdict("4.6-audio-arrives") == INCONCLUSIVE
    matched[:], mismatched[:] = True, s.rng.random(mismatched.shape) < 0.3
    assert s.verdict("4.6-audio-arrives") == HOLDS
    matched[:], mismatched[:] = False, True
    assert s.verdict("4.6-audio-arrives") == FAILS


def test_the_correction_across_claims_can_turn_a_verdict(monkeypatch):
    registry = {}
    for k, p in enumerate((0.01, 0.03, 0.04)):
        evidence = Evidence("m", "t", HOLDS, p, "u", 0.1, seeds=3)
        registry[f"c{k}"] = type(CLAIMS["4.6-audio-arrives"])(f"c{k}", "x", "s", "r", lambda study, margin, e=evidence: e,
                                                              False)
    monkeypatch.setattr("clstm_jax.study.claims.CLAIMS", registry)
    judged = judge(Synthetic().study)
    # Holm: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; max(0.06, 0.04) = 0.06
    assert [j.p_family for j in judged] == pytest.approx([0.03, 0.06, 0.06])
    assert [j.verdict for j in judged] == [HOLDS, INCONCLUSIVE, INCONCLUSIVE]


def test_every_claim_quotes_the_paper(data_dir):
    paper = (data_dir.parent / "paper" / "early-fusion-paper.md").read_text()
    text = re.sub(r"\s+", " ", paper)
    for claim in CLAIMS.values():
        assert claim.sentence in text, claim.id
        assert re.fullmatch(r"(4\.[3-6]|A\.3)-[a-z0-9-]+", claim.id) and claim.id.startswith(claim.section)


def test_fusion_claims_wait_for_both_modalities():
    """The precondition on both sides: mismatching either input must cost the initial-fusion model a
    significant drop at the fusion point, or every fusion claim reads "not testable at this size"."""
    s = Synthetic(seeds=range(5))  # 5 seeds: a t-test on 4 df, whose p survives Holm over every claim
    fusion_point(s, True)  # initial fusion ahead: the fusion claims would hold
    use = np.zeros((len(s.specs), 2, len(CONDITIONS), 96), bool)
    use[:, :, 0] = True  # matched right, every swapped or zeroed input wrong: both modalities used
    s.study = dataclasses.replace(s.study, modality_use=ModalityUse(s.evaluation.names, use, np.zeros(96, int), 1))
    assert modality_check(s.study).verdict == HOLDS
    judged = {j.claim.id: j for j in judge(s.study)}
    assert judged["4.3-training-point"].verdict == HOLDS
    use[:, :, CONDITIONS.index("audio mismatched")] = True  # another digit's recording changes nothing
    assert modality_check(s.study).verdict == f"{UNUSED}: audio unused"
    judged = {j.claim.id: j for j in judge(s.study)}
    for claim_id, j in judged.items():
        if CLAIMS[claim_id].fusion:
            assert j.verdict == f"{UNUSED}: audio unused" and np.isnan(j.p_family), claim_id
        else:
            assert not j.verdict.startswith(UNUSED) and 0 <= j.p_family <= 1, claim_id
    assert {"4.4-easier-points", "4.5-unimodal-noise-cost", "4.5-audio-cost-larger", "4.5-comparable"} == {
        c for c in CLAIMS if not CLAIMS[c].fusion}
    use[:, :, CONDITIONS.index("image mismatched")] = True
    assert modality_check(s.study).verdict == f"{UNUSED}: audio and image unused"
    s.study = dataclasses.replace(s.study, modality_use=None)
    assert modality_check(s.study).verdict.startswith(UNUSED)


def both_used(s: Synthetic) -> None:
    """Modality use in which every swapped or zeroed input costs every model: the fusion claims are judged."""
    use = np.zeros((len(s.specs), 2, len(CONDITIONS), s.evaluation.examples), bool)
    use[:, :, 0] = True
    s.study = dataclasses.replace(s.study, modality_use=ModalityUse(s.evaluation.names, use, np.zeros(s.evaluation.examples, int), 1))


def test_each_family_judges_the_fusion_claims_on_its_own_late_models():
    """Against the same initial models, masked late models that lose, width-matched ones that tie and A.2
    ones that win give three verdicts; results.md says where the families agree and where they differ."""
    from clstm_jax.study.pipeline import family_lines

    s = Synthetic(families=("masked", "matched", "a2"), scope="fusion", seeds=range(5))
    assert s.study.families == ["masked", "matched", "a2"]
    assert len(s.specs) == 5 * (1 + 3 * 2) + 2  # initial once per seed, second and fc per family, two unimodal
    s.set("initial", "both", *FUSION_POINT, "random")
    for late in LATE:
        s.set(late, "both", *FUSION_POINT, False, family="masked")
        s.set(late, "both", *FUSION_POINT, "random", family="a2")
        for m, initial in zip(s.models(late, "both", *FUSION_POINT, "matched"), s.models("initial", "both", *FUSION_POINT)):
            s.evaluation.correct[m] = s.evaluation.correct[initial]  # the same outcomes: ties
    for m in s.models(late, "both", *FUSION_POINT, "a2"):
        s.evaluation.correct[m] = True  # a2 fc right everywhere: ahead of initial
    both_used(s)
    ids = scope_ids("fusion")
    assert ids == [c for c in CLAIMS if CLAIMS[c].fusion_point] and len(ids) == 11
    judged = judge(s.study, 2.0, ids, ("masked", "matched", "a2"))
    assert [j.id for j in judged][:3] == ["4.3-training-point", "4.3-training-point/matched", "4.3-training-point/a2"]
    assert len(judged) == 8 * 3 + 3 and len({j.id for j in judged}) == len(judged)
    verdict = {j.id: j.verdict for j in judged}
    assert [verdict[f"4.3-training-point{f}"] for f in ("", "/matched", "/a2")] == [HOLDS, INCONCLUSIVE, FAILS]
    # each family's evidence reads its own late models: the same claim on a study viewed as that family
    for family in ("matched", "a2"):
        alone = CLAIMS["4.3-majority"].judge(s.study.of_family(family), 2.0)
        assert next(j for j in judged if j.id == f"4.3-majority/{family}").evidence == alone
    lines = "\n".join(family_lines(judged, s.study))
    assert "| `4.3-training-point` | holds | inconclusive | does not hold | differ |" in lines
    assert "| `4.3-fc-never-worse` |" in lines and "**The families agree on" in lines
    assert family_lines([j for j in judged if j.family == "masked"], Synthetic().study) == []  # one family: no section


def test_robustness_claims_reach_every_verdict():
    for claim_id in ("4.3-robust-increases", "4.3-robust-audio"):
        for initial, expected in ((True, HOLDS), (False, FAILS)):
            s = Synthetic()
            fusion_point(s, "random")
            if claim_id == "4.3-robust-increases":
                s.set("initial", "both", *FUSION_POINT, initial)
            else:  # initial right (or wrong) where only the audio is cleaner; both alike where only the image is
                louder = (SNRS[:, None] > FUSION_POINT[0]) & (SNRS[None, :] == np.float32(FUSION_POINT[1]))
                s.set("initial", "both", *FUSION_POINT, initial, (louder,))
                for late in LATE:
                    s.set(late, "both", *FUSION_POINT, not initial, (louder,))
            assert s.verdict(claim_id) == expected, (claim_id, initial)
        assert Synthetic().verdict(claim_id) == INCONCLUSIVE


def test_only_second_claim_reaches_every_verdict():
    region = (SNRS[:, None] < FUSION_POINT[0]) & (SNRS[None, :] >= FUSION_POINT[1])
    s = Synthetic(examples=1000)  # identical models: fc excluded beyond 2 points, second not ahead
    assert s.verdict("4.3-only-second") == "equivalent within 2 points"  # second inside +-2 points of initial
    assert s.verdict("4.3-only-second", margin=0.0) == INCONCLUSIVE
    s.set("initial", "both", *FUSION_POINT, False, (region,))
    s.set("second", "both", *FUSION_POINT, True, (region,))  # second leads in the region; fc ties initial there
    for m_fc, m_initial in zip(s.models("fc", "both", *FUSION_POINT), s.models("initial", "both", *FUSION_POINT)):
        s.evaluation.correct[m_fc] = s.evaluation.correct[m_initial]
    assert s.verdict("4.3-only-second") == HOLDS
    s.set("fc", "both", *FUSION_POINT, True, (region,))  # fc leads there too: not only the second layer
    assert s.verdict("4.3-only-second") == FAILS


def modality_use(s: Synthetic, drop) -> None:
    """Modality use in which model m loses to another digit's `modality` with probability drop(spec, modality)."""
    use = np.zeros((len(s.specs), 2, len(CONDITIONS), s.evaluation.examples), bool)
    use[:, :, 0] = True
    for m, spec in enumerate(s.specs):
        for modality in ("audio", "image"):
            k = CONDITIONS.index(f"{modality} mismatched")
            use[m, :, k] = s.rng.random(use[m, :, k].shape) >= drop(spec, modality)
    s.study = dataclasses.replace(s.study, modality_use=ModalityUse(s.evaluation.names, use, np.zeros(s.evaluation.examples, int), 1))


def test_modality_use_claims_reach_every_verdict():
    cases = {  # claim -> (drop giving holds, drop giving does not hold)
        "4.3-both-modalities": (lambda spec, x: 1.0 if x == "image" else 0.6 if spec.fusion == "initial" else 0.1,
                                lambda spec, x: 1.0 if x == "image" else 0.1 if spec.fusion == "initial" else 0.6),
        "4.5-comparable": (lambda spec, x: 0.9 if x == "image" else 0.8, lambda spec, x: 0.9 if x == "image" else 0.1),
        "4.4-audio-dependence-increases": (lambda spec, x: 0.5 if x == "audio" and spec.visual_snr <= 0.25 else 0.05,
                                           lambda spec, x: 0.05 if x == "audio" and spec.visual_snr <= 0.25 else 0.5),
    }
    for claim_id, (holds, fails) in cases.items():
        for drop, expected in ((holds, HOLDS), (fails, FAILS)):
            s = Synthetic()
            modality_use(s, drop)
            assert s.verdict(claim_id) == expected, (claim_id, expected)
        s = Synthetic()
        alike = (lambda spec, x: 1.0 if x == "image" else 0.45) if claim_id != "4.5-comparable" else (
            lambda spec, x: 1.0 if x == "image" else 0.5)  # comparable: the smaller exactly half the larger
        modality_use(s, alike)
        assert s.verdict(claim_id) == INCONCLUSIVE, claim_id
        assert Synthetic().verdict(claim_id).startswith(UNUSED)  # modality use not measured


def test_one_seed_verdicts_are_about_the_networks():
    """A verdict resting on one seed says so, or reads "too few seeds"; several seeds judge the architecture."""
    assert qualify(HOLDS, 1) == f"{HOLDS} {FOR_NETWORKS}" == "holds for these networks, 1 seed"
    assert qualify(FAILS, 1) == "does not hold for these networks, 1 seed"
    assert qualify(INCONCLUSIVE, 1) == qualify(UNTESTABLE, 1) == TOO_FEW
    assert qualify(HOLDS, 3) == HOLDS and qualify(INCONCLUSIVE, 2) == INCONCLUSIVE
    s = Synthetic()  # 3 seeds of the fusion comparison, one of everything else
    for modalities, snrs in (("visual", (np.inf, 0.125)), ("audio", (np.inf, 0.25))):
        pairs = [(np.inf, x) if modalities == "visual" else (x, np.inf) for x in snrs]
        s.set("initial", modalities, *pairs[0], True)
        s.set("initial", modalities, *pairs[1], False)
    judged = {j.id: j for j in judge(s.study, ids=["4.5-unimodal-noise-cost", "4.4-easier-points",
                                                     "4.3-fc-never-worse"])}
    assert judged["4.5-unimodal-noise-cost"].verdict == "holds for these networks, 1 seed"
    assert judged["4.5-unimodal-noise-cost"].record()["about"] == "networks"
    assert judged["4.4-easier-points"].verdict == TOO_FEW  # one seed of 96 examples cannot exclude 2 points
    record = judged["4.3-fc-never-worse"].record()
    assert record["about"] == "architecture" and record["seeds"] == 3
    assert set(record) >= {"id", "section", "family", "region", "estimate", "interval", "p", "p_holm", "mde", "seeds",
                           "verdict", "about"}


def test_claims_whose_models_the_run_lacks_are_not_testable_on_it():
    """A fusion-only run judged on every claim (`clstm-jax power` on a pilot): the claims reading models it did
    not train say which, and take no part in the correction; those it has models for are judged as before."""
    s = Synthetic(scope="fusion", seeds=range(5))
    fusion_point(s, True)
    both_used(s)
    judged = {j.id: j for j in judge(s.study)}
    assert judged["A.3-appendix-fc"].verdict == f"{ABSENT}: no initial-fusion both model trained at audio 1 / visual 0.5"
    assert judged["4.4-visual-dependence"].verdict == (f"{ABSENT}: no initial-fusion both model trained at audio 0.5 / "
                                                       "visual 1")
    assert judged["4.5-unimodal-noise-cost"].verdict == (f"{ABSENT}: no initial-fusion visual model trained at audio "
                                                         "orig / visual orig")
    absent = {i for i, j in judged.items() if j.verdict.startswith(ABSENT)}
    assert absent == {"A.3-appendix-fc", "4.4-visual-dependence", "4.4-audio-dependence",
                      "4.4-audio-dependence-increases", "4.4-easier-points", "4.5-unimodal-noise-cost",
                      "4.5-audio-cost-larger"}
    assert all(np.isnan(judged[i].p_family) for i in absent)
    assert judged["4.3-training-point"].verdict == HOLDS
    assert judged["4.5-both-contribute"].verdict == f"{HOLDS} {FOR_NETWORKS}"  # one unimodal seed
    # the precondition reads the fusion point's initial-fusion models; without them it says so
    empty = Synthetic(scope="fusion", point=(1.0, 0.125))
    empty.study = dataclasses.replace(empty.study, fusion_point=FUSION_POINT)
    both_used(empty)
    assert modality_check(empty.study).verdict == (f"{ABSENT}: no initial-fusion both model trained at audio 0.5 / "
                                                   "visual 0.25")


def test_fusion_claims_read_the_studys_fusion_point():
    """`study.fusion_point` moves the comparison: the claims read the models trained there, and their regions
    name it; the paper's point is the default."""
    from clstm_jax.core.errors import ConfigError

    assert load_config(ROOT / "sweeps" / "study.toml").study.fusion_point == FUSION_POINT
    s = Synthetic(scope="fusion", seeds=range(5), point=(1.0, 0.125))
    assert {(m.audio_snr, m.visual_snr) for m in s.specs if m.modalities == "both"} == {(1.0, 0.125)}
    both_used(s)
    for initial, expected in ((True, HOLDS), (False, FAILS)):
        fusion_point(s, initial)
        judged = {j.id: j for j in judge(s.study, ids=["4.3-training-point", "4.3-robust-increases"])}
        assert judged["4.3-training-point"].verdict == expected
        assert judged["4.3-robust-increases"].verdict == expected
    assert judged["4.3-training-point"].region == ("the training point only: test audio 1, visual 0.125 "
                                                   "(evaluate.point_examples pairs where modality use was measured)")
    assert judged["4.3-training-point"].record()["region"] == judged["4.3-training-point"].region
    for value, problem in (("[1.0, 0.3]", "0.3 is not on the test grid"), ("[1.0]", "one SNR")):
        with pytest.raises(ConfigError, match=r"study.fusion_point = \[.*\]: expected \[audio, visual\], two positive "
                                              r"SNRs of evaluate.snrs"):
            load_config(ROOT / "sweeps" / "study.toml", [f"study.fusion_point={value}"])


TOST_CLAIMS = ["4.3-training-point", "4.3-second-except-low-audio", "4.3-only-second", "4.3-robust-increases",
               "4.3-robust-audio", "A.3-appendix-fc", "4.4-visual-dependence", "4.4-audio-dependence",
               "4.5-unimodal-noise-cost", "4.5-audio-cost-larger", "4.5-both-contribute", "4.6-audio-arrives"]


def test_equal_models_are_shown_equivalent_within_the_margin():
    """With identical models and enough pairs, every claim tested by a difference reads "equivalent within
    2 points" (two one-sided tests inside +-study.margin); with a margin of 0 nothing is equivalent."""
    s = Synthetic(examples=2048, seeds=range(5), flat=True)
    for claim_id in TOST_CLAIMS:
        assert s.verdict(claim_id) == "equivalent within 2 points", claim_id
        assert s.verdict(claim_id, margin=0.0) == INCONCLUSIVE, claim_id
    both_used(s)
    judged = {j.id: j for j in judge(s.study, ids=["4.3-training-point", "A.3-appendix-fc"])}
    assert judged["4.3-training-point"].verdict == "equivalent within 2 points"  # survives the correction
    assert judged["A.3-appendix-fc"].verdict == f"equivalent within 2 points {FOR_NETWORKS}"  # one seed


def test_the_training_point_reads_the_larger_of_its_two_measurements():
    """With modality use measured on more pairs than the grid (evaluate.point_examples > examples), the
    training-point claim reads its matched outcomes: here they contradict the grid's, and decide."""
    s = Synthetic()
    fusion_point(s, False)
    assert s.verdict("4.3-training-point") == FAILS
    use = np.zeros((len(s.specs), 2, len(CONDITIONS), 192), bool)
    for late in LATE:
        for m in s.models(late, "both", *FUSION_POINT):
            use[m, 0, 0] = s.rng.random(192) < 0.5
    for m in s.models("initial", "both", *FUSION_POINT):
        use[m, 0, 0] = True
    s.study = dataclasses.replace(s.study, modality_use=ModalityUse(s.evaluation.names, use, np.zeros(192, int), 1))
    evidence = CLAIMS["4.3-training-point"].judge(s.study, 2.0)
    assert evidence.verdict == HOLDS and evidence.units == "192 test examples x 3 seed(s)"
    s.study = dataclasses.replace(s.study, modality_use=ModalityUse(s.evaluation.names, use[..., :96], np.zeros(96, int), 1))  # no more pairs
    assert s.verdict("4.3-training-point") == FAILS


def test_fusion_comparison_gives_students_t_intervals_across_seeds():
    # initial fusion wrong everywhere; second fusion right on the first 10, 20, 30 of 100 pairs in seeds 0, 1, 2:
    # per-seed differences 0.1, 0.2, 0.3 at every grid point; mean 0.2, sd 0.1, and t(0.975, 2 df) = 4.302653
    s = Synthetic(examples=100)
    s.set("initial", "both", *FUSION_POINT, False)
    for k, m in enumerate(s.models("second", "both", *FUSION_POINT)):
        s.evaluation.correct[m] = np.arange(100) < 10 * (k + 1)
    result = s.study.fusion_comparison(*FUSION_POINT)
    half = 4.302653 * 0.1 / np.sqrt(3)
    np.testing.assert_allclose(result["second"]["difference"], np.full((10, 10), 0.2), atol=1e-12)
    np.testing.assert_allclose(result["second"]["low"], np.full((10, 10), 0.2 - half), atol=1e-6)
    np.testing.assert_allclose(result["second"]["high"], np.full((10, 10), 0.2 + half), atol=1e-6)
    np.testing.assert_allclose(result["seeds"]["second"], [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], atol=1e-12)
    np.testing.assert_array_equal(result["seeds"]["initial"], np.zeros((3, 2)))


def test_a_study_is_built_once_and_read_only():
    """Everything the claims read is given when the Study is built; another family's view is a new Study."""
    s = Synthetic()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.study.audio_swap = None
    view = s.study.of_family("a2")
    assert (view.family, s.study.family) == ("a2", "masked") and view.evaluation is s.study.evaluation
