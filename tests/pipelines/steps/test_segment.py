"""The segmentation step end to end: exports, their columns and order, reruns, movement, injection safety.

CLV is switched off here (it has its own tests); the step's CLV wiring is exercised by
``test_clv_columns_are_filled`` only. The module is skipped when models/clv.py is missing.
"""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("models.clv", reason="models/clv.py (the CLV model) is not in the tree yet")

import pipelines.steps.segment as segment_step
from features.catalog import StepFile, export_file
from features.columns import Col, Table
from features.engine import EngineConfig, session
from features.errors import SiyuError
from features.vocabulary import ExportCol
from models.churn import ChurnConfig
from models.clusters import ClusterConfig
from models.clv import CLVConfig
from models.segmentation import SegmentationConfig
from pipelines.config import NightlyConfig
from pipelines.steps.segment import (
    read_communities,
    read_previous_tiers,
    run_segmentation,
)
from pipelines.steps.validate import load_and_validate
from reporting.excel import write_excel_csv
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli

SETTINGS = SegmentationConfig(
    clv=CLVConfig(enabled=False),
    clusters=ClusterConfig(k_min=2, k_max=4, fit_sample=2_000, silhouette_sample=500, n_init=2),
)
CSV_FILES = (
    StepFile.CONSUMER_TIERS,
    StepFile.DISTRIBUTOR_TIERS,
    StepFile.DISTRIBUTOR_COACHING,
    StepFile.TIER_MIGRATION,
    StepFile.RFM_SEGMENTS,
    StepFile.RFM_GRID,
    StepFile.CLUSTER_PROFILES,
    StepFile.MEMBER_TIERS,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("segment") / "data"
    simulate(data, SimulationConfig(consumers=800, distributors=15, products=120, days=120, seed=5))
    return data


@pytest.fixture(scope="module")
def validated(data_dir: Path):
    return load_and_validate(data_dir, None, NightlyConfig(), data_dir.parent / "validated")


@pytest.fixture(scope="module")
def first_run(validated, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first")
    run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, out, None)
    return out


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype={Col.CONSUMER_ID: str, Col.DISTRIBUTOR_ID: str})


def test_consumer_tiers_one_row_per_consumer_with_documented_columns(validated, first_run: Path) -> None:
    raw = (first_run / StepFile.CONSUMER_TIERS).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    tiers = read(first_run / StepFile.CONSUMER_TIERS)
    assert tiers.columns.tolist() == list(
        export_file(StepFile.CONSUMER_TIERS).column_names(horizon_days=SETTINGS.clv.horizon_days)
    )
    registered = pd.read_parquet(validated.clean_paths[Table.CONSUMERS])[Col.CONSUMER_ID]
    assert sorted(tiers[Col.CONSUMER_ID]) == sorted(registered)
    # rows for people: segments in the configured order (no purchase last), then spend (CLV off)
    priority = [rule.name for rule in SETTINGS.rfm.segments] + [SETTINGS.rfm.no_purchase_segment]
    ranks = tiers["rfm_segment"].map(priority.index)
    assert ranks.is_monotonic_increasing
    assert all(group["monetary"].is_monotonic_decreasing for _, group in tiers.groupby(ranks))
    segments = {rule.name for rule in SETTINGS.rfm.segments} | {SETTINGS.rfm.no_purchase_segment}
    assert set(tiers["rfm_segment"]) <= segments and set(tiers["movement"]) == {"new"}
    assert set(tiers["member_tier"]) <= set(SETTINGS.member_tiers.names)
    buyers = tiers[tiers["frequency"] > 0]
    assert buyers[["r_score", "f_score", "m_score", "cluster"]].notna().all().all()
    # rank-based quintiles: every score is used, and bins differ in size by at most one
    for score in ("r_score", "f_score", "m_score"):
        sizes = buyers[score].value_counts()
        assert sorted(sizes.index) == [1, 2, 3, 4, 5] and sizes.max() - sizes.min() <= 1
    assert tiers.loc[tiers["frequency"] == 0, "rfm_segment"].eq("No purchase yet").all()


