"""The one table writer: contract-typed schemas and frames, and all-or-nothing Parquet files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.columns import Col, Table
from features.contract import CONTRACT, dtype_of
from sources.table_writer import TableWriter, arrow_schema, conform_to_contract, contract_schema

SCHEMA = arrow_schema([(Col.PRODUCT_ID, "id"), (Col.QUANTITY, "integer")])


def _rows(*quantities: int) -> pa.Table:
    ids = [f"P{q}" for q in quantities]
    return pa.Table.from_arrays([pa.array(ids, pa.string()), pa.array(quantities, pa.int64())], schema=SCHEMA)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_files_appear_together_and_only_when_the_block_succeeds(tmp_path: Path) -> None:
    with TableWriter() as writer:
        writer.write(tmp_path / "a.parquet", _rows(1))
        writer.partial(tmp_path / "sub" / "b.csv").write_text("x\n1\n")
        assert _files(tmp_path) == ["a.parquet.partial", "sub/b.csv.partial"]
    assert _files(tmp_path) == ["a.parquet", "sub/b.csv"]
    assert (tmp_path / "sub" / "b.csv").read_text() == "x\n1\n"


def test_an_error_removes_every_partial_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="disk full"), TableWriter() as writer:
        writer.write(tmp_path / "a.parquet", _rows(1, 2))
        writer.partial(tmp_path / "b.csv").write_text("x\n")
        raise RuntimeError("disk full")
    assert _files(tmp_path) == []


def test_each_write_appends_one_row_group_and_rows_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    with TableWriter() as writer:
        writer.write(path, _rows(1, 2))
        writer.write(path, _rows())
        writer.write(path, _rows(3, 4, 5))
    assert writer.rows == {path: 5}
    assert pq.ParquetFile(path).metadata.num_row_groups == 2
    assert pd.read_parquet(path)[Col.QUANTITY].tolist() == [1, 2, 3, 4, 5]


def test_an_optional_file_without_rows_is_left_out_and_a_required_one_is_not(tmp_path: Path) -> None:
    with TableWriter() as writer:
        writer.write(tmp_path / "required.parquet", _rows())
        writer.write(tmp_path / "optional.parquet", _rows(), optional=True)
        writer.write(tmp_path / "late.parquet", _rows(), optional=True)
        writer.write(tmp_path / "late.parquet", _rows(7), optional=True)
    assert _files(tmp_path) == ["late.parquet", "required.parquet"]
    assert writer.empty() == [tmp_path / "optional.parquet"]
    assert len(pd.read_parquet(tmp_path / "required.parquet")) == 0
    assert pd.read_parquet(tmp_path / "late.parquet")[Col.QUANTITY].tolist() == [7]


def test_write_frame_writes_the_bytes_to_parquet_writes(tmp_path: Path) -> None:
    frame = conform_to_contract(
        pd.DataFrame({Col.PRODUCT_ID: ["P1", "P2"], Col.SUPPLIER_ID: ["S1", None], Col.LIST_PRICE: [9.9, 1]}),
        Table.PRODUCTS,
    )
    frame.to_parquet(tmp_path / "pandas.parquet", index=False)
    with TableWriter() as writer:
        writer.write_frame(tmp_path / "writer.parquet", frame)
    assert (tmp_path / "writer.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()


def test_contract_schema_reads_back_with_the_contract_dtypes(tmp_path: Path) -> None:
    schema = contract_schema(Table.PRODUCTS)
    assert schema.names == CONTRACT[Table.PRODUCTS].column_names
    with TableWriter() as writer:
        writer.write(tmp_path / "products.parquet", schema.empty_table())
    read = pd.read_parquet(tmp_path / "products.parquet")
    assert {name: read[name].dtype for name in read} == {
        c.name: dtype_of(c.kind) for c in CONTRACT[Table.PRODUCTS].columns
    }


def test_conform_to_contract_keeps_contract_columns_in_order_with_contract_dtypes() -> None:
    frame = pd.DataFrame({"note": ["x"], Col.LIST_PRICE: [3], Col.PRODUCT_ID: ["P1"]})
    conformed = conform_to_contract(frame, Table.PRODUCTS)
    assert list(conformed.columns) == [Col.PRODUCT_ID, Col.LIST_PRICE]
    assert conformed[Col.PRODUCT_ID].dtype == dtype_of("id")
    assert conformed[Col.LIST_PRICE].dtype == dtype_of("money")
    assert conformed[Col.LIST_PRICE].tolist() == [3.0]


def test_a_closed_file_is_finished_but_still_renamed_with_the_rest(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="disk full"), TableWriter() as writer:
        writer.write(tmp_path / "a.parquet", _rows(1, 2))
        writer.close(tmp_path / "a.parquet")
        assert pq.ParquetFile(tmp_path / "a.parquet.partial").metadata.num_rows == 2  # complete
        raise RuntimeError("disk full")
    assert _files(tmp_path) == []
    with TableWriter() as writer:
        writer.write(tmp_path / "a.parquet", _rows(1, 2))
        writer.close(tmp_path / "a.parquet")
        writer.close(tmp_path / "never-written.parquet")  # nothing to finish
    assert _files(tmp_path) == ["a.parquet"]
