"""The scoring pass in parts (the Spark tasks' share) writes the driver pass's lists.

One small simulated world (60 distributors, a category cap, spend weighting, shared member
scale, 5 outreach members, blocks of 50 consumers: many blocks, distributors across blocks)
with a fitted ALS model. The driver's pass (``list_pass`` → ``write_chunks``) is the reference;
the same pass cut into parts (``PassPlan.parts`` / ``part``), each part's inputs (``ScoringInputs.parts``,
what a Spark task loads besides the product-level model and its own consumers' rows) saved and
loaded, the model extended onto the part's rows (``PartInputs.model``), and the whole pass on
Spark ``local[2]``
(``spark_list_pass``) must write the same files: byte for byte where BLAS sums a product the same
way whatever the block's shape, and otherwise (OpenBLAS on CPUs without AVX-512 picks its kernel
by block shape) the same up to float summation order: the same schema and row groups, the same
lists, scores to ``tests.ranked_lists.RTOL`` and near-tied neighbours free to swap.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.catalog import StepFile
from features.engine import connect
from features.interactions import build_interactions, consumer_profiles, product_profiles
from features.messages import Messages
from features.popularity import NightRows
from models.recommenders import ALSRecommender, InteractionData, Recommender
from models.recommenders.distributors import Trend, decayed_spend
from models.recommenders.fallback import PopularityCounts, build_fallback_lists
from models.recommenders.filters import build_filters
from models.recommenders.list_config import ListsConfig
from models.recommenders.lists import home_distributors
from models.recommenders.ranker import build_component
from models.recommenders.scoring_pass import (
    LIST_SCHEMAS,
    PassOrder,
    PassPlan,
    list_pass,
    plan_pass,
    write_chunks,
)
from models.recommenders.spark_scoring import PartInputs, ScoringInputs, part_data, spark_list_pass
from pipelines.config import NightlyConfig
from pipelines.steps.validate import load_and_validate
from sources.simulator import SimulationConfig, simulate
from tests.ranked_lists import assert_same_list_file, assert_same_ranked_lists

K = 6
LISTS = ListsConfig(
    category_cap=2, member_weighting="spend", member_scale="share", outreach_size=5, batch_size=50
)
LIST_KEYS = {  # what one list is in each file (rows then go by rank)
    StepFile.CONSUMER_LISTS: ["consumer_id"],
    StepFile.DISTRIBUTOR_LISTS: ["distributor_id"],
    StepFile.OUTREACH: ["distributor_id"],
}
CHUNK_FILES = {
    "consumer_rows": StepFile.CONSUMER_LISTS,
    "distributor_rows": StepFile.DISTRIBUTOR_LISTS,
    "outreach_rows": StepFile.OUTREACH,
}


@dataclass(frozen=True)
class World:
    inputs: ScoringInputs
    interactions: pd.DataFrame  # the rows the model was fitted on (build_interactions')


@pytest.fixture(scope="module")
def world_rows(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The pass's inputs on a small world (the driver's recommend step's, built the same way)."""
    root = tmp_path_factory.mktemp("spark_scoring")
    simulate(root / "data", SimulationConfig(consumers=1200, distributors=60, products=150, days=90, seed=11))
    checked = load_and_validate(root / "data", None, NightlyConfig(), root / "validated")
    con = connect(checked.clean_paths)
    as_of = AsOf.of(checked.as_of)
    interactions = build_interactions(con, as_of, NightlyConfig().recommend.interactions, ordered=False)
    data = InteractionData.from_frames(
        interactions, consumer_profiles(con, as_of), product_profiles(con), as_of
    )
    model = ALSRecommender(factors=16, iterations=5, num_threads=1).fit(data)
    products = con.execute("SELECT * FROM products").df()
    popular = data.product_ids[np.argsort(-np.asarray(data.matrix.sum(axis=0)).ravel())]
    alerts = pd.DataFrame({"product_id": [popular[0], popular[1]], "level": ["pulled", "warning"]})
    filters = build_filters(products, as_of, LISTS, alerts)
    homes = home_distributors(data)
    rows = NightRows.of(con, as_of, NightlyConfig().recommend.interactions)
    counts = PopularityCounts.of(con, rows, LISTS.fallback_window_days, LISTS.trend_days)
    fallback = build_fallback_lists(counts, filters, depth=3 * K)
    spend = decayed_spend(con, as_of, LISTS.member_half_life_days)
    listed = set(con.execute("SELECT distributor_id FROM distributors").df()["distributor_id"].astype(str))
    listed |= {"zz-memberless"}  # a listed distributor after every member's: the trend-only list
    plan = PassPlan.of(PassOrder.of(homes, listed), data, LISTS.batch_size)
    trend = Trend.of_counts(counts, data.product_ids, LISTS)
    inputs = ScoringInputs(model, plan, homes, K, fallback, filters, LISTS, spend, "en", as_of.date, trend)
    return World(inputs, interactions)


