"""The sentences of the lists' reasons: each row has a ``ReasonCode`` (stable, English, for
machines) and a sentence in the run's locale (``features.messages``, ``text.reason.<code>``)
filled with the row's numbers, e.g. ``likely_buyers`` → "你的 12 位顾客可能会买"."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.messages import Messages

_LARGEST = 2**62
Coded = tuple[np.ndarray, Sequence[object] | np.ndarray]  # (integer code per row, value of each code)


def reason_sentences(keys: np.ndarray, messages: Messages, **params: np.ndarray) -> np.ndarray:
    """The sentence of each row's key (``text.reason.<key>`` of ``messages``; a key is a reason
    code or a variant of one), its placeholders filled from the row's ``params``. Each distinct
    (key, params) is formatted once: lists repeat a few sentences over millions of rows."""
    return coded_sentences(
        pd.factorize(keys), messages, **{name: pd.factorize(column) for name, column in params.items()}
    )


def coded_sentences(keys: Coded, messages: Messages, **params: Coded) -> np.ndarray:
    """``reason_sentences`` of columns already coded: each one's (codes, values), the row's
    value ``values[code]`` (e.g. ``pd.factorize``'s pair). Lets a caller that holds codes (a
    product's category code, a reason's position) skip factorizing long object columns."""
    key_codes, key_values = keys
    combination = np.asarray(key_codes, dtype=np.int64)
    bound = len(key_values)
    for codes, values in params.values():
        if bound * (len(values) + 1) >= _LARGEST:  # renumber the combinations so far: no overflow
            combination = pd.factorize(combination)[0].astype(np.int64)
            bound = int(combination.max(initial=0)) + 1
        combination = combination * (len(values) + 1) + np.asarray(codes, dtype=np.int64) + 1
        bound *= len(values) + 1
    inverse, distinct = pd.factorize(combination)  # codes in order of first appearance
    if not len(distinct):
        return np.empty(0, dtype=object)
    seen_before = np.maximum.accumulate(np.concatenate([[-1], inverse[:-1]]))
    first = np.flatnonzero(inverse > seen_before)  # the first row of each distinct combination
    first_keys = np.asarray(key_codes)[first]
    texts = np.empty(len(first), dtype=object)
    coded = params.items()
    for position in np.unique(first_keys[first_keys >= 0]):  # (a missing key: no sentence)
        chosen = first[first_keys == position]
        columns = {name: np.asarray(values)[np.asarray(codes)[chosen]] for name, (codes, values) in coded}
        texts[first_keys == position] = messages.texts(f"reason.{key_values[position]}", **columns)
    return texts[inverse]
