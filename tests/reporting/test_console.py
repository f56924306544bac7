"""The command line's evaluation table: ranked by NDCG per protocol, production and best baseline marked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reporting.console import evaluation_table, evaluation_verdicts, rank_evaluation


def _table() -> pd.DataFrame:
    """Config order (ranker first); on new items lightfm beats the production ranker."""
    return pd.DataFrame(
        {
            "model": ["ranker", "repeat", "popularity_global", "lightfm"] * 2,
            "protocol": ["all_items"] * 4 + ["new_items"] * 4,
            "consumers": [10] * 4 + [8] * 4,
            "ndcg": [0.50, 0.40, 0.25, 0.30, 0.12, 0.05, 0.10, 0.15],
            "fit_seconds": [1.0] * 8,
            "recommend_seconds": [0.5] * 8,
        }
    )


def test_rows_are_ranked_by_ndcg_within_each_protocol_and_marked() -> None:
    ranked = rank_evaluation(_table(), "ranker", ["repeat", "popularity_global"])
    assert ranked["protocol"].tolist() == ["all_items"] * 4 + ["new_items"] * 4
    assert ranked["model"].tolist() == [
        "ranker", "repeat", "lightfm", "popularity_global",
        "lightfm", "ranker", "popularity_global", "repeat",
    ]  # fmt: skip
    assert ranked["mark"].tolist() == [
        "production", "best baseline", "", "baseline",
        "", "production", "best baseline", "baseline",
    ]  # fmt: skip
    # NDCG over the best baseline's, per protocol: 0.50 / 0.40 and 0.15 / 0.10
    np.testing.assert_allclose(ranked["vs_best_baseline"].to_numpy()[[0, 4, 5]], [0.25, 0.5, 0.2])


def test_without_a_baseline_there_is_no_comparison() -> None:
    ranked = rank_evaluation(_table(), "ranker", [])
    assert ranked["vs_best_baseline"].isna().all()
    assert set(ranked["mark"]) == {"production", ""}


def test_the_verdict_says_when_another_model_beats_production() -> None:
    ranked = rank_evaluation(_table(), "ranker", ["repeat", "popularity_global"])
    all_items, new_items = evaluation_verdicts(ranked, "ranker")
    assert all_items == "all_items: best ranker (ndcg 0.5000); production vs best baseline +25.0%"
    assert new_items.startswith("new_items: best lightfm (ndcg 0.1500); it beats the production model ranker")
    assert "+25.0%" in new_items and new_items.endswith("production vs best baseline +20.0%")


def test_the_printed_table_leads_with_the_mark_and_ends_with_the_comparison() -> None:
    ranked = rank_evaluation(_table(), "ranker", ["repeat", "popularity_global"])
    lines = evaluation_table(ranked, ("model", "protocol", "ndcg", "fit_seconds")).splitlines()
    assert lines[0].split() == ["mark", "model", "protocol", "ndcg", "fit_seconds", "vs_best_baseline"]
    assert lines[1].startswith("production ") and lines[1].rstrip().endswith("+25.0%")
    assert lines[2].startswith("best baseline ") and lines[2].rstrip().endswith("+0.0%")


def test_a_baseline_without_a_score_is_no_best_baseline() -> None:
    table = _table().assign(ndcg=lambda frame: frame["ndcg"].where(frame["model"] != "repeat"))
    ranked = rank_evaluation(table, "ranker", ["repeat"])
    assert "best baseline" not in set(ranked["mark"]) and ranked["vs_best_baseline"].isna().all()