def test_distributor_tiers_sorted_by_rank_with_reasons(first_run: Path) -> None:
    tiers = read(first_run / StepFile.DISTRIBUTOR_TIERS)
    assert tiers.columns.tolist() == list(export_file(StepFile.DISTRIBUTOR_TIERS).column_names())
    assert tiers["gmv_rank"].tolist() == list(range(1, len(tiers) + 1))
    assert tiers["gmv_month"].is_monotonic_decreasing
    assert set(tiers["distributor_tier"]) <= {"pillar", "growth", "steady", "long tail", "dormant"}
    assert (tiers["coaching"] == tiers["coaching_reason"].notna()).all()
    coached = read(first_run / StepFile.DISTRIBUTOR_COACHING)
    assert len(coached) == int(tiers["coaching"].sum())


def test_rerun_is_byte_identical_and_previous_gives_movement(
    validated, first_run: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, again, None)
    for name in CSV_FILES:
        assert (again / name).read_bytes() == (first_run / name).read_bytes(), name

    second = tmp_path / "second"
    outcome = run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, second, first_run)
    tiers = read(second / StepFile.CONSUMER_TIERS)
    assert (tiers["previous_tier"] == tiers["member_tier"]).all() and set(tiers["movement"]) == {"same"}
    assert outcome.movement_counts["same"] == len(tiers)
    matrix = read(second / StepFile.TIER_MIGRATION).set_index("previous")
    assert matrix.loc["(new)", "total"] == 0 and matrix["total"].sum() == len(tiers)


def test_a_shared_session_gives_the_same_files_and_is_left_as_it_was(
    validated, first_run: Path, tmp_path: Path, monkeypatch
) -> None:
    """The nightly hands the run's engine session: no second connection, the same bytes, and the
    session's settings as they were for the next step."""

    def no_second_connection(*args, **kwargs):
        raise AssertionError("run_segmentation opened its own connection although given one")

    with session(validated.clean_paths, EngineConfig(threads=1), tmp_path / "work") as con:
        monkeypatch.setattr(segment_step, "connect", no_second_connection)
        run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, tmp_path / "out", None, con)
        kept = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    assert kept == (True,)
    for name in CSV_FILES:
        assert (tmp_path / "out" / name).read_bytes() == (first_run / name).read_bytes(), name


def test_movement_up_and_down_against_an_edited_previous_run(
    validated, first_run: Path, tmp_path: Path
) -> None:
    previous = read(first_run / StepFile.CONSUMER_TIERS)[[Col.CONSUMER_ID, "member_tier"]]
    newcomer = previous[Col.CONSUMER_ID].iloc[0]
    previous = previous.iloc[1:]  # not there before: "new"
    was_gold = previous["member_tier"] == "gold"  # pretend they were diamond: now "down"
    was_silver = previous["member_tier"] == "silver"  # pretend they were regular: now "up"
    assert was_gold.any() and was_silver.any()
    previous.loc[was_gold, "member_tier"] = "diamond"
    previous.loc[was_silver, "member_tier"] = "regular"
    prior_dir = tmp_path / "prior"
    write_excel_csv(previous, prior_dir / StepFile.CONSUMER_TIERS)
    out = tmp_path / "out"
    outcome = run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, out, prior_dir)
    movement = read(out / StepFile.CONSUMER_TIERS).set_index(Col.CONSUMER_ID)["movement"]
    assert movement[newcomer] == "new"
    assert movement[previous.loc[was_gold, Col.CONSUMER_ID]].eq("down").all()
    assert movement[previous.loc[was_silver, Col.CONSUMER_ID]].eq("up").all()
    assert outcome.movement_counts == {
        "up": int(was_silver.sum()),
        "down": int(was_gold.sum()),
        "same": len(previous) - int(was_gold.sum() + was_silver.sum()),
        "new": 1,
    }
    matrix = read(out / StepFile.TIER_MIGRATION).set_index("previous")
    assert (
        matrix.loc["diamond", "gold"] == was_gold.sum()
        and matrix.loc["regular", "silver"] == was_silver.sum()
    )


