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

import pandas as pd

from features.catalog import ShareKitCol
from features.columns import Col
from features.messages import Messages
from features.vocabulary import DistributorListCol, RecCol

UNKNOWN_CATEGORY = "unknown"  # vocabulary: a value, not a column
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
    kit = distributor_lists.merge(
        buyers, on=[DistributorListCol.DISTRIBUTOR_ID, DistributorListCol.PRODUCT_ID], how="left"
    ).merge(
        categories[[Col.PRODUCT_ID, Col.CATEGORY]].drop_duplicates(Col.PRODUCT_ID),
        on=Col.PRODUCT_ID,
        how="left",
    )
    kit[ShareKitCol.LIKELY_BUYERS] = kit[ShareKitCol.LIKELY_BUYERS].fillna(0).astype("int64")
    kit[ShareKitCol.CATEGORY] = kit[ShareKitCol.CATEGORY].fillna(UNKNOWN_CATEGORY).astype(str)
    kit[ShareKitCol.SHARE_TEXT] = share_texts(kit, messages)
    kit = kit.sort_values([ShareKitCol.DISTRIBUTOR_ID, ShareKitCol.RANK], kind="mergesort")
    return kit[list(SHARE_KIT_COLUMNS)].reset_index(drop=True)


def share_texts(kit: pd.DataFrame, messages: Messages) -> list[str]:
    """The sentence of every row of ``kit`` (``product_id, category, likely_buyers, reason``,
    optionally ``reason_code``) in the run's locale."""
    codes = kit[RecCol.REASON_CODE] if RecCol.REASON_CODE in kit.columns else pd.Series(None, index=kit.index)
    with_buyers = _template(messages, "share_kit.sentence")
    without = _template(messages, "share_kit.sentence_no_buyers")
    pitches: dict[tuple[object, str], str] = {}
    texts = []
    for product, category, n, reason, code in zip(
        kit[ShareKitCol.PRODUCT_ID],
        kit[ShareKitCol.CATEGORY],
        kit[ShareKitCol.LIKELY_BUYERS],
        kit[ShareKitCol.REASON],
        codes,
        strict=True,
    ):
        key = (code, category)
        if key not in pitches:
            pitches[key] = _pitch(messages, code, category)
        pitch = pitches[key] or str(reason)
        template = with_buyers if n > 0 else without
        texts.append(template.format(product=product, category=category, pitch=pitch, n=n))
    return texts


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
