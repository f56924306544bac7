"""The contract's description is the one users read, and its checks name real reasons."""

from __future__ import annotations

from pathlib import Path

from features.columns import Col, Table
from features.contract import CONTRACT, contract_markdown

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
