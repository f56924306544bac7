"""The contract's description is the one users read, and its checks name real reasons."""

from __future__ import annotations

import re
from pathlib import Path

from features.columns import Col, Table
from features.contract import CONTRACT, QUARANTINE_REASONS, contract_markdown, row_schema
from features.validate import ValidationConfig

DOC = Path(__file__).parents[2] / "docs" / "data_contract.md"


def test_doc_is_generated_from_the_code() -> None:
    assert DOC.read_text(encoding="utf-8").rstrip("\n") == contract_markdown().rstrip("\n"), (
        "docs/data_contract.md is stale: run `python -m features.contract > docs/data_contract.md`"
    )


def test_every_table_of_the_vocabulary_is_described() -> None:
    assert set(CONTRACT) == set(Table.ALL)
    assert CONTRACT[Table.ORDERS].required_columns == [
        Col.ORDER_ID,
        Col.CONSUMER_ID,
        Col.DISTRIBUTOR_ID,
        Col.PRODUCT_ID,
        Col.QUANTITY,
        Col.UNIT_PRICE,
        Col.ORDERED_AT,
        Col.STATUS,
    ]
    assert Col.SALE_START not in CONTRACT[Table.PRODUCTS].required_columns


def _documented(reason: str) -> bool:
    """Whether ``reason`` matches a pattern of the documented reasons table."""
    for pattern, _ in QUARANTINE_REASONS:
        regex = r"\w+".join(re.escape(part) for part in re.split(r"<[^>]*>", pattern))
        if re.fullmatch(regex, reason):
            return True
    return False


def test_every_reason_the_checks_name_is_documented() -> None:
    rules = ValidationConfig().rules()
    for spec in CONTRACT.values():
        schema = row_schema(
            spec, spec.column_names, rules, {c: lambda ids: ids.isna() for c in spec.column_names}
        )
        names = [check.name for column in schema.columns.values() for check in column.checks]
        names += [check.name for check in schema.checks]
        for name in names:
            assert _documented(name), name
    assert _documented("duplicate_order_line") and _documented("order_inconsistent")
    assert not _documented("ordered_at_after_as_of")


def test_the_docs_state_the_as_of_and_time_zone_rules() -> None:
    text = contract_markdown()
    assert "out of the run's window" in text and "rows_out_of_window" in text
    assert "Asia/Shanghai" in text and "ISO 8601" in text
