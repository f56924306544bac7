"""The sentences of the lists' reasons: each row has a ``ReasonCode`` (stable, English, for
machines) and a sentence in the run's locale (``features.messages``, ``text.reason.<code>``)
filled with the row's numbers, e.g. ``likely_buyers`` → "你的 12 位顾客可能会买"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.messages import Messages


def reason_sentences(keys: np.ndarray, messages: Messages, **params: np.ndarray) -> np.ndarray:
    """The sentence of each row's key (``text.reason.<key>`` of ``messages``; a key is a reason
    code or a variant of one), its placeholders filled from the row's ``params``."""
    sentences = np.empty(len(keys), dtype=object)
    for key in pd.unique(keys):
        rows = keys == key
        sentences[rows] = messages.texts(
            f"reason.{key}", **{name: values[rows] for name, values in params.items()}
        )
    return sentences