@pytest.fixture(scope="module")
def world(world_rows: World) -> ScoringInputs:
    return world_rows.inputs


def _rows_of(interactions: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """A part's rows as a task reads them: its consumers' only, in another order."""
    return interactions[interactions["consumer_id"].isin(ids)].iloc[::-1].reset_index(drop=True)


def _driver_files(inputs: ScoringInputs, folder: Path) -> dict[str, bytes]:
    listed = set(inputs.plan.order.distributor_ids)
    chunks = list_pass(
        inputs.model,
        inputs.model.data_,
        inputs.homes,
        inputs.k,
        inputs.fallback,
        inputs.filters,
        inputs.lists,
        listed,
        inputs.spend,
        Messages.load(inputs.locale),
    )
    write_chunks(chunks, _targets(folder))
    return _read(folder)


def _targets(folder: Path) -> dict[str, Path]:
    return {name: folder / name for name in LIST_SCHEMAS}


def _read(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in LIST_SCHEMAS}


def test_parts_cut_only_between_distributors(world: ScoringInputs) -> None:
    plan = world.plan
    codes, none, size = plan.order.codes, len(plan.order.distributor_ids), len(plan.order.codes)
    assert len(plan.bounds) > 10  # the fixture really has many blocks
    for n in (1, 3, 7, 100):
        parts = plan.parts(n)
        assert len(parts) <= n and parts[0][0] == 0 and parts[-1][1] == size
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(parts))  # contiguous
        for _, cut in parts[:-1]:
            assert codes[cut - 1] != codes[cut] or codes[cut] == none
    assert len(plan.parts(7)) >= 5  # 60 distributors (of uneven sizes): the world can be cut


@pytest.mark.parametrize("n", [1, 4, 9])
def test_the_parts_of_the_pass_give_the_driver_pass_rows(world: ScoringInputs, n: int) -> None:
    expected = {name: [] for name in ("consumer_rows", "distributor_rows", "outreach_rows")}
    for chunk in list_pass(
        world.model,
        world.model.data_,
        world.homes,
        world.k,
        world.fallback,
        world.filters,
        world.lists,
        set(world.plan.order.distributor_ids),
        world.spend,
    ):
        for name, frames in expected.items():
            frames.append(getattr(chunk, name))
    got = {name: [] for name in expected}
    for start, stop in world.plan.parts(n):
        part = world.plan.part(start, stop)
        for chunk in plan_pass(
            world.model,
            world.model.data_,
            part,
            world.homes,
            world.k,
            world.fallback,
            world.filters,
            world.lists,
            world.spend,
            threads=1,
        ):
            for name, frames in got.items():
                frames.append(getattr(chunk, name))
    for name in expected:
        want = pd.concat([f for f in expected[name] if len(f)], ignore_index=True)
        have = pd.concat([f for f in got[name] if len(f)], ignore_index=True)
        assert len(want) > 0, name
        assert_same_ranked_lists(have, want, LIST_KEYS[CHUNK_FILES[name]], obj=name)


def _carried(world: ScoringInputs) -> ScoringInputs:
    """The world with its ALS carried onto its data (as a sampled ranker's components and a model
    between refits are): consumer factors solved against the item factors, which a part solves
    again from its own rows instead of being sent them."""
    data = world.model.data_
    model = ALSRecommender(factors=16, iterations=5, num_threads=1)
    return replace(world, model=model.carried_onto(data, world.model.portable_state(), data.product_ids))


