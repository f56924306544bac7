"""``InteractionData.from_frames`` counts its parts: at 10M lines the assembly took 11-16 s between
two log lines (issue 18's silent stretches)."""

from __future__ import annotations

import pandas as pd

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