def test_previous_run_problems_name_the_file(validated, tmp_path: Path) -> None:
    with pytest.raises(SiyuError, match="consumer_tiers.csv: previous consumer tiers not found"):
        run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, tmp_path / "o", tmp_path)
    bad = pd.DataFrame({Col.CONSUMER_ID: ["C1"], "member_tier": ["platinum"]})
    write_excel_csv(bad, tmp_path / "bad" / StepFile.CONSUMER_TIERS)
    with pytest.raises(SiyuError, match=r"bad/consumer_tiers.csv: .*'platinum'.*\n  fix:"):
        run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, tmp_path / "o", tmp_path / "bad")


def test_formula_like_text_is_neutralised(tmp_path: Path) -> None:
    products = pd.DataFrame(
        {
            Col.PRODUCT_ID: ["P1"],
            Col.SUPPLIER_ID: ["S1"],
            Col.CATEGORY: ["=HYPERLINK(1)"],
            Col.LIST_PRICE: [10.0],
        }
    )
    orders = pd.DataFrame(
        {
            Col.ORDER_ID: ["O1", "O2"],
            Col.CONSUMER_ID: ["C1", "+C2"],
            Col.DISTRIBUTOR_ID: ["@D1", "D2"],
            Col.PRODUCT_ID: ["P1", "P1"],
            Col.QUANTITY: [1, 2],
            Col.UNIT_PRICE: [10.0, 9.0],
            Col.ORDERED_AT: pd.to_datetime(["2025-03-01", "2025-03-02"]),
            Col.STATUS: ["paid", "paid"],
        }
    )
    paths = {}
    for table, frame in ((Table.PRODUCTS, products), (Table.ORDERS, orders)):
        paths[table] = tmp_path / f"{table}.parquet"
        frame.to_parquet(paths[table], index=False)
    outcome = run_segmentation(paths, date(2025, 3, 31), SETTINGS, tmp_path / "out", None)
    assert outcome.clusters is None  # two buyers are too few to cluster
    tiers = read(tmp_path / "out" / StepFile.CONSUMER_TIERS)
    assert tiers[Col.CONSUMER_ID].tolist() == ["'+C2", "C1"]
    assert set(tiers["top_category"]) == {"'=HYPERLINK(1)"}
    distributors = read(tmp_path / "out" / StepFile.DISTRIBUTOR_TIERS)
    assert "'@D1" in set(distributors[Col.DISTRIBUTOR_ID])


@pytest.mark.slow
def test_clv_columns_are_filled(validated, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"clv": CLVConfig()})
    out = tmp_path / "clv"
    outcome = run_segmentation(validated.clean_paths, validated.as_of, settings, out, None)
    tiers = read(out / StepFile.CONSUMER_TIERS)
    buyers = tiers[tiers["frequency"] > 0]
    horizon = settings.clv.horizon_days
    assert buyers[f"expected_purchases_{horizon}d"].notna().mean() > 0.9
    alive = buyers["prob_alive"].dropna()
    assert alive.between(0, 1).all()
    risk = buyers["churn_risk"]
    assert risk.notna().all() and risk.between(0, 1, inclusive="neither").all()
    assert set(buyers["churn_band"].dropna()) <= {"low", "medium", "high"}
    assert outcome.clv_set_aside is not None
    assert outcome.churn_chosen["churn"] in {"mbgnbd", "logistic", "gradient_boosting", "logistic_rf"}


SMALL_CONFIG = """
segmentation:
  clv:
    enabled: false
  clusters:
    k_max: 4
    fit_sample: 2000
    silhouette_sample: 500
"""


