"""The programs layer's chunk loop: every item once, one shape, resumable (clstm_jax/training/programs.py)."""

import numpy as np
import pytest

from clstm_jax.evaluation.resumable import KeptChunks
from clstm_jax.training.programs import chunks, measure_chunks


class Bar:
    """The part of tqdm the loop uses, counting the items it reports."""

    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k

    def set_postfix_str(self, text):
        pass


@pytest.mark.parametrize("total, batch", [(10, 4), (12, 4), (3, 8), (1, 1)])
def test_chunks_cover_every_item_once_in_one_shape(total, batch):
    calls = chunks(total, batch)
    covered = np.concatenate([np.arange(c.start, c.stop) for c in calls])
    np.testing.assert_array_equal(covered, np.arange(total))
    for c in calls:
        assert c.ids.shape == (batch,)  # one shape: one compilation
        np.testing.assert_array_equal(c.ids[: c.size], np.arange(c.start, c.stop))  # the counted items first
        assert np.all((c.ids >= 0) & (c.ids < total))  # the padding wraps round to real items


def test_measure_chunks_writes_every_outcome_where_it_belongs_and_resumes(tmp_path):
    """Outcomes of 3 models for items at (point, condition) = where; an interrupt after the 3rd chunk keeps 3, and
    the re-run computes only the others, with the same result as one uninterrupted run."""
    total, batch, models = 7, 3, 3
    calls = [c for p in range(2) for k in range(2) for c in chunks(total, batch, where=(p, k))]
    # Any function of (model, point, condition, item) that a misplaced write would break:
    truth = np.random.default_rng(0).random((models, 2, 2, total)) > 0.5
    compute = lambda c: truth[:, c.where[0], c.where[1], c.ids]

    whole = KeptChunks(None, {}, truth.shape)
    measure_chunks(whole, calls, compute, Bar(), "measuring")
    np.testing.assert_array_equal(whole.outcomes, truth)

    path = tmp_path / "partial.npz"
    computed = []

    def interrupted(c):
        if len(computed) == 3:
            raise KeyboardInterrupt
        computed.append(c)
        return compute(c)

    first = KeptChunks(path, {"x": 1}, truth.shape, log=lambda _: None)
    with pytest.raises(KeyboardInterrupt, match=f"3 of {len(calls)} chunks kept in {path}"):
        measure_chunks(first, calls, interrupted, Bar(), "measuring")
    resumed, bar, again = KeptChunks(path, {"x": 1}, truth.shape, log=lambda _: None), Bar(), []
    measure_chunks(resumed, calls, lambda c: again.append(c) or compute(c), bar, "measuring")
    assert [(c.where, c.start) for c in again] == [(c.where, c.start) for c in calls[3:]] and bar.n == 2 * 2 * total
    np.testing.assert_array_equal(resumed.outcomes, truth)
