"""The recommend step end to end on a tiny simulated data set: every consumer, filters, planted tastes."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.catalog import StepFile
from models.recommenders import ALSRecommender
from pipelines.cli import main
from pipelines.config import NightlyConfig
from pipelines.steps.recommend import run_recommend
from pipelines.steps.validate import load_and_validate
from sources.simulator import SimulationConfig, simulate

K = 8
LISTS = (
    StepFile.CONSUMER_LISTS,
    StepFile.DISTRIBUTOR_LISTS,
    StepFile.OUTREACH,
    StepFile.FALLBACK_COMMUNITY,
    StepFile.FALLBACK_GLOBAL,
)


def _als() -> ALSRecommender:
    return ALSRecommender(factors=16, iterations=5, num_threads=1)


def _fit_als(con: object, as_of: object, config: object, data: object) -> ALSRecommender:
    """Stands in for ``fit_production``: a small ALS instead of the tuned ranker (fast)."""
    return _als().fit(data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("recommend")
    simulate(root / "data", SimulationConfig(consumers=2500, distributors=12, products=200, days=120, seed=7))
    config = NightlyConfig()
    validated = load_and_validate(root / "data", None, config, root / "validated")
    orders = pd.read_parquet(validated.clean_paths["orders"])
    popular = orders[orders["status"] == "paid"]["product_id"].value_counts().index
    alerts = pd.DataFrame({"product_id": [popular[0], popular[1]], "level": ["pulled", "warning"]})
    alerts_path = root / "quality_alerts.csv"
    alerts.to_csv(alerts_path, index=False)
    empty_alerts = root / "no_alerts.csv"
    alerts.iloc[:0].to_csv(empty_alerts, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipelines.steps.recommend.fit_production", _fit_als)
        with_gate = run_recommend(
            validated.clean_paths, validated.as_of, config, root / "gated", K, None, alerts_path
        )
        plain = run_recommend(
            validated.clean_paths, validated.as_of, config, root / "plain", K, None, empty_alerts
        )
    return {"root": root, "validated": validated, "alerts": alerts, "gated": with_gate, "plain": plain}


def _read(outcome, name: str) -> pd.DataFrame:
    return pd.read_parquet(outcome.paths[name])


def test_every_known_consumer_gets_k_rows(world: dict) -> None:
    lists = _read(world["gated"], StepFile.CONSUMER_LISTS)
    clean = world["validated"].clean_paths
    known = set(pd.read_parquet(clean["consumers"])["consumer_id"]) | set(
        pd.read_parquet(clean["orders"])["consumer_id"]
    )
    sizes = lists.groupby("consumer_id").size()
    assert set(sizes.index) == known and (sizes == K).all()
    assert list(lists.columns) == ["consumer_id", "product_id", "rank", "score", "reason_code", "reason"]
    assert lists["reason"].notna().all() and (lists["reason"] != "").all()
    assert not lists.duplicated(["consumer_id", "product_id"]).any()
    assert world["gated"].consumers_from_fallback > 0  # registered consumers without orders


def test_pulled_never_appears_and_warned_moves_down(world: dict) -> None:
    pulled, warned = world["alerts"]["product_id"]
    for name in LISTS:
        assert pulled not in set(_read(world["gated"], name)["product_id"]), name
    plain = _read(world["plain"], StepFile.DISTRIBUTOR_LISTS)
    gated = _read(world["gated"], StepFile.DISTRIBUTOR_LISTS)
    assert pulled in set(plain["product_id"])  # the test would be empty otherwise
    rank_plain = plain[plain["product_id"] == warned]["rank"].mean()
    rank_gated = (
        gated[gated["product_id"] == warned]["rank"].fillna(99).mean()
        if warned in set(gated["product_id"])
        else 99
    )
    assert rank_gated > rank_plain
    consumer_plain = _read(world["plain"], StepFile.CONSUMER_LISTS)
    consumer_gated = _read(world["gated"], StepFile.CONSUMER_LISTS)
    assert (consumer_gated["product_id"] == warned).sum() < (consumer_plain["product_id"] == warned).sum()


def test_unsellable_products_never_appear(world: dict) -> None:
    from models.recommenders.filters import sellable_products

    products = pd.read_parquet(world["validated"].clean_paths["products"])
    as_of = AsOf.of(world["validated"].as_of)
    sellable = sellable_products(products, as_of, NightlyConfig().lists.sale_window_days)
    assert len(sellable) < len(products)  # the simulator plants flash sales that ended
    for name in LISTS:
        assert set(_read(world["gated"], name)["product_id"]) <= sellable, name


def test_outputs_are_atomic_and_deterministic(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipelines.steps.recommend.fit_production", _fit_als)
    assert not list((world["root"] / "gated").glob("*.partial"))
    similar = _read(world["gated"], StepFile.SIMILAR_ITEMS)
    assert list(similar.columns) == ["product_id", "similar_product_id", "score", "rank"]
    again = run_recommend(
        world["validated"].clean_paths,
        world["validated"].as_of,
        NightlyConfig(),
        world["root"] / "again",
        K,
        None,
        world["root"] / "quality_alerts.csv",
    )
    for name in (*LISTS, StepFile.SIMILAR_ITEMS):
        pd.testing.assert_frame_equal(_read(again, name), _read(world["gated"], name))


def test_exclude_purchased_and_category_cap(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pipelines.steps.recommend.fit_production", _fit_als)
    config = NightlyConfig.model_validate({"lists": {"category_cap": 2}})
    outcome = run_recommend(
        world["validated"].clean_paths,
        world["validated"].as_of,
        config,
        world["root"] / "strict",
        K,
        True,
        world["root"] / "no_alerts.csv",
    )
    lists = _read(outcome, StepFile.CONSUMER_LISTS)
    orders = pd.read_parquet(world["validated"].clean_paths["orders"])
    bought = orders[orders["status"] == "paid"][["consumer_id", "product_id"]].drop_duplicates()
    assert lists.merge(bought, on=["consumer_id", "product_id"]).empty
    products = pd.read_parquet(world["validated"].clean_paths["products"]).set_index("product_id")["category"]
    per_category = (
        lists.assign(category=lists["product_id"].map(products)).groupby(["consumer_id", "category"]).size()
    )
    assert per_category.max() <= 2
    pushed = _read(outcome, StepFile.DISTRIBUTOR_LISTS)
    assert (
        pushed.assign(category=pushed["product_id"].map(products))
        .groupby(["distributor_id", "category"])
        .size()
        .max()
        <= 2
    )


def test_distributor_lists_match_planted_tastes_better_than_global(world: dict) -> None:
    tastes = pd.read_parquet(world["root"] / "data" / "truth" / "community_tastes.parquet")
    planted = tastes.pivot_table(index="distributor_id", columns="category", values="weight", fill_value=0.0)
    products = pd.read_parquet(world["validated"].clean_paths["products"]).set_index("product_id")["category"]
    pushed = _read(world["plain"], StepFile.DISTRIBUTOR_LISTS)
    global_list = _read(world["plain"], StepFile.FALLBACK_GLOBAL).head(
        NightlyConfig().lists.distributor_top_n
    )

    def cosine(product_ids: pd.Series, distributor: str) -> float:
        share = (
            product_ids.map(products).value_counts(normalize=True).reindex(planted.columns, fill_value=0.0)
        )
        taste = planted.loc[distributor]
        return float(share @ taste / (np.linalg.norm(share) * np.linalg.norm(taste)))

    ours = [
        cosine(rows["product_id"], d) for d, rows in pushed.groupby("distributor_id") if d in planted.index
    ]
    baseline = [
        cosine(global_list["product_id"], d) for d in pushed["distributor_id"].unique() if d in planted.index
    ]
    assert len(ours) >= 10
    print(f"planted tastes: ours {np.mean(ours):.3f}, global {np.mean(baseline):.3f}")
    assert np.mean(ours) > np.mean(baseline) + 0.1, (np.mean(ours), np.mean(baseline))


def test_cli_recommend_with_quality_dir(world: dict, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    quality_dir = world["root"] / "quality"
    quality_dir.mkdir(exist_ok=True)
    world["alerts"].to_csv(quality_dir / "quality_alerts.csv", index=False)
    monkeypatch.setattr("pipelines.steps.recommend.fit_production", _fit_als)
    out = world["root"] / "cli"
    args = ["siyu", "recommend", "--data", str(world["root"] / "data"), "--out", str(out), "--k", "5"]
    monkeypatch.setattr(sys, "argv", [*args, "--exclude-purchased", "--quality", str(quality_dir)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code in (None, 0)
    assert "recommend as of" in capsys.readouterr().out
    lists = pd.read_parquet(out / StepFile.CONSUMER_LISTS)
    assert (lists.groupby("consumer_id").size() == 5).all()
    assert world["alerts"]["product_id"].iloc[0] not in set(lists["product_id"])


def test_a_run_context_hands_over_connection_data_and_model(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.engine import connect
    from features.progress import add_listener
    from pipelines.steps.recommend import night_data

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("the handed-over model must be used, not fitted again")

    monkeypatch.setattr("pipelines.steps.recommend.fit_production", no_fit)
    validated, config = world["validated"], NightlyConfig()
    con = connect(validated.clean_paths)
    data = night_data(con, AsOf.of(validated.as_of), config.recommend.interactions)
    updates = []
    remove = add_listener(updates.append)
    try:
        outcome = run_recommend(
            validated.clean_paths,
            validated.as_of,
            config,
            world["root"] / "context",
            K,
            None,
            world["root"] / "quality_alerts.csv",
            con=con,
            data=data,
            model=_als().fit(data),
        )
    finally:
        remove()
    for name in LISTS:  # the same lists as fitting inside the step
        pd.testing.assert_frame_equal(_read(outcome, name), _read(world["gated"], name))
    scoring = [update for update in updates if update.step == "scoring and writing lists"]
    assert scoring[-1].finished and scoring[-1].done == scoring[-1].total == outcome.consumers


def test_partial_data_hold_every_consumer_and_only_the_samples_rows(world: dict) -> None:
    """``interaction_data(..., sample=n)``: every consumer's id and every product, the rows of the
    ``n`` consumers ``hashed_sample`` picks exactly as all rows give them, nobody else's; the
    driver's pass refuses such data, and the DuckDB night never builds them."""
    from features.engine import connect
    from models.evaluation import interaction_data
    from models.recommenders.base import InteractionData, hashed_sample
    from models.recommenders.ranker import RankerRecommender
    from models.recommenders.scoring_pass import list_pass
    from pipelines.steps.recommend import night_data

    validated, config = world["validated"], NightlyConfig()
    con = connect(validated.clean_paths)
    as_of, interactions = AsOf.of(validated.as_of), config.recommend.interactions
    full = interaction_data(con, as_of, interactions)
    size = full.shape[0] // 3
    partial = interaction_data(con, as_of, interactions, sample=size)
    assert partial.partial and not full.partial
    assert partial.consumer_ids.equals(full.consumer_ids) and partial.product_ids.equals(full.product_ids)
    rows = hashed_sample(full.consumer_ids, size)
    others = np.setdiff1d(np.arange(full.shape[0]), rows)
    for name in ("matrix", "blocked", "purchases", "age_days", "purchase_span_days"):
        whole, part = getattr(full, name), getattr(partial, name)
        assert (whole[rows] != part[rows]).nnz == 0, name
        assert part[others].nnz == 0 and whole[others].nnz > 0, name
    assert partial.consumer_profiles.equals(full.consumer_profiles)
    assert not interaction_data(con, as_of, interactions, sample=full.shape[0]).partial  # all: no sample
    partial.save(world["root"] / "partial_data")
    assert InteractionData.load(world["root"] / "partial_data").partial  # saved as partial
    full.save(world["root"] / "partial_data")
    assert not InteractionData.load(world["root"] / "partial_data").partial

    assert not night_data(con, as_of, interactions, RankerRecommender(max_fit_consumers=size)).partial
    with pytest.raises(ValueError, match="partial"):
        next(list_pass(None, partial, pd.Series(dtype=object), K, None, None, config.lists, set()))
    with pytest.raises(ValueError, match="tune it first"):
        RankerRecommender(max_fit_consumers=size).fit(partial)