@pytest.mark.skipif(
    "segmentation" not in NightlyConfig.model_fields,
    reason="segmentation: is not wired into NightlyConfig yet",
)
def test_segment_command_end_to_end(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "nightly.yaml"
    config.write_text(SMALL_CONFIG)
    first, second = tmp_path / "first", tmp_path / "second"
    assert (
        run_cli(monkeypatch, "segment", "--data", str(data_dir), "--out", str(first), "--config", str(config))
        == 0
    )
    printed = capsys.readouterr().out
    assert "segmentation as of" in printed and "member tiers: regular=" in printed
    assert (first / StepFile.CONSUMER_TIERS).is_file() and (first / "validated" / "clean").is_dir()
    args = ["segment", "--data", str(data_dir), "--out", str(second), "--config", str(config)]
    assert run_cli(monkeypatch, *args, "--previous", str(first)) == 0
    assert "movement: up=0, down=0, same=800, new=0" in capsys.readouterr().out

    overlapping = (
        SMALL_CONFIG + "  rfm:\n    segments:\n      - {name: Everyone}\n      - {name: VIP, r: [5, 5]}\n"
    )
    config.write_text(overlapping)
    assert run_cli(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert "segmentation.rfm" in err and "25 cell(s) overlap" in err and "Traceback" not in err


AWKWARD_CONSUMERS = ["=HYPERLINK(1)", "+8613800138000", "-2", "NA", "null", "C1"]


def _awkward_tables(folder: Path) -> dict[str, Path]:
    """Six buyers whose ids the CSV formula guard quotes or a CSV reader reads as missing."""
    products = pd.DataFrame(
        {Col.PRODUCT_ID: ["P1"], Col.SUPPLIER_ID: ["S1"], Col.CATEGORY: ["snacks"], Col.LIST_PRICE: [10.0]}
    )
    orders = pd.DataFrame(
        {
            Col.ORDER_ID: [f"O{i}" for i in range(len(AWKWARD_CONSUMERS))],
            Col.CONSUMER_ID: AWKWARD_CONSUMERS,
            Col.DISTRIBUTOR_ID: "D1",
            Col.PRODUCT_ID: "P1",
            Col.QUANTITY: [1, 2, 3, 40, 5, 600],
            Col.UNIT_PRICE: 10.0,
            Col.ORDERED_AT: pd.Timestamp("2025-03-01"),
            Col.STATUS: "paid",
        }
    )
    paths = {Table.PRODUCTS: folder / "products.parquet", Table.ORDERS: folder / "orders.parquet"}
    folder.mkdir(parents=True, exist_ok=True)
    products.to_parquet(paths[Table.PRODUCTS], index=False)
    orders.to_parquet(paths[Table.ORDERS], index=False)
    return paths


def test_awkward_ids_keep_their_tier_movement_across_two_runs(tmp_path: Path) -> None:
    paths = _awkward_tables(tmp_path / "data")
    first, second = tmp_path / "first", tmp_path / "second"
    run_segmentation(paths, date(2025, 3, 31), SETTINGS, first, None)
    twin = pd.read_parquet(first / StepFile.CONSUMER_TIERS_TWIN)
    assert sorted(twin[Col.CONSUMER_ID]) == sorted(AWKWARD_CONSUMERS)  # exact, unlike the CSV
    outcome = run_segmentation(paths, date(2025, 4, 1), SETTINGS, second, first)
    tiers = pd.read_parquet(second / StepFile.CONSUMER_TIERS_TWIN).set_index(Col.CONSUMER_ID)
    assert tiers["movement"].eq("same").all(), tiers["movement"].to_dict()
    assert outcome.movement_counts["same"] == len(AWKWARD_CONSUMERS)
    assert tiers.loc["C1", "previous_tier"] == tiers.loc["C1", "member_tier"]
    communities = read_communities(second)  # what the flow hands the artifact writer
    assert communities is not None
    assert sorted(communities[Col.CONSUMER_ID]) == sorted(AWKWARD_CONSUMERS)
    assert set(communities[Col.DISTRIBUTOR_ID]) == {"D1"}
    assert read_communities(tmp_path / "nothing here") is None


def test_an_export_without_twin_gives_movement_from_its_csv(tmp_path: Path) -> None:
    paths = _awkward_tables(tmp_path / "data")
    first, second = tmp_path / "first", tmp_path / "second"
    run_segmentation(paths, date(2025, 3, 31), SETTINGS, first, None)
    (first / StepFile.CONSUMER_TIERS_TWIN).unlink()  # as an export made before twins existed
    run_segmentation(paths, date(2025, 4, 1), SETTINGS, second, first)
    tiers = pd.read_parquet(second / StepFile.CONSUMER_TIERS_TWIN)
    assert tiers["movement"].eq("same").all(), tiers.set_index(Col.CONSUMER_ID)["movement"].to_dict()


def test_the_twin_holds_the_csv_rows_unquoted(first_run: Path) -> None:
    csv = read(first_run / StepFile.CONSUMER_TIERS)
    twin = pd.read_parquet(first_run / StepFile.CONSUMER_TIERS_TWIN)
    assert list(twin.columns) == list(csv.columns)
    assert twin[Col.CONSUMER_ID].astype(str).tolist() == csv[Col.CONSUMER_ID].astype(str).tolist()


def test_a_non_utf8_previous_tiers_file_names_itself_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / StepFile.CONSUMER_TIERS).write_bytes("consumer_id,member_tier\nC1,普通\n".encode("gb18030"))
    with pytest.raises(SiyuError, match=r"consumer_tiers.csv: cannot be read .*\n  fix: pass --previous"):
        read_previous_tiers(tmp_path)


def test_the_clv_warm_up_runs_on_its_own_thread_only_when_clv_is_on(monkeypatch) -> None:
    """PyMC's import and PyTensor's module cache load beside the DuckDB queries, never with CLV off."""
    ran: list[str] = []
    monkeypatch.setattr(segment_step, "warm_up", lambda: ran.append(threading.current_thread().name))
    assert segment_step._warm_up_clv_meanwhile(SETTINGS) is None
    thread = segment_step._warm_up_clv_meanwhile(SETTINGS.model_copy(update={"clv": CLVConfig()}))
    assert thread is not None
    thread.join()
    assert ran == ["siyu-warm-up-clv"] and thread.name != threading.current_thread().name


def test_a_failed_clv_warm_up_is_left_for_the_fit_to_report(monkeypatch, caplog) -> None:
    def broken() -> None:
        raise ImportError("no pymc here")

    monkeypatch.setattr(segment_step, "warm_up", broken)
    with caplog.at_level("DEBUG", logger=segment_step.__name__):
        thread = segment_step._warm_up_clv_meanwhile(SETTINGS.model_copy(update={"clv": CLVConfig()}))
        thread.join()
    assert any("warming up the CLV libraries" in record.getMessage() for record in caplog.records)


def test_floats_as_text_write_the_same_csv_bytes_through_duckdb(tmp_path: Path, monkeypatch) -> None:
    """consumer_tiers' floats as pandas' own text: a long export goes to the DuckDB writer, same bytes."""
    import reporting.excel

    typed = pd.DataFrame(
        {
            "id": pd.array(["C1", "=C2", "C,3", "", None, "C6"], dtype="string"),
            "spend": [0.1, 5.0, 1e-05, 1e16, float("nan"), 123456.789],
            "risk": [0.0012, 0.9988, float("nan"), 0.5, 2.5e-310, float("inf")],
            "orders": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        }
    )
    write_excel_csv(typed, tmp_path / "pandas.csv")
    monkeypatch.setattr(reporting.excel, "CSV_BLOCK_ROWS", 2)  # six rows: a "long" file
    as_text = segment_step.floats_as_text(typed)
    assert all(pd.api.types.is_string_dtype(as_text[column]) for column in ("spend", "risk"))
    write_excel_csv(as_text, tmp_path / "duckdb.csv")
    assert (tmp_path / "duckdb.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_a_negative_float_keeps_the_frame_as_it_is() -> None:
    """As text, -2.5 would be guarded as a formula; pandas writes it as a number."""
    for negative in (-2.5, -0.0):
        frame = pd.DataFrame({"spend": [1.5, negative], "risk": [0.1, 0.2]})
        assert segment_step.floats_as_text(frame) is frame


def test_the_churn_choice_is_kept_between_nights_and_made_again_when_due(
    validated, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a store (the nightly's ``churn_choice.json``) a night keeps the choice an earlier night
    made (``rechoose_every_days``): with the models fitted every night (``refit_every_days`` 1),
    the same files as a night that made the same choice itself."""
    churn = ChurnConfig(
        candidates=("logistic", "logistic_rf"), forecast_candidates=("gradient_boosting",), refit_every_days=1
    )
    settings = SETTINGS.model_copy(update={"clv": CLVConfig(horizon_days=30), "churn": churn})
    store, tonight = tmp_path / "churn_choice.json", validated.as_of
    clean = validated.clean_paths
    first = run_segmentation(clean, tonight.days_before(1), settings, tmp_path / "a", None, kept_dir=tmp_path)
    assert json.loads(store.read_text())["key"]["as_of"] == tonight.days_before(1).date.isoformat()

    with caplog.at_level("INFO", logger="pipelines.steps.segment"):
        kept = run_segmentation(clean, tonight, settings, tmp_path / "b", None, kept_dir=tmp_path)
    assert "churn / value models: kept the choice of" in caplog.text
    assert (
        json.loads(store.read_text())["key"]["as_of"] == tonight.days_before(1).date.isoformat()
    )  # not re-stored
    chosen_tonight = run_segmentation(clean, tonight, settings, tmp_path / "c", None)
    assert kept.churn_chosen == first.churn_chosen == chosen_tonight.churn_chosen
    for name in (StepFile.CONSUMER_TIERS, StepFile.CONSUMER_TIERS_TWIN):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name

    caplog.clear()
    every_night = settings.model_copy(update={"churn": churn.model_copy(update={"rechoose_every_days": 1})})
    with caplog.at_level("INFO", logger="pipelines.steps.segment"):
        run_segmentation(clean, tonight, every_night, tmp_path / "d", None, kept_dir=tmp_path)
    assert "comparing the candidates tonight (segmentation.churn.rechoose_every_days is 1" in caplog.text
    assert json.loads(store.read_text())["key"]["as_of"] == tonight.date.isoformat()


def test_the_fitted_models_are_kept_between_nights_and_fitted_again_when_due(
    validated, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    """With a store (the nightly's ``churn_models.npz``) a night that keeps the choice predicts with
    the models an earlier night fitted (``refit_every_days``): nothing is fitted, the store is not
    rewritten, and its CLV columns are those models' predictions for tonight's buyers; a cadence
    of 1 fits and stores again."""
    import models.churn as churn_module
    from models.churn_choice import read_models

    churn = ChurnConfig(
        candidates=("logistic", "gradient_boosting"), forecast_candidates=("bgnbd", "gradient_boosting")
    )
    settings = SETTINGS.model_copy(update={"clv": CLVConfig(horizon_days=30), "churn": churn})
    store, tonight, clean = tmp_path / "churn_models.npz", validated.as_of, validated.clean_paths
    first = run_segmentation(clean, tonight.days_before(1), settings, tmp_path / "a", None, kept_dir=tmp_path)
    fitted = read_models(store)
    assert fitted is not None and fitted.key.as_of == tonight.days_before(1).date
    assert fitted.models.chosen == first.churn_chosen
    assert (fitted.models.models[0].kind, fitted.models.models[0].name) == (
        "churn",
        first.churn_chosen["churn"],
    )
    assert all(m.arrays for m in fitted.models.models)

    def no_fit(*args, **kwargs):
        raise AssertionError("a night with kept models fitted one")

    with monkeypatch.context() as patched, caplog.at_level("INFO", logger="pipelines.steps.segment"):
        patched.setattr(churn_module, "score_candidates", no_fit)
        kept = run_segmentation(clean, tonight, settings, tmp_path / "b", None, kept_dir=tmp_path)
    assert f"predicted with the models fitted as of {tonight.days_before(1).date}" in caplog.text
    assert read_models(store).key == fitted.key  # not re-stored
    assert kept.churn_chosen == first.churn_chosen

    # tonight's frames through the stored models, by hand: the exported CLV columns
    from features.clv import model_frames
    from features.engine import connect

    _, _, current = model_frames(connect(clean), tonight, 30, settings.clv.returned_lines)
    scores = churn_module.predict_fitted(fitted.models, current, settings.clv, churn)
    tiers = pd.read_parquet(tmp_path / "b" / StepFile.CONSUMER_TIERS_TWIN)
    by_id = tiers.set_index(Col.CONSUMER_ID).loc[current[Col.CONSUMER_ID].astype("string")]
    risk = scores.churn[first.churn_chosen["churn"]].clip(0.001, 0.999).round(4)
    assert by_id[ExportCol.CHURN_RISK].to_numpy().tolist() == pytest.approx(risk.tolist(), abs=1e-12)
    assert by_id[ExportCol.PROB_ALIVE].to_numpy().tolist() == pytest.approx(
        scores.prob_alive.round(4).tolist(), abs=1e-12
    )

    caplog.clear()
    every_night = settings.model_copy(update={"churn": churn.model_copy(update={"refit_every_days": 1})})
    with caplog.at_level("INFO", logger="pipelines.steps.segment"):
        run_segmentation(clean, tonight, every_night, tmp_path / "c", None, kept_dir=tmp_path)
    assert "fitting the chosen ones tonight (segmentation.churn.refit_every_days is 1" in caplog.text
    assert read_models(store).key.as_of == tonight.date


def test_the_clusters_k_is_kept_between_nights_and_chosen_again_when_due(
    validated, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a store (the nightly's ``cluster_choice.json``) a night fits KMeans for the k an
    earlier night chose (``clusters.rechoose_every_days``): the same files as a night that
    chose that k itself, without trying the others."""
    settings = SETTINGS.model_copy(update={"clv": CLVConfig(enabled=False)})
    store, tonight, clean = tmp_path / "cluster_choice.json", validated.as_of, validated.clean_paths
    first = run_segmentation(clean, tonight.days_before(1), settings, tmp_path / "a", None, kept_dir=tmp_path)
    stored = json.loads(store.read_text())
    assert stored["key"]["as_of"] == tonight.days_before(1).date.isoformat()
    assert stored["k"] == first.clusters and str(first.clusters) in stored["silhouettes"]

    caplog.clear()
    with caplog.at_level("INFO", logger="models.segmentation"):
        kept = run_segmentation(clean, tonight, settings, tmp_path / "b", None, kept_dir=tmp_path)
    assert f"clusters: k={first.clusters} kept from an earlier night" in caplog.text
    assert "chosen by silhouette" not in caplog.text
    assert json.loads(store.read_text()) == stored  # not stored again
    chosen_tonight = run_segmentation(clean, tonight, settings, tmp_path / "c", None)
    assert kept.clusters == chosen_tonight.clusters
    for name in (StepFile.CONSUMER_TIERS, StepFile.CONSUMER_TIERS_TWIN, StepFile.CLUSTER_PROFILES):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name

    caplog.clear()
    clusters = settings.clusters.model_copy(update={"rechoose_every_days": 1})
    every_night = settings.model_copy(update={"clusters": clusters})
    with caplog.at_level("INFO"):
        run_segmentation(clean, tonight, every_night, tmp_path / "d", None, kept_dir=tmp_path)
    assert "clusters: choosing k by silhouette tonight (segmentation.clusters.rechoose_every_days is 1" in (
        caplog.text
    )
    assert json.loads(store.read_text())["key"]["as_of"] == tonight.date.isoformat()
