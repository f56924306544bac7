"""Sheets from exported CSVs: headers of either locale matched to the catalog, values typed, the
formula guard's quote taken off, and a data dictionary that covers every column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.catalog import StepFile, Unit, WorkbookSheet, export_file
from features.messages import Messages
from features.vocabulary import LevelChange, QualityCol
from reporting.excel import write_excel_csv
from reporting.localize import localize_frame
from reporting.workbook_sheets import SheetPart, data_sheet, dictionary_sheet, read_export_csv

ALERTS = export_file(StepFile.QUALITY_ALERTS)


def _alerts() -> pd.DataFrame:
    values = {
        "product_id": ["=P1", "P2"],
        "supplier_id": ["S1", "NA"],
        "category": ["beauty", "snacks"],
        "orders_30d": [40, 0],
        "complaints_30d": [3, 0],
        "complaint_rate": [0.075, None],
        "rate_lower_bound": [0.02, 0.0],
        "rate_upper_bound": [0.18, 0.9],
        "threshold": [0.05, 0.05],
        "evidence": [5.2, 0.0],
        "level": ["warning", "normal"],
        "previous_level": [None, "normal"],
        "change": [LevelChange.NEW, LevelChange.UNCHANGED],
        "since": ["2025-04-30", "2025-03-01"],
    }
    frame = pd.DataFrame(values)
    assert frame.columns.tolist() == list(ALERTS.column_names())
    return frame


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_localized_csv_reads_back_typed_with_every_column_matched(tmp_path: Path, locale: str) -> None:
    messages = Messages.load(locale)
    path = write_excel_csv(localize_frame(_alerts(), messages), tmp_path / StepFile.QUALITY_ALERTS)
    frame, docs = read_export_csv(path, ALERTS, messages)
    assert [doc.name for doc in docs] == list(ALERTS.column_names())
    assert frame.iloc[:, 0].tolist() == ["=P1", "P2"]  # the CSV's quote is taken off again
    assert frame.iloc[:, 1].tolist() == ["S1", "NA"]  # an id 'NA' stays an id
    assert frame.iloc[:, 3].tolist() == [40, 0]
    assert frame.iloc[0, 5] == pytest.approx(0.075) and pd.isna(frame.iloc[1, 5])
    if locale == "zh-CN":
        assert frame.columns[0] == "商品编号"
        assert frame.iloc[0, 10] == messages.label("quality_level", "warning")


def test_families_and_configured_columns_are_matched_in_zh(tmp_path: Path) -> None:
    zh = Messages.load("zh-CN")
    migration = pd.DataFrame(
        {"previous": ["regular", "(new)"], "regular": [1, 2], "gold": [0, 1], "total": [1, 3]}
    )
    path = write_excel_csv(
        localize_frame(migration, zh, tier_columns=["regular", "gold"]), tmp_path / StepFile.TIER_MIGRATION
    )
    _, docs = read_export_csv(path, export_file(StepFile.TIER_MIGRATION), zh)
    assert [doc.name for doc in docs] == ["previous", "{member_tier}", "{member_tier}", "total"]
    consumers = export_file(StepFile.CONSUMER_TIERS)
    names = list(consumers.column_names(horizon_days=90))
    frame = pd.DataFrame([[None] * len(names)], columns=[zh.header(name) for name in names])
    path = write_excel_csv(frame, tmp_path / StepFile.CONSUMER_TIERS)
    _, docs = read_export_csv(path, consumers, zh)
    assert all(doc is not None for doc in docs)
    assert {doc.name for doc in docs} == {column.name for column in consumers.columns}


def test_numbers_in_a_text_column_stay_text_and_text_in_a_number_column_stays(tmp_path: Path) -> None:
    frame = _alerts().assign(**{QualityCol.ORDERS_30D: ["40", "many"]})
    path = write_excel_csv(frame, tmp_path / StepFile.QUALITY_ALERTS)
    typed, _ = read_export_csv(path, ALERTS, Messages.load("en"))
    assert typed[QualityCol.ORDERS_30D].tolist() == ["40", "many"]
    assert typed["category"].tolist() == ["beauty", "snacks"]


def _part(tmp_path: Path, locale: str, total: int | None = None) -> SheetPart:
    messages = Messages.load(locale)
    path = write_excel_csv(localize_frame(_alerts(), messages), tmp_path / StepFile.QUALITY_ALERTS)
    frame, docs = read_export_csv(path, ALERTS, messages)
    return SheetPart(WorkbookSheet.ALERTS, StepFile.QUALITY_WORKBOOK, ALERTS, frame, docs, total)


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_dictionary_has_a_row_per_sheet_and_per_column(tmp_path: Path, locale: str) -> None:
    messages = Messages.load(locale)
    part = _part(tmp_path, locale)
    sheet = dictionary_sheet([part], messages)
    rows = sheet.frame.to_numpy().tolist()
    assert sheet.name == messages.text(f"workbook.{WorkbookSheet.DICTIONARY}")
    assert len(rows) == 1 + len(part.frame.columns)
    assert rows[0][1] == messages.text("workbook.dictionary.whole_sheet")
    assert [row[1] for row in rows[1:]] == list(part.frame.columns)
    assert all(row[0] == messages.text(f"workbook.{WorkbookSheet.ALERTS}") for row in rows)
    assert all(row[2] and row[3] and row[4] for row in rows[1:])  # meaning, unit, source
    units = dict(zip([row[1] for row in rows[1:]], [row[3] for row in rows[1:]], strict=True))
    assert units[part.frame.columns[5]] == messages.label("unit", Unit.PERCENT)


def test_a_cut_sheet_says_so_in_the_dictionary(tmp_path: Path) -> None:
    zh = Messages.load("zh-CN")
    rows = dictionary_sheet([_part(tmp_path, "zh-CN", total=1_234_567)], zh).frame.to_numpy().tolist()
    assert rows[0][2].endswith("只列出前 2 行（共 1,234,567 行；全部数据见 quality_alerts.csv，顺序相同）")
    en_rows = dictionary_sheet([_part(tmp_path, "en", total=2)], Messages.load("en")).frame.to_numpy()
    assert "first" not in en_rows[0][2]  # not cut: no note


def test_a_data_sheet_carries_the_units_of_its_columns(tmp_path: Path) -> None:
    sheet = data_sheet(_part(tmp_path, "zh-CN"), Messages.load("zh-CN"))
    assert sheet.name == "质量预警"
    assert list(sheet.units) == [doc.unit for doc in ALERTS.columns]
