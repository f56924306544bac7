"""Import UCI Online Retail / Online Retail II invoice lines into the siyu contract tables.

The data are a UK gift wholesaler's invoice lines (2009-2011). They have no distributors,
so each customer's country stands in for the community (distributor) it buys through.
``read_online_retail`` reads a file (the edge), ``to_contract`` applies the cleaning rules
and builds orders, products, consumers and distributors (pure), ``write_contract`` writes
them as ``<table>.parquet`` through ``sources.table_writer``. Every rule is counted in
``OnlineRetailImport.steps``, in the order applied; docs/online_retail.md says why each rule
exists and what it did to the 2009-2010 file.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
from openpyxl.utils.exceptions import InvalidFileException

from features.columns import Col, OrderStatus, Table
from features.contract import UNKNOWN_CATEGORY
from features.errors import ContractError
from sources.table_writer import TableWriter, conform_to_contract

logger = logging.getLogger(__name__)


class Raw:
    """Column names of the UCI files, in the Online Retail II spelling (the source's words)."""

    INVOICE = "Invoice"
    STOCK_CODE = "StockCode"
    DESCRIPTION = "Description"
    QUANTITY = "Quantity"
    INVOICE_DATE = "InvoiceDate"
    PRICE = "Price"
    CUSTOMER_ID = "Customer ID"
    COUNTRY = "Country"

    ALL: tuple[str, ...] = (
        INVOICE,
        STOCK_CODE,
        DESCRIPTION,
        QUANTITY,
        INVOICE_DATE,
        PRICE,
        CUSTOMER_ID,
        COUNTRY,
    )


# UCI "Online Retail" (2010-2011) spells three columns differently.
SISTER_SPELLINGS: dict[str, str] = {
    "InvoiceNo": Raw.INVOICE,
    "UnitPrice": Raw.PRICE,
    "CustomerID": Raw.CUSTOMER_ID,
}

CANCELLATION_PREFIX = "C"
BAD_DEBT_PREFIX = "A"

# Stock codes that are services, fees or bookkeeping rather than goods (matched on the
# upper-cased code): postage and carriage, manual entries, discounts, samples, bank and
# marketplace fees, charity commission, gift vouchers, tests, stock adjustments, bad debt.
NON_PRODUCT_CODE = re.compile(
    r"POST|DOT|M|C\d|D|S|B|PADS|CRUK|BANK CHARGES|AMAZONFEE|GIFT"
    r"|GIFT_\d+_\d+|TEST\d*|ADJUST\d*"
)

MIN_CATEGORY_PRODUCTS = 10
OTHER_CATEGORY = "other"

# Words skipped when looking for a description's head noun (its last remaining word):
# they qualify a product ("... HOLDER PINK", "... CANDLE LARGE") rather than name it.
CATEGORY_MODIFIER_GROUPS: dict[str, str] = {
    "colours": "PINK RED BLUE GREEN BLACK WHITE IVORY CREAM GOLD SILVER YELLOW ORANGE PURPLE BROWN"
    " GREY GRAY NATURAL CLEAR TURQUOISE LILAC LAVENDER AQUA BEIGE CHOCOLATE CHOC COPPER ANTIQUE"
    " PASTEL MULTI MULTICOLOUR COLOUR COLOURED COL",
    "sizes": "LARGE SMALL MEDIUM MINI JUMBO BIG GIANT TALL LGE SML MED",
    "patterns and themes": "DESIGN ASSORTED ASSTD RETROSPOT SPOT SPOTTY DOT POLKADOT STRIPE FLORAL"
    " PAISLEY GINGHAM VINTAGE RETRO CHRISTMAS EASTER HEART FLOWER ROSE GIRL BOY GARDEN COTTAGE"
    " DOLLY SPACEBOY FONT",
    "materials and make": "HANGING FLOCK CRYSTAL METAL ZINC WOODEN ARTIFICIAL ART",
    "packs and units": "SET PACK PIECE PC PCS CM MM KG ML",
    "function words": "OF AND WITH IN ON FOR THE TO NO",
}
CATEGORY_MODIFIERS: frozenset[str] = frozenset(
    word for words in CATEGORY_MODIFIER_GROUPS.values() for word in words.split()
)

_WORD = re.compile(r"[A-Z]+(?:['-][A-Z]+)*")
_UNCHANGED_PLURAL_ENDINGS = ("SS", "US", "IS", "AS")
_ES_PLURAL_ENDINGS = ("SSES", "XES", "CHES", "SHES", "ZES")


@dataclass(frozen=True)
class ImportStep:
    """One cleaning rule and how many input lines it removed (or changed, for a rewrite)."""

    rule: str
    rows: int
    action: Literal["removed", "changed"] = "removed"


@dataclass(frozen=True)
class OnlineRetailImport:
    """The contract tables built from one Online Retail file, and what each rule did."""

    tables: dict[str, pd.DataFrame]
    steps: list[ImportStep]


# ---------------------------------------------------------------------------- reading


def read_online_retail(path: Path) -> pd.DataFrame:
    """Read Online Retail (II) as .parquet, .csv or .xlsx (all sheets) into typed raw columns.

    Both spellings are accepted and returned as ``Raw.ALL``; a missing column, an
    unreadable file or unreadable values raise ``ContractError``.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError(path, "file not found", "pass the path of the Online Retail file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ContractError(
            path, f"unsupported file type '{path.suffix}'", "supply the data as .parquet, .csv or .xlsx"
        )
    try:
        frame = reader(path)
    except (OSError, ValueError, pa.ArrowException, zipfile.BadZipFile, InvalidFileException) as error:
        raise ContractError(
            path,
            f"not a readable {path.suffix.lstrip('.')} file ({error})",
            "export the file again, or supply it in another of .parquet, .csv, .xlsx",
        ) from None
    if frame.empty:
        raise ContractError(path, "the file has no data rows", "export the invoice lines again")
    logger.info("read %d invoice lines from %s", len(frame), path.name)
    return normalise(frame, path)


def _read_csv(path: Path) -> pd.DataFrame:
    options = {"dtype": str, "keep_default_na": False, "na_values": [""]}
    try:
        return pd.read_csv(path, encoding="utf-8-sig", **options)
    except UnicodeDecodeError:
        # The UCI CSV copies in circulation are Latin-1 (the pound sign in descriptions).
        logger.info("%s is not UTF-8; reading it as Latin-1", path.name)
        return pd.read_csv(path, encoding="latin-1", **options)


def _read_xlsx(path: Path) -> pd.DataFrame:
    text_columns = {Raw.INVOICE: str, "InvoiceNo": str, Raw.STOCK_CODE: str}
    sheets = pd.read_excel(path, sheet_name=None, dtype=text_columns, engine="openpyxl")
    frames = [_canonical_names(sheet) for sheet in sheets.values() if not sheet.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".parquet": pd.read_parquet,
    ".csv": _read_csv,
    ".xlsx": _read_xlsx,
}


def normalise(raw: pd.DataFrame, source: Path | str = "<data frame>") -> pd.DataFrame:
    """The ``Raw.ALL`` columns of ``raw`` with one spelling and one type each.

    Codes and text are stripped strings, Quantity int64, Price float64, InvoiceDate
    naive datetime64[ns] (ISO or the sister CSV's "12/1/2010 8:26"), Customer ID Int64.
    """
    frame = _canonical_names(raw)
    twice = frame.columns[frame.columns.duplicated()].tolist()
    if twice:
        raise ContractError(
            source, "the column is there in both spellings", "keep one of them", column=twice[0]
        )
    missing = [name for name in Raw.ALL if name not in frame.columns]
    if missing:
        raise ContractError(
            source,
            f"missing column(s) {missing}; an Online Retail file has {list(Raw.ALL)} "
            f"(or the spellings {list(SISTER_SPELLINGS)})",
            "export all columns of the invoice lines, or rename the column",
            column=missing[0],
        )
    return pd.DataFrame(
        {
            Raw.INVOICE: _required(_text(frame[Raw.INVOICE]), source, Raw.INVOICE),
            Raw.STOCK_CODE: _required(_text(frame[Raw.STOCK_CODE]), source, Raw.STOCK_CODE),
            Raw.DESCRIPTION: _text(frame[Raw.DESCRIPTION]),
            Raw.QUANTITY: _whole_numbers(frame[Raw.QUANTITY], source, Raw.QUANTITY).astype("int64"),
            Raw.INVOICE_DATE: _timestamps(frame[Raw.INVOICE_DATE], source),
            Raw.PRICE: _required(_numbers(frame[Raw.PRICE], source, Raw.PRICE), source, Raw.PRICE),
            Raw.CUSTOMER_ID: _whole_numbers(frame[Raw.CUSTOMER_ID], source, Raw.CUSTOMER_ID),
            Raw.COUNTRY: _text(frame[Raw.COUNTRY]),
        }
    ).reset_index(drop=True)


def _canonical_names(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=lambda name: str(name).strip()).rename(columns=SISTER_SPELLINGS)


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().replace("", pd.NA)


def _numbers(values: pd.Series, source: Path | str, column: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    _fail_on_unreadable(values, numbers, source, column, "a number")
    return numbers


def _whole_numbers(values: pd.Series, source: Path | str, column: str) -> pd.Series:
    numbers = _numbers(values, source, column)
    whole = numbers.where(numbers.round() == numbers)
    _fail_on_unreadable(values, whole, source, column, "a whole number")
    return _required(whole, source, column) if column == Raw.QUANTITY else whole.astype("Int64")


def _timestamps(values: pd.Series, source: Path | str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
    for fmt in ("%m/%d/%Y %H:%M", "mixed"):
        retry = text.notna() & parsed.isna()
        if retry.any():
            parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format=fmt)
    parsed = parsed.astype("datetime64[ns]")
    _fail_on_unreadable(text, parsed, source, Raw.INVOICE_DATE, "a date/time")
    return _required(parsed, source, Raw.INVOICE_DATE)


def _fail_on_unreadable(
    values: pd.Series, typed: pd.Series, source: Path | str, column: str, kind: str
) -> None:
    failed = values.notna() & typed.isna()
    if failed.any():
        example = values[failed].iloc[0]
        raise ContractError(
            source,
            f"{int(failed.sum()):,} value(s) cannot be read as {kind} (e.g. {example!r})",
            "check that this is the Online Retail export and that the column holds what it names",
            column=column,
        )


def _required(values: pd.Series, source: Path | str, column: str) -> pd.Series:
    if values.isna().any():
        raise ContractError(
            source,
            f"{int(values.isna().sum()):,} line(s) have no value",
            "every invoice line needs an invoice, stock code, quantity, date and price",
            column=column,
        )
    return values


# ---------------------------------------------------------------------------- rules


def is_duplicate_line(lines: pd.DataFrame) -> pd.Series:
    """Every repeat of a line equal to an earlier one in all columns (the first is kept)."""
    return lines.duplicated(keep="first")


def is_bad_debt_adjustment(lines: pd.DataFrame) -> pd.Series:
    return lines[Raw.INVOICE].str.upper().str.startswith(BAD_DEBT_PREFIX)


def is_non_product(lines: pd.DataFrame) -> pd.Series:
    return lines[Raw.STOCK_CODE].str.upper().str.fullmatch(NON_PRODUCT_CODE)


def has_no_customer(lines: pd.DataFrame) -> pd.Series:
    return lines[Raw.CUSTOMER_ID].isna()


def is_cancellation(lines: pd.DataFrame) -> pd.Series:
    return lines[Raw.INVOICE].str.upper().str.startswith(CANCELLATION_PREFIX)


def has_wrong_sign_quantity(lines: pd.DataFrame) -> pd.Series:
    """Quantity <= 0 on an ordinary invoice (stock write-offs), or >= 0 on a cancellation."""
    cancelled = is_cancellation(lines)
    return (~cancelled & (lines[Raw.QUANTITY] <= 0)) | (cancelled & (lines[Raw.QUANTITY] >= 0))


def has_no_positive_price(lines: pd.DataFrame) -> pd.Series:
    return lines[Raw.PRICE] <= 0


EXCLUSIONS: tuple[tuple[str, Callable[[pd.DataFrame], pd.Series]], ...] = (
    ("exact duplicate lines removed", is_duplicate_line),
    ("bad-debt adjustments (invoice prefix A) excluded", is_bad_debt_adjustment),
    ("non-product stock codes (postage, fees, manual, discounts, vouchers, tests) excluded", is_non_product),
    ("lines without a customer dropped", has_no_customer),
    (
        "quantity of the wrong sign excluded (<= 0 on an ordinary invoice: stock write-offs; "
        ">= 0 on a cancellation)",
        has_wrong_sign_quantity,
    ),
    ("lines with price <= 0 excluded", has_no_positive_price),
)
RETURNS_RULE = "cancellations (invoice prefix C) became returned lines"


def apply_rules(lines: pd.DataFrame) -> tuple[pd.DataFrame, list[ImportStep]]:
    """The lines that survive ``EXCLUSIONS``, applied in order, and what each removed."""
    steps: list[ImportStep] = []
    for rule, excluded in EXCLUSIONS:
        mask = excluded(lines)
        steps.append(ImportStep(rule, int(mask.sum())))
        lines = lines.loc[~mask]
    steps.append(ImportStep(RETURNS_RULE, int(is_cancellation(lines).sum()), "changed"))
    return lines, steps


# ---------------------------------------------------------------------------- tables


def to_contract(
    raw: pd.DataFrame, *, min_category_products: int = MIN_CATEGORY_PRODUCTS
) -> OnlineRetailImport:
    """Clean Online Retail lines and build the contract tables (no I/O).

    ``raw`` has the UCI columns in either spelling; ``min_category_products`` is how many
    products must share a head noun for it to be a category of its own.
    """
    lines, steps = apply_rules(normalise(raw))
    home = home_countries(lines)
    orders = build_orders(lines, home)
    tables = {
        Table.ORDERS: orders,
        Table.PRODUCTS: build_products(lines, orders, min_category_products),
        Table.CONSUMERS: build_consumers(orders),
        Table.DISTRIBUTORS: build_distributors(orders),
    }
    conformed = {name: conform_to_contract(frame, name) for name, frame in tables.items()}
    return OnlineRetailImport(conformed, steps)


def product_ids(lines: pd.DataFrame) -> pd.Series:
    """Stock codes upper-cased: "85123a" (web-shop lines) is the same product as "85123A"."""
    return lines[Raw.STOCK_CODE].str.upper()


def consumer_ids(lines: pd.DataFrame) -> pd.Series:
    """Customer numbers as integer strings ("12346", never "12346.0")."""
    return lines[Raw.CUSTOMER_ID].astype("Int64").astype("string")


def home_countries(lines: pd.DataFrame) -> pd.Series:
    """Each customer's home country: the one of most invoices; ties go to the earliest, then A-Z."""
    per_country = (
        lines.assign(**{Col.CONSUMER_ID: consumer_ids(lines)})
        .groupby([Col.CONSUMER_ID, Raw.COUNTRY], dropna=False)
        .agg(invoices=(Raw.INVOICE, "nunique"), first=(Raw.INVOICE_DATE, "min"))
        .reset_index()
        .sort_values(["invoices", "first", Raw.COUNTRY], ascending=[False, True, True], kind="mergesort")
    )
    return per_country.drop_duplicates(Col.CONSUMER_ID).set_index(Col.CONSUMER_ID)[Raw.COUNTRY]


def build_orders(lines: pd.DataFrame, home: pd.Series) -> pd.DataFrame:
    """One row per kept line; cancellations as returned lines with positive quantities."""
    consumer = consumer_ids(lines)
    returned = is_cancellation(lines)
    return pd.DataFrame(
        {
            Col.ORDER_ID: lines[Raw.INVOICE],
            Col.CONSUMER_ID: consumer,
            Col.DISTRIBUTOR_ID: consumer.map(home),
            Col.PRODUCT_ID: product_ids(lines),
            Col.QUANTITY: lines[Raw.QUANTITY].abs(),
            Col.UNIT_PRICE: lines[Raw.PRICE],
            Col.ORDERED_AT: lines[Raw.INVOICE_DATE],
            Col.STATUS: returned.map({True: OrderStatus.RETURNED, False: OrderStatus.PAID}),
        }
    )


def build_products(lines: pd.DataFrame, orders: pd.DataFrame, min_category_products: int) -> pd.DataFrame:
    """Every product ordered: family as supplier, head-noun category, median sale price."""
    paid = orders[orders[Col.STATUS] == OrderStatus.PAID]
    price = paid.groupby(Col.PRODUCT_ID)[Col.UNIT_PRICE].median()
    fallback = orders.groupby(Col.PRODUCT_ID)[Col.UNIT_PRICE].median()  # products only returned
    ids = pd.Index(sorted(orders[Col.PRODUCT_ID].unique()), name=Col.PRODUCT_ID)
    descriptions = main_descriptions(lines).reindex(ids)
    return pd.DataFrame(
        {
            Col.PRODUCT_ID: ids,
            Col.SUPPLIER_ID: supplier_ids(ids.to_series()).to_numpy(),
            Col.CATEGORY: categorise(descriptions, min_category_products).to_numpy(),
            Col.LIST_PRICE: price.reindex(ids).fillna(fallback.reindex(ids)).to_numpy(),
        }
    )


def supplier_ids(product_id: pd.Series) -> pd.Series:
    """Product family as supplier proxy: the first three digits of the code, else its letters."""
    family = product_id.str.extract(r"^(\d{3}|[A-Z]+)", expand=False)
    return family.fillna(product_id)


def main_descriptions(lines: pd.DataFrame) -> pd.Series:
    """Per product id, its most frequent description (upper-cased, spaces collapsed; ties A-Z)."""
    text = lines[Raw.DESCRIPTION].str.upper().str.replace(r"\s+", " ", regex=True)
    counts = (
        pd.DataFrame({Col.PRODUCT_ID: product_ids(lines), Raw.DESCRIPTION: text})
        .dropna()
        .value_counts()
        .rename("lines")
        .reset_index()
        .sort_values(["lines", Raw.DESCRIPTION], ascending=[False, True], kind="mergesort")
    )
    return counts.drop_duplicates(Col.PRODUCT_ID).set_index(Col.PRODUCT_ID)[Raw.DESCRIPTION]


def categorise(descriptions: pd.Series, min_products: int) -> pd.Series:
    """Head noun (lower case) where at least ``min_products`` products share it, else "other";
    products without a description are "unknown"."""
    heads = descriptions.map(head_noun, na_action="ignore")
    sizes = heads.value_counts()
    common = sizes.index[sizes >= min_products]
    category = heads.where(heads.isin(common), OTHER_CATEGORY).str.lower()
    return category.mask(descriptions.isna(), UNKNOWN_CATEGORY).astype("string")


def head_noun(description: str) -> str | None:
    """The last word of a description that is not a modifier (else its last word), singular.

    "WHITE HANGING HEART T-LIGHT HOLDER" -> "HOLDER"; "NATURAL BARK CANDLE SMALL" -> "CANDLE";
    "CHRISTMAS GINGHAM HEART" -> "HEART"; a description without words -> None.
    """
    words = [singular(word.removesuffix("'S")) for word in _WORD.findall(description.upper())]
    words = [word for word in words if len(word) > 1]
    nouns = [word for word in words if word not in CATEGORY_MODIFIERS] or words
    return nouns[-1] if nouns else None


def singular(word: str) -> str:
    """A plain English singular: BOXES -> BOX, DOILIES -> DOILY, CANDLES -> CANDLE, GLASS stays."""
    if len(word) <= 3 or word.endswith(_UNCHANGED_PLURAL_ENDINGS):
        return word
    if word.endswith("IES"):
        return word[:-3] + "Y"
    if word.endswith(_ES_PLURAL_ENDINGS):
        return word[:-2]
    return word.removesuffix("S")


def build_consumers(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: registered at their first invoice, home country as distributor."""
    per_consumer = orders.groupby(Col.CONSUMER_ID).agg(
        **{
            Col.REGISTERED_AT: (Col.ORDERED_AT, "min"),
            Col.DISTRIBUTOR_ID: (Col.DISTRIBUTOR_ID, "first"),
        }
    )
    return per_consumer.reset_index()


def build_distributors(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per home country: joined at the first invoice of a customer at home there."""
    first = orders.groupby(Col.DISTRIBUTOR_ID)[Col.ORDERED_AT].min().rename(Col.JOINED_AT)
    return first.reset_index()


# ---------------------------------------------------------------------------- writing


def write_contract(result: OnlineRetailImport, out_dir: Path) -> list[Path]:
    """Write each table as ``out_dir/<table>.parquet``; the files appear together, whole, or not at all."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{table}.parquet" for table in result.tables]
    with TableWriter() as writer:
        for path, frame in zip(written, result.tables.values(), strict=True):
            writer.write_frame(path, frame)
    for path, frame in zip(written, result.tables.values(), strict=True):
        logger.info("wrote %s: %d rows", path, len(frame))
    return written