def test_a_spark_night_carries_the_stored_sampled_ranker_onto_the_samples_rows_and_writes_the_same_lists(
    world: dict, spark: object, tmp_path
) -> None:
    """A night that reuses a stored ranker sampling 800 of the consumers: on Spark its data hold the
    sample's rows only (partial), the carried model is scored by the Spark pass, and the lists are
    the DuckDB night's (the same up to float summation order; the fallback lists byte for byte)."""
    from features.engine import connect
    from features.spark_engine import SparkConnection
    from models.recommenders.store import CarriedEvaluation, ModelKey, StoredModel, read_stored, write_stored
    from models.recommenders.training import fit_production
    from pipelines.steps.recommend import night_data
    from tests.ranked_lists import assert_same_list_file

    validated = world["validated"]
    settings = NightlyConfig().model_dump()
    settings["recommend"]["models"]["ranker"]["params"]["max_fit_consumers"] = 800
    config = NightlyConfig.model_validate(settings)
    as_of, interactions = AsOf.of(validated.as_of), config.recommend.interactions
    con = connect(validated.clean_paths)
    data = night_data(con, as_of, interactions)
    fitted = fit_production(con, as_of, config.recommend, data=data)
    key = ModelKey("test", as_of.date, "test")
    write_stored(
        tmp_path / "store", StoredModel.of("ranker", fitted, key, CarriedEvaluation({}, 0.0, None, ""))
    )
    stored = read_stored(tmp_path / "store")

    alerts = world["root"] / "quality_alerts.csv"

    def lists(engine: object, data: object, folder: str):  # one night's lists on ``engine``
        return run_recommend(
            validated.clean_paths,
            as_of,
            config,
            tmp_path / folder,
            K,
            None,
            alerts,
            con=engine,
            data=data,
            model=stored.carried_onto(data),
        )

    on_duckdb = lists(con, data, "duckdb")
    on_spark = SparkConnection(spark, validated.clean_paths, spill_dir=tmp_path)
    partial = night_data(on_spark, as_of, interactions, stored.unfitted())
    assert partial.partial and partial.consumer_ids.equals(data.consumer_ids)
    assert (partial.matrix.getnnz(axis=1) > 0).sum() <= 800 < (data.matrix.getnnz(axis=1) > 0).sum()
    spark_lists = lists(on_spark, partial, "spark")
    keys = {StepFile.CONSUMER_LISTS: ["consumer_id"], StepFile.DISTRIBUTOR_LISTS: ["distributor_id"]}
    keys[StepFile.OUTREACH] = ["distributor_id"]
    for name, key_columns in keys.items():
        assert_same_list_file(spark_lists.paths[name], on_duckdb.paths[name], key_columns)
    for name in (StepFile.FALLBACK_COMMUNITY, StepFile.FALLBACK_GLOBAL, StepFile.SIMILAR_ITEMS):
        assert spark_lists.paths[name].read_bytes() == on_duckdb.paths[name].read_bytes(), name