@pytest.mark.parametrize("carried", [False, True], ids=["fitted", "carried"])
def test_saved_part_inputs_hold_no_pickle_no_rows_and_with_their_rows_give_the_same_lists(
    world_rows: World, tmp_path: Path, carried: bool
) -> None:
    world = _carried(world_rows.inputs) if carried else world_rows.inputs
    data = world.model.data_
    assert world.lists.trend_days and Trend.of(data, world.lists).trending.any()  # the trend matters
    expected = _driver_files(world, tmp_path / "driver")
    product = world.product_model()
    assert product.data_.matrix.shape == (0, data.shape[1]) and product.user_factors_.shape[0] == 0
    product.save(tmp_path / "inputs" / "product")
    bounds = world.plan.parts(4)
    out, rows = tmp_path / "parts", 0
    for index, part in enumerate(world.parts(bounds)):
        folder = part.save(tmp_path / "inputs" / str(index))
        suffixes = {path.suffix for path in folder.rglob("*") if path.is_file()}
        assert suffixes <= {".parquet", ".npz", ".npy", ".json"}
        # a fitted ALS's factors are learned: sent; a carried one's: solved again from the rows
        assert (part.consumer_state is None) == carried
        loaded = PartInputs.load(folder)
        assert loaded.filters == world.filters and loaded.lists == world.lists and loaded.k == world.k
        assert loaded.as_of == world.as_of
        ids = loaded.plan.order.consumer_ids
        assert set(loaded.spend.index) <= set(ids) and set(loaded.homes.index) == set(ids)
        assert set(loaded.profiles.index) <= set(ids)
        np.testing.assert_array_equal(loaded.trend.trending, Trend.of(data, world.lists).trending)
        model = loaded.model(
            Recommender.load(tmp_path / "inputs" / "product"), _rows_of(world_rows.interactions, ids)
        )
        assert set(model.data_.consumer_ids) == set(ids[data.rows_of(ids) >= 0])  # its own rows only
        rows += model.data_.matrix.shape[0]
        write_chunks(loaded.chunks(model), _targets(out / str(index)))
    assert len(bounds) > 1 and rows == data.matrix.shape[0]
    frames = {
        name: pd.concat([pd.read_parquet(out / str(i) / name) for i in range(len(bounds))], ignore_index=True)
        for name in LIST_SCHEMAS
    }
    for name in LIST_SCHEMAS:
        assert_same_ranked_lists(
            frames[name], pd.read_parquet(tmp_path / "driver" / name), LIST_KEYS[name], obj=name
        )
    assert expected  # the driver wrote its files


@pytest.mark.parametrize(
    "spec",
    [
        {
            "kind": "ranker",
            "components": {"itemknn": {"kind": "itemknn"}, "als": {"kind": "als", "factors": 8}},
        },
        {  # product-side state from a sample, carried onto every consumer
            "kind": "ranker",
            "components": {"itemknn": {"kind": "itemknn"}, "als": {"kind": "als", "factors": 8}},
            "max_fit_consumers": 300,
        },
        {"kind": "lightfm", "components": 8, "epochs": 3},
        {"kind": "als", "factors": 8},
        {"kind": "als", "factors": 8, "bm25": True},  # BM25 weights count every consumer: learned
        {"kind": "bpr", "factors": 8, "iterations": 5},
        {"kind": "ease", "l2": 50.0},
        {"kind": "repeat"},
        {"kind": "popularity", "scope": "community"},
    ],
    ids=lambda spec: spec["kind"] + ("_sampled" if "max_fit_consumers" in spec else ""),
)
def test_a_restricted_model_scores_its_consumers_as_the_whole_model(world_rows: World, spec: dict) -> None:
    world = world_rows.inputs
    data = world.model.data_
    assert data.shape[0] > spec.get("max_fit_consumers", 0)  # the sampled ranker really samples
    model = build_component(spec).fit(data)
    ids = world.plan.order.consumer_ids
    some = ids[(np.arange(len(ids)) % 3 == 1)]  # a third, cold consumers (without rows) included
    assert (data.rows_of(some) < 0).any() and (data.rows_of(some) >= 0).any()
    restricted = model.restricted_to(some)
    assert restricted.data_.matrix.shape[0] == (data.rows_of(some) >= 0).sum()
    for name, value in restricted._state().items():  # per-consumer arrays hold the kept rows only
        if name in restricted._consumer_keys() or name.endswith("user_factors"):
            assert len(value) == restricted.data_.matrix.shape[0], name
    # what a Spark part does: the model without consumers, extended onto the part's own rows
    product = model.restricted_to([])
    own = product.consumer_state(product.data_)
    # a part is sent learned consumer state: LightFM's, BPR's, a fitted ALS's (its last iteration
    # solved the consumers against the previous item factors), BM25 ALS's; a sampled ranker's ALS
    # is carried onto every consumer: solved again from the part's rows
    learned = spec["kind"] in ("lightfm", "bpr", "als") or (
        spec["kind"] == "ranker" and "max_fit_consumers" not in spec
    )
    assert (own is None) == learned
    state = restricted.consumer_state_of_rows(np.arange(restricted.data_.shape[0])) if learned else None
    profiles = data.consumer_profiles[data.consumer_profiles.index.isin(some)]
    rows = _rows_of(world_rows.interactions, some)
    part = product.over(part_data(product.data_, rows, profiles, world.as_of), state)
    want = np.vstack([block.scores for block in model.score_blocks(some, 97)])
    for scorer in (restricted, part):
        have = np.vstack([block.scores for block in scorer.score_blocks(some, 97)])
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.isnan(have), np.isnan(want))


