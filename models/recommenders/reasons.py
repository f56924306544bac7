"""The sentences of the lists' reasons: each row has a ``ReasonCode`` (stable, English, for
machines) and a sentence in the run's locale (``features.messages``, ``text.reason.<code>``)
filled with the row's numbers, e.g. ``likely_buyers`` → "你的 12 位顾客可能会买"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.messages import Messages


def reason_sentences(keys: np.ndarray, messages: Messages, **params: np.ndarray) -> np.ndarray:
    """The sentence of each row's key (``text.reason.<key>`` of ``messages``; a key is a reason
    code or a variant of one), its placeholders filled from the row's ``params``. Each distinct
    (key, params) is formatted once: lists repeat a few sentences over millions of rows."""
    key_index, key_values = pd.factorize(keys)
    factorized = {name: pd.factorize(column) for name, column in params.items()}
    sentences = np.empty(len(keys), dtype=object)
    for position, key in enumerate(key_values):
        rows = np.flatnonzero(key_index == position)
        combination = np.zeros(len(rows), dtype=np.int64)
        for codes, uniques in factorized.values():
            combination = combination * (len(uniques) + 1) + codes[rows] + 1
        _, first, inverse = np.unique(combination, return_index=True, return_inverse=True)
        distinct = messages.texts(
            f"reason.{key}",
            **{name: uniques[codes[rows[first]]] for name, (codes, uniques) in factorized.items()},
        )
        sentences[rows] = np.asarray(distinct, dtype=object)[inverse]
    return sentences
