"""The refit cadence's pieces: portable state carried onto newer data, the store, why a night refits."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models.recommenders import (
    ALSRecommender,
    EASERecommender,
    InteractionData,
    ItemKNNRecommender,
    PopularityRecommender,
    RankerRecommender,
)
from models.recommenders.base import carried_square
from models.recommenders.store import (
    CarriedEvaluation,
    ModelKey,
    StoredModel,
    read_stored,
    refit_reason,
    write_stored,
)
from tests.models.recommenders.test_ranker import PARAMS, same_trees

KEY = ModelKey("cafe", date(2025, 2, 28), "100:ff")
EVALUATION = CarriedEvaluation(
    {"all_items.ranker.ndcg": 0.3}, 0.3, "a sample", '{"k": 10}\n', ("2", "champion_recipe")
)


def test_an_evaluation_stored_before_the_champions_measure_was_kept_reads_without_it() -> None:
    values = EVALUATION.to_json()
    assert CarriedEvaluation.from_json(values) == EVALUATION
    del values["champion_measured"]
    assert CarriedEvaluation.from_json(values).champion_measured is None


def test_a_square_array_is_carried_by_product_id_with_zeros_for_new_products() -> None:
    fitted = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)
    columns = np.array([2, -1, 0])  # tonight: the fitted product 2, a new one, the fitted product 0
    expected = np.array([[9, 0, 7], [0, 0, 0], [3, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(carried_square(fitted, columns), expected)
    sparse = carried_square(sp.csr_matrix(fitted), columns)
    assert sp.issparse(sparse)
    np.testing.assert_array_equal(sparse.toarray(), expected)


@pytest.mark.parametrize("model_cls", [ItemKNNRecommender, EASERecommender, PopularityRecommender])
def test_item_models_carried_onto_their_own_data_recommend_as_fitted(
    model_cls: type, planted_data: InteractionData
) -> None:
    fitted = model_cls().fit(planted_data)
    carried = model_cls().carried_onto(planted_data, fitted.portable_state(), planted_data.product_ids)
    ids = planted_data.consumer_ids
    pd.testing.assert_frame_equal(carried.recommend(ids, 5), fitted.recommend(ids, 5), check_exact=True)


def test_als_keeps_its_item_factors_and_solves_every_consumer_of_the_new_data(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    params = {"factors": 8, "iterations": 3, "num_threads": 1}
    fitted = ALSRecommender(**params).fit(planted_data)
    carried = ALSRecommender(**params).carried_onto(
        other_data, fitted.portable_state(), planted_data.product_ids
    )
    columns = planted_data.product_ids.get_indexer(other_data.product_ids)
    assert (columns == -1).any() and (columns >= 0).any()  # some products new, some known
    np.testing.assert_array_equal(
        carried.item_factors_[columns >= 0], fitted.item_factors_[columns[columns >= 0]]
    )
    assert not carried.item_factors_[columns == -1].any()
    assert carried.user_factors_.shape == (other_data.shape[0], 8)
    assert np.abs(carried.user_factors_).sum(axis=1).min() > 0  # every consumer who bought a known product
    # converged ALS: the consumers' solve against its own item factors gives back its consumer factors
    converged = ALSRecommender(factors=8, iterations=200, num_threads=1).fit(planted_data)
    again = ALSRecommender(factors=8, num_threads=1).carried_onto(
        planted_data, converged.portable_state(), planted_data.product_ids
    )
    np.testing.assert_allclose(again.user_factors_, converged.user_factors_, atol=0.05)


def test_a_stored_ranker_reads_back_and_scores_exactly_as_the_one_in_memory(
    planted_data: InteractionData, other_data: InteractionData, tmp_path: Path
) -> None:
    ranker = RankerRecommender(**PARAMS).fit(planted_data)
    stored = StoredModel.of("ranker", ranker, KEY, EVALUATION)
    folder = write_stored(tmp_path / "production_model", stored)
    assert sorted(path.name for path in folder.iterdir()) == ["model.json", "state.npz"]
    with np.load(folder / "state.npz", allow_pickle=False) as arrays:  # plain arrays, never a pickle
        assert len(arrays.files) > 0
    back = read_stored(folder)
    assert back is not None and back.key == KEY and back.evaluation == EVALUATION
    carried = back.carried_onto(other_data)
    assert same_trees(carried.learned_state(), ranker.learned_state())
    ids = other_data.consumer_ids
    expected = stored.carried_onto(other_data).recommend(ids, 5)
    pd.testing.assert_frame_equal(carried.recommend(ids, 5), expected, check_exact=True)
    assert carried.data_ is other_data and all(m.data_ is other_data for m in carried.models_.values())


def test_a_store_is_replaced_whole_and_a_damaged_one_is_refused(
    planted_data: InteractionData, tmp_path: Path
) -> None:
    folder = tmp_path / "production_model"
    assert read_stored(folder) is None
    model = EASERecommender().fit(planted_data)
    write_stored(folder, StoredModel.of("ease", model, KEY, EVALUATION))
    later = ModelKey("cafe", date(2025, 3, 3), "120:aa")
    write_stored(folder, StoredModel.of("ease", model, later, EVALUATION))
    assert read_stored(folder).key == later
    assert not folder.with_name("production_model.partial").exists()
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "format": 99}))
    assert read_stored(folder) is None


@pytest.fixture
def stored(planted_data: InteractionData) -> StoredModel:
    return StoredModel.of("ease", EASERecommender().fit(planted_data), KEY, EVALUATION)


def _reason(stored: StoredModel | None, **changes: object) -> str | None:
    asked: list[date] = []

    def fingerprint_at(day: date) -> str:
        asked.append(day)
        return str(changes.get("fingerprint", KEY.fingerprint))

    reason = refit_reason(
        stored,
        str(changes.get("configured", "ease")),
        str(changes.get("config_hash", KEY.config_hash)),
        changes.get("as_of", date(2025, 3, 2)),  # type: ignore[arg-type]
        int(changes.get("every", 7)),  # type: ignore[arg-type]
        fingerprint_at,
    )
    assert asked in ([], [KEY.as_of])
    return reason


def test_a_night_reuses_a_young_model_of_the_same_config_and_history(stored: StoredModel) -> None:
    assert _reason(stored) is None
    assert _reason(stored, as_of=date(2025, 3, 6)) is None  # 6 days old, cadence 7


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"every": 1}, "refit_every_days is 1"),
        ({"config_hash": "beef"}, "config changed"),
        ({"configured": "ranker"}, "config changed"),
        ({"as_of": date(2025, 3, 7)}, "7 days old"),
        ({"as_of": date(2025, 2, 27)}, "after tonight's"),
        ({"as_of": date(2025, 2, 28)}, "a rerun fits again"),
        ({"fingerprint": "100:fe"}, "not the one the stored model was fitted on"),
    ],
)
def test_a_night_refits_and_says_why(stored: StoredModel, changes: dict, words: str) -> None:
    reason = _reason(stored, **changes)
    assert reason is not None and words in reason


def test_a_night_without_a_stored_model_fits(stored: StoredModel) -> None:
    assert _reason(None) == "no stored production model"


def test_a_key_label_tells_apart_models_of_one_date_and_config_fitted_on_other_histories() -> None:
    other_history = ModelKey(KEY.config_hash, KEY.as_of, "101:ff")
    assert KEY.label.startswith("2025-02-28/cafe/") and other_history.label != KEY.label