def test_a_part_of_a_model_that_learned_its_consumers_is_refused_without_their_state(
    world: ScoringInputs,
) -> None:
    model = build_component({"kind": "lightfm", "components": 4, "epochs": 1}).fit(world.model.data_)
    product = model.restricted_to([])
    with pytest.raises(ValueError, match="learned its per-consumer state"):
        product.over(world.model.data_)


def test_a_pass_over_partial_data_is_refused_for_a_model_that_learned_its_consumers(
    world_rows: World,
) -> None:
    """Partial data (a sample's rows, every consumer's id) give a fitted ALS factors for the
    sample only: its parts would have none for the others."""
    world, interactions = world_rows.inputs, world_rows.interactions
    data = world.model.data_
    sample = interactions[interactions["consumer_id"].isin(data.consumer_ids[::3])]
    partial = InteractionData.from_frames(
        sample, data.consumer_profiles.reset_index(), None, world.as_of, data.product_ids, data.consumer_ids
    )
    assert partial.partial and partial.shape == data.shape
    learned = ALSRecommender(factors=4, iterations=1, num_threads=1).fit(partial)
    inputs = replace(world, model=learned)
    with pytest.raises(ValueError, match="partial"):
        next(inputs.parts(world.plan.parts(2)))
    carried = ALSRecommender(factors=4, iterations=1, num_threads=1).carried_onto(
        partial, learned.portable_state(), data.product_ids
    )
    assert next(replace(world, model=carried).parts(world.plan.parts(2))).consumer_state is None


def test_spark_writes_the_driver_pass_files(world_rows: World, spark, tmp_path: Path) -> None:
    """The same files up to float summation order (the module docstring); each task read its
    own consumers' rows from the rows Spark wrote by part and solved their ALS factors."""
    world = _carried(world_rows.inputs)
    expected = _driver_files(world, tmp_path / "driver")
    rows = spark.createDataFrame(world_rows.interactions)
    result = spark_list_pass(spark, world, rows, _targets(tmp_path / "spark"), tmp_path, partitions=5)
    assert sorted(_read(tmp_path / "spark")) == sorted(expected)
    for name in LIST_SCHEMAS:
        assert_same_list_file(tmp_path / "spark" / name, tmp_path / "driver" / name, LIST_KEYS[name])
    assert len(result.parts) == len(world.plan.parts(5)) > 1
    assert result.parts["consumers"].sum() == len(world.plan.order.consumer_ids)
    distributors = pd.read_parquet(tmp_path / "driver" / StepFile.DISTRIBUTOR_LISTS)
    outreach = pd.read_parquet(tmp_path / "driver" / StepFile.OUTREACH)
    assert result.distributors == distributors["distributor_id"].nunique()
    assert result.outreach_rows == len(outreach)
    assert list((tmp_path).glob("scoring-*")) == []  # the broadcast's files and the parts are gone


def test_a_carried_als_stays_solved_through_save_and_load_and_an_older_save_counts_as_learned(
    world: ScoringInputs, tmp_path: Path
) -> None:
    carried = _carried(world).model
    loaded = Recommender.load(carried.save(tmp_path / "model")).restricted_to([])
    assert loaded.consumer_state(loaded.data_) is not None
    older = ALSRecommender(factors=16, iterations=5, num_threads=1)
    older.data_ = carried.data_
    older._set_state({key: value for key, value in carried._state().items() if key != "solved"})
    assert older.consumer_state(older.data_) is None  # saved before the flag: its factors are sent
