import jax
import numpy as np

from clstm_jax.data.splits import SPLITS, pair_table, sample_pairs, split_indices

PAPER_PAIRS = {"train": 11_202_076, "validation": 174_490, "test": 175_389}


def test_split_is_a_disjoint_8_1_1_cover_and_deterministic():
    parts = split_indices(2500, 0)
    assert [len(parts[s]) for s in SPLITS] == [2000, 250, 250]
    np.testing.assert_array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(2500))
    np.testing.assert_array_equal(split_indices(2500, 0)["test"], parts["test"])
    assert not np.array_equal(split_indices(2500, 1)["test"], parts["test"])


def test_paper_speakers_give_the_papers_pair_counts_within_one_percent(paper_splits):
    for name, split in paper_splits.items():
        assert abs(split.pair_count() / PAPER_PAIRS[name] - 1) < 0.01, name
    assert [len(paper_splits[s].images) for s in SPLITS] == [56000, 7000, 7000]
    assert [len(paper_splits[s].waves) for s in SPLITS] == [2000, 250, 250]


def test_pair_count_equals_a_brute_force_count():
    rng = np.random.default_rng(0)
    image_labels, wave_labels = rng.integers(0, 10, 300), rng.integers(0, 10, 40)
    from clstm_jax.data.splits import Split

    split = Split(None, image_labels, None, None, wave_labels)
    brute = sum(int(a == b) for a in image_labels for b in wave_labels)
    assert split.pair_count() == brute


def test_sampled_label_frequencies_match_pair_weights(paper_splits):
    """n draws; each label's frequency within 5 standard errors of n_img(l) n_aud(l) / total.

    Under the correct sampler a 5-sigma miss on any of 10 labels has
    probability below 1e-5 (normal approximation, Bonferroni).
    """
    split = paper_splits["validation"]
    table = pair_table(split.image_labels, split.wave_labels)
    n = 200_000
    image_idx, audio_idx, labels = jax.jit(sample_pairs, static_argnums=2)(jax.random.key(0), table, n)
    image_idx, audio_idx, labels = map(np.asarray, (image_idx, audio_idx, labels))
    # Every pair has the same label on both sides, and it is the reported label.
    np.testing.assert_array_equal(split.image_labels[image_idx], labels)
    np.testing.assert_array_equal(split.wave_labels[audio_idx], labels)
    n_img, n_aud = split.label_counts()
    p = n_img * n_aud / split.pair_count()
    freq = np.bincount(labels, minlength=10) / n
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < 5 * sigma), (freq, p)
    # Within a label, every recording is reachable and roughly uniform.
    label = 7
    per_recording = np.bincount(audio_idx[labels == label], minlength=len(split.waves))[split.wave_labels == label]
    expected = (labels == label).sum() / n_aud[label]
    assert per_recording.min() > 0
    assert np.all(np.abs(per_recording - expected) < 6 * np.sqrt(expected))


def test_sampler_is_deterministic_per_key(paper_splits):
    split = paper_splits["test"]
    table = pair_table(split.image_labels, split.wave_labels)
    a = sample_pairs(jax.random.key(1), table, 64)
    b = sample_pairs(jax.random.key(1), table, 64)
    c = sample_pairs(jax.random.key(2), table, 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
