"""Community popularity is sparse: memory grows with the members' products, not communities × catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.interactions import InteractionCol
from models.recommenders import InteractionData
from models.recommenders.popularity import PopularityRecommender


def _data() -> InteractionData:
    # D1: C1, C2 bought P1, C2 also P2; D2: C3 bought P3; P4 bought by nobody in a community
    frame = pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C2", "C3", "C4"],
            "product_id": ["P1", "P1", "P2", "P3", "P4"],
            InteractionCol.WEIGHT: 1.0,
        }
    )
    homes = pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C3", "C4"],
            InteractionCol.HOME_DISTRIBUTOR_ID: ["D1", "D1", "D2", None],
        }
    )
    return InteractionData.from_frames(frame, consumers=homes)


def test_community_popularity_is_sparse_and_scores_as_before(tmp_path) -> None:
    model = PopularityRecommender(scope="community", window_days=None).fit(_data())
    assert sp.issparse(model.community_popularity_)
    assert model.community_popularity_.nnz == 3  # (D1, P1), (D1, P2), (D2, P3): not 2 × 4
    scores = next(model.score_blocks(["C1", "C3"])).scores
    tiebreak = 1e-3 * model.popularity_
    np.testing.assert_allclose(scores[0], np.array([1.0, 0.5, 0.0, 0.0]) * (1 - 1e-3) + tiebreak, rtol=1e-6)
    np.testing.assert_allclose(scores[1], np.array([0.0, 0.0, 1.0, 0.0]) * (1 - 1e-3) + tiebreak, rtol=1e-6)
    loaded = PopularityRecommender.load(model.save(tmp_path / "model"))
    np.testing.assert_array_equal(next(loaded.score_blocks(["C1", "C3"])).scores, scores)
