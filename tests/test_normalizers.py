"""Running statistics: one-row updates (the per-step fast path) agree with batch updates and numpy."""

import numpy as np

from hybridpg.data.normalizers import RunningMeanStd


def test_row_by_row_updates_equal_one_batch_update_and_numpy():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(5000, 11))
    rows, batch, mixed = RunningMeanStd((11,)), RunningMeanStd((11,)), RunningMeanStd((11,))
    for row in data:
        rows.update(row[None])
    batch.update(data)
    mixed.update(data[:2000])
    for row in data[2000:]:
        mixed.update(row[None])
    for stats in (rows, mixed):
        np.testing.assert_allclose(stats.mean, batch.mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(stats.var, batch.var, rtol=1e-12, atol=0)
    # the epsilon prior count (1e-4) is the only difference from the plain sample statistics
    np.testing.assert_allclose(batch.mean, data.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(batch.var, data.var(axis=0), rtol=1e-6)


def test_scalar_stream_matches_numpy():
    returns = np.random.default_rng(1).normal(size=3000)
    stats = RunningMeanStd(())
    for r in returns:
        stats.update(np.array([r]))
    assert abs(stats.mean - returns.mean()) < 1e-6 and abs(stats.var - returns.var()) < 1e-5
