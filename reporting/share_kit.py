"""The distributor share kit: per distributor, the week's products with a sentence ready to paste
into the group (product, category, a group-facing reason, how many members are likely to buy).

Pure functions over frames. Products have no name column in the data contract, so a product
is shown by its id and category. The list's ``reason`` speaks to the distributor ("12 of your
customers are likely to buy"); the sentence speaks to the group, so its reason (the *pitch*)
comes from the row's ``reason_code`` (``text.share_kit.pitch.<code>``), the list's reason being
used as it is for a code without a pitch. *Likely buyers*: members of the distributor's
community (home distributor) whose own recommendation list holds the product.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from features.catalog import ShareKitCol
from features.columns import Col
from features.messages import Messages
from features.progress import progress
from features.vocabulary import DistributorListCol, RecCol

UNKNOWN_CATEGORY = "unknown"  # vocabulary: a value, not a column
_TEXT_BLOCK = 500_000  # rows of sentences per progress count
SHARE_KIT_COLUMNS: tuple[str, ...] = (
    ShareKitCol.DISTRIBUTOR_ID,
    ShareKitCol.RANK,
    ShareKitCol.PRODUCT_ID,
    ShareKitCol.CATEGORY,
    ShareKitCol.LIKELY_BUYERS,
    ShareKitCol.REASON,
    ShareKitCol.SHARE_TEXT,
)


def home_of(homes: pd.DataFrame) -> pd.Series:
    """Each consumer's home distributor (``consumer_id`` -> ``distributor_id``) from ``homes``."""
    return homes.drop_duplicates(Col.CONSUMER_ID).set_index(Col.CONSUMER_ID)[Col.DISTRIBUTOR_ID]


def share_kit(
    distributor_lists: pd.DataFrame,
    buyers: pd.DataFrame,
    categories: pd.DataFrame,
    messages: Messages,
) -> pd.DataFrame:
    """The share kit (``SHARE_KIT_COLUMNS``), one row per list row, by distributor and rank.

    ``distributor_lists``: the published distributor lists (``reason_code`` optional);
    ``buyers``: ``likely_buyers`` output; ``categories``: ``product_id, category``.
    """
    pair = [DistributorListCol.DISTRIBUTOR_ID, DistributorListCol.PRODUCT_ID]
    named = categories[[Col.PRODUCT_ID, Col.CATEGORY]].drop_duplicates(Col.PRODUCT_ID)
    kit = distributor_lists.assign(
        **{
            ShareKitCol.LIKELY_BUYERS: _looked_up(distributor_lists, buyers, pair, ShareKitCol.LIKELY_BUYERS),
            Col.CATEGORY: _looked_up(distributor_lists, named, [Col.PRODUCT_ID], Col.CATEGORY),
        }
    )
    kit[ShareKitCol.LIKELY_BUYERS] = kit[ShareKitCol.LIKELY_BUYERS].fillna(0).astype("int64")
    kit[ShareKitCol.CATEGORY] = kit[ShareKitCol.CATEGORY].fillna(UNKNOWN_CATEGORY).astype(str)
    kit[ShareKitCol.SHARE_TEXT] = share_texts(kit, messages)
    kit = kit.sort_values([ShareKitCol.DISTRIBUTOR_ID, ShareKitCol.RANK], kind="mergesort")
    return kit[list(SHARE_KIT_COLUMNS)].reset_index(drop=True)


def _looked_up(left: pd.DataFrame, right: pd.DataFrame, keys: list[str], column: str) -> pd.Series:
    """``right[column]`` of each row of ``left`` by ``keys`` (missing where ``right`` has none):
    the column a left merge would add, when ``right`` is unique on ``keys``. The keys are matched
    as integer codes (one factorization of both sides' values), not as millions of object tuples."""
    both = pd.concat([left[keys], right[keys]], ignore_index=True)
    codes = np.zeros(len(both), dtype=np.int64)
    for key in keys:
        labels, uniques = pd.factorize(both[key], use_na_sentinel=False)
        codes = codes * (len(uniques) + 1) + labels
    left_codes, right_codes = codes[: len(left)], codes[len(left) :]
    index = pd.Index(right_codes)
    if not index.is_unique:  # a merge would repeat left rows: keep the merge's rows
        raise ValueError(f"{column}: several rows per {keys} in the right frame")
    found = index.get_indexer(left_codes)
    if len(right) == 0:
        return pd.Series(np.nan, index=left.index)
    values = right[column].to_numpy()
    taken = pd.Series(values.take(np.maximum(found, 0)), index=left.index)
    return taken.where(found >= 0)


