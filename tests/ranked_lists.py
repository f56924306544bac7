"""Two ranked-list frames that are the same lists up to float summation order.

Two code paths that score the same model on blocks of other shapes (the one pass and the three
passes, the Spark parts and the driver pass) get scores equal in all but their last bits where
BLAS picks its kernel by block shape (OpenBLAS on CPUs without AVX-512). So scores are compared
to a tight tolerance, and two items may trade places only where their scores are that close
(the factor models sum in float64, ``base.factor_scores``, so a component's score order, which
the ranker reads, does not turn those last bits into larger moves):
every other row (product, reason, ...) must be the same, and a run of near-tied rows must hold
the same rows in some order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

RTOL, ATOL = 1e-5, 1e-9  # float32 scores: last bits only; a real change moves them far more


def assert_same_ranked_lists(
    got: pd.DataFrame,
    expected: pd.DataFrame,
    list_key: list[str],
    rank: str = "rank",
    score: str = "score",
    rtol: float = RTOL,
    atol: float = ATOL,
    obj: str = "lists",
) -> None:
    """``got`` holds ``expected``'s lists, row for row, with near-tied neighbours free to swap.

    Both frames in list order (``list_key`` then ``rank``). Checked: the same columns and dtypes,
    the same lists of the same lengths (``list_key`` and ``rank`` equal row by row), scores
    ``allclose`` row by row, every other column equal wherever a row's expected score is more
    than the tolerance from both neighbours' in its list, and each run of near-tied rows the same
    rows in some order.
    """
    assert list(got.columns) == list(expected.columns), obj
    pd.testing.assert_series_equal(got.dtypes, expected.dtypes, obj=f"{obj} dtypes")
    got, expected = got.reset_index(drop=True), expected.reset_index(drop=True)
    place = [*list_key, rank]
    pd.testing.assert_frame_equal(got[place], expected[place], check_exact=True, obj=f"{obj} lists")
    np.testing.assert_allclose(got[score], expected[score], rtol=rtol, atol=atol, err_msg=f"{obj} {score}")
    runs = _near_tie_runs(expected, list_key, score, rtol, atol)
    rest = [column for column in expected.columns if column not in (*place, score)]
    alone = runs.map(runs.value_counts()) == 1
    pd.testing.assert_frame_equal(
        got.loc[alone, rest], expected.loc[alone, rest], check_exact=True, obj=f"{obj} (rows not near-tied)"
    )
    for run in runs[~alone].unique():
        rows = runs.index[runs == run]
        have, want = (_sorted_rows(frame.loc[rows, rest]) for frame in (got, expected))
        pd.testing.assert_frame_equal(
            have, want, check_exact=True, obj=f"{obj} (near-tied rows {list(rows)})"
        )


def _near_tie_runs(
    frame: pd.DataFrame, list_key: list[str], score: str, rtol: float, atol: float
) -> pd.Series:
    """A run number per row: consecutive rows of one list whose scores are within twice the
    tolerance (each side may move by the tolerance) share a run."""
    scores = frame[score].to_numpy(dtype=np.float64)
    same_list = np.ones(len(frame), dtype=bool)
    same_list[0:1] = False
    for column in list_key:
        values = frame[column].to_numpy()
        same_list[1:] &= values[1:] == values[:-1]
    gap = np.abs(np.diff(scores, prepend=np.nan))
    band = 2 * (atol + rtol * np.abs(scores))
    tied_to_previous = same_list & (gap <= band)
    return pd.Series(np.cumsum(~tied_to_previous), index=frame.index)


def _sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(str).sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def assert_same_list_file(got: Path, expected: Path, list_key: list[str], obj: str = "") -> None:
    """Two written list files the same but for float summation order: the same Parquet schema
    (its metadata included) and row groups, and the same lists (``assert_same_ranked_lists``)."""
    obj = obj or expected.name
    have, want = pq.ParquetFile(got), pq.ParquetFile(expected)
    assert have.schema_arrow.equals(want.schema_arrow, check_metadata=True), obj
    assert [have.metadata.row_group(i).num_rows for i in range(have.num_row_groups)] == [
        want.metadata.row_group(i).num_rows for i in range(want.num_row_groups)
    ], obj
    assert_same_ranked_lists(pd.read_parquet(got), pd.read_parquet(expected), list_key, obj=obj)
