"""``InteractionData.from_frames`` counts its parts: at 10M lines the assembly took 11-16 s between
two log lines (issue 18's silent stretches)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

import features.progress as progress_module
from features.columns import Col
from features.interactions import InteractionCol
from models.recommenders.base import FROM_FRAMES_PARTS, InteractionData


def test_from_frames_reports_each_part_and_builds_the_same_data(monkeypatch) -> None:
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    frame = pd.DataFrame(
        {
            Col.CONSUMER_ID: ["c2", "c1", "c1"],
            Col.PRODUCT_ID: ["p1", "p2", "p1"],
            InteractionCol.WEIGHT: [2.0, 1.0, -1.0],
        }
    )
    updates: list[progress_module.ProgressUpdate] = []
    remove = progress_module.add_listener(updates.append)
    try:
        data = InteractionData.from_frames(frame)
    finally:
        remove()
    counted = [
        (u.done, u.total, u.finished) for u in updates if u.step == "interaction data: ids and matrices"
    ]
    # every part but the last reports; the last is the done line's
    assert counted == [(n, FROM_FRAMES_PARTS, False) for n in range(1, FROM_FRAMES_PARTS)] + [
        (FROM_FRAMES_PARTS, FROM_FRAMES_PARTS, True)
    ]
    assert list(data.consumer_ids) == ["c1", "c2"] and list(data.product_ids) == ["p1", "p2"]
    assert data.matrix.toarray().tolist() == [[0.0, 1.0], [2.0, 0.0]]
    assert data.blocked.toarray().tolist() == [[True, False], [False, False]]


def test_from_frames_matches_scipy_coordinates_with_repeats_and_zero_purchases() -> None:
    """The matrices are laid out once and filled per value array (``_CsrLayout``); they must be
    what SciPy builds from the same coordinates: repeated pairs summed, a pair with zero purchases
    kept as an explicit zero (same sparsity as ``matrix``), blocked pairs apart and boolean."""
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            Col.CONSUMER_ID: rng.integers(0, 30, n).astype(str),
            Col.PRODUCT_ID: rng.integers(0, 12, n).astype(str),
            InteractionCol.WEIGHT: rng.choice([-1.0, 0.5, 1.0, 3.0], n),
            InteractionCol.PURCHASES: rng.integers(0, 3, n),
        }
    )
    data = InteractionData.from_frames(frame)
    rows = data.rows_of(frame[Col.CONSUMER_ID])
    cols = data.columns_of(frame[Col.PRODUCT_ID])
    positive = frame[InteractionCol.WEIGHT].to_numpy() > 0

    def scipy_built(values: np.ndarray, keep: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=data.shape)

    weights = frame[InteractionCol.WEIGHT].to_numpy(dtype=np.float32)
    purchases = frame[InteractionCol.PURCHASES].to_numpy(dtype=np.float32)
    np.testing.assert_allclose(data.matrix.toarray(), scipy_built(weights, positive).toarray(), rtol=1e-6)
    np.testing.assert_allclose(data.purchases.toarray(), scipy_built(purchases, positive).toarray())
    assert data.matrix.dtype == np.float32 and data.blocked.dtype == bool
    assert (data.blocked.toarray() == (scipy_built(np.ones(n), ~positive).toarray() > 0)).all()
    # same sparsity, explicit zeros included; sorted column indices within each row
    assert (data.purchases.indptr == data.matrix.indptr).all()
    assert (data.purchases.indices == data.matrix.indices).all()
    assert (data.purchases.data == 0).any() and data.matrix.has_sorted_indices
    # the matrices do not share index arrays: changing one leaves the others as they were
    data.purchases.indices[:] = 0
    assert data.matrix.indices.any()