def share_texts(kit: pd.DataFrame, messages: Messages) -> list[str]:
    """The sentence of every row of ``kit`` (``product_id, category, likely_buyers, reason``,
    optionally ``reason_code``) in the run's locale.

    What ``str.format`` of the row's template gives, built a column at a time
    (``_render``): one row per list row is millions at the platform's shape, with a progress
    count per block of rows."""
    codes = kit[RecCol.REASON_CODE] if RecCol.REASON_CODE in kit.columns else pd.Series(None, index=kit.index)
    with_buyers = _template(messages, "share_kit.sentence")
    without = _template(messages, "share_kit.sentence_no_buyers")
    categories = kit[ShareKitCol.CATEGORY].tolist()
    pitches = _pitches(messages, codes.tolist(), categories)
    reasons = kit[ShareKitCol.REASON].tolist()
    pitch = [p or str(reason) for p, reason in zip(pitches, reasons, strict=True)]
    buyers = kit[ShareKitCol.LIKELY_BUYERS].tolist()
    # the templates' placeholders (keywords, as in ``_template``)
    fields = dict(product=kit[ShareKitCol.PRODUCT_ID].tolist(), category=categories, pitch=pitch, n=buyers)
    columns = {name: np.asarray(values, dtype=object) for name, values in fields.items()}
    has_buyers = np.asarray([n > 0 for n in buyers], dtype=bool)
    texts = np.empty(len(kit), dtype=object)
    with progress("share kit sentences", total=len(kit), unit="rows") as bar:
        for start in range(0, len(kit), _TEXT_BLOCK):
            block = np.arange(start, min(start + _TEXT_BLOCK, len(kit)))
            for template, rows in (
                (with_buyers, block[has_buyers[block]]),
                (without, block[~has_buyers[block]]),
            ):
                texts[rows] = _render(template, {name: values[rows] for name, values in columns.items()})
            bar.advance(len(block))
    return texts.tolist()


def _pitches(messages: Messages, codes: list[object], categories: list[str]) -> list[str]:
    """The group-facing reason of every (code, category), looked up once per distinct pair."""
    found: dict[tuple[object, str], str] = {}
    out = []
    for key in zip(codes, categories, strict=True):
        pitch = found.get(key)
        if pitch is None:
            pitch = found[key] = _pitch(messages, *key)
        out.append(pitch)
    return out


def _render(template: str, fields: dict[str, np.ndarray]) -> np.ndarray:
    """``template.format(**row)`` for every row of ``fields`` (name -> one value per row), as an
    object array: its literal text and each field's ``format(value, "")`` joined column-wise.
    A template with a conversion, a format spec or an indexed field is formatted row by row."""
    rows = len(next(iter(fields.values())))
    parsed = list(string.Formatter().parse(template))
    if any(
        conversion or spec or (name is not None and name not in fields)
        for _, name, spec, conversion in parsed
    ):
        return np.asarray(
            [
                template.format(**dict(zip(fields, row, strict=True)))
                for row in zip(*fields.values(), strict=True)
            ],
            dtype=object,
        )
    out = np.full(rows, "", dtype=object)
    for literal, name, _, _ in parsed:
        if literal:
            out += literal
        if name is not None:
            out += np.asarray(list(map(format, fields[name])), dtype=object)
    return out


def _pitch(messages: Messages, code: object, category: str) -> str:
    """The group-facing reason of ``code`` ('' when the catalog has none for it)."""
    key = f"share_kit.pitch.{code}"
    if code is None or pd.isna(code) or not messages.has(f"text.{key}"):
        return ""
    return messages.text(key, category=category)


def _template(messages: Messages, key: str) -> str:
    """The raw sentence ``key``, checked once to fill with the share kit's placeholders only."""
    messages.text(key, product="", category="", pitch="", n=0)  # a bad placeholder fails here, named
    return messages.entries[f"text.{key}"]
