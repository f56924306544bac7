"""The churn / value models' choice kept between nights: what is stored, and when a night chooses again."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.cadence import KeptKey, redo_reason
from models.churn import Choice, ChurnConfig, Fitted, FittedModels
from models.churn_choice import (
    RECHOOSE,
    REFIT,
    StoredChoice,
    config_hash,
    read_choice,
    read_models,
    write_choice,
    write_models,
)
from models.clv import CLVConfig

MADE = date(2025, 12, 1)
KEY = KeptKey("abc", MADE, "100:ff")
METRICS = pd.DataFrame(
    [
        ("churn", "logistic", "brier", 0.18),
        ("churn", "logistic", "auc", float("nan")),
        ("value", "bgnbd", "mae", 3.5),
    ],
    columns=["target", "candidate", "metric", "value"],
)
CHOICE = Choice({"churn": "logistic", "purchases": "bgnbd", "value": "bgnbd"}, METRICS)


def test_a_stored_choice_reads_back_as_written(tmp_path: Path) -> None:
    path = write_choice(tmp_path / "churn_choice.json", KEY, CHOICE)
    stored = read_choice(path)
    assert stored is not None and stored.key == KEY and stored.choice.chosen == CHOICE.chosen
    pd.testing.assert_frame_equal(stored.choice.validation, METRICS)  # a missing metric stays missing
    assert list(tmp_path.iterdir()) == [path]  # no partial file left beside it


@pytest.mark.parametrize(
    "text",
    ["", "{not json", json.dumps({"format": 99}), json.dumps({"format": 1, "as_of": "2025-12-01"}), "[]"],
)
def test_an_unreadable_store_is_no_choice_and_says_so(tmp_path: Path, text: str, caplog) -> None:
    path = tmp_path / "churn_choice.json"
    path.write_text(text)
    with caplog.at_level("WARNING", logger="models.churn_choice"):
        assert read_choice(path) is None
    assert f"{path}: the stored churn model choice cannot be read" in caplog.text
    assert read_choice(tmp_path / "absent.json") is None


def test_the_config_hash_follows_what_the_choice_depends_on_not_the_cadence() -> None:
    base = config_hash(CLVConfig(), ChurnConfig())
    assert config_hash(CLVConfig(), ChurnConfig(rechoose_every_days=1)) == base
    assert config_hash(CLVConfig(), ChurnConfig(refit_every_days=1)) == base
    assert config_hash(CLVConfig(), ChurnConfig(candidates=("logistic",))) != base
    assert config_hash(CLVConfig(horizon_days=60), ChurnConfig()) != base


def _reason(
    stored: StoredChoice | None, tonight: date, every: int = 7, digest: str = "abc", history: str = "100:ff"
):
    asked: list[date] = []

    def fingerprint_at(day: date) -> str:
        asked.append(day)
        return history

    key = None if stored is None else stored.key
    return redo_reason(RECHOOSE, every, key, digest, tonight, fingerprint_at), asked


def test_a_stored_choice_holds_for_the_days_of_the_cadence_on_the_same_history() -> None:
    stored = StoredChoice(KEY, CHOICE)
    assert _reason(stored, date(2025, 12, 2)) == (None, [MADE])
    assert _reason(stored, date(2025, 12, 7)) == (None, [MADE])


@pytest.mark.parametrize(
    ("tonight", "every", "digest", "history", "says"),
    [
        (date(2025, 12, 2), 1, "abc", "100:ff", "rechoose_every_days is 1"),
        (date(2025, 12, 2), 7, "other", "100:ff", "config changed"),
        (date(2025, 11, 30), 7, "abc", "100:ff", "after tonight's 2025-11-30"),
        (MADE, 7, "abc", "100:ff", "this same night"),
        (date(2025, 12, 8), 7, "abc", "100:ff", "7 days old"),
        (date(2025, 12, 2), 7, "abc", "101:fe", "not the one the stored choice was made on"),
    ],
)
def test_a_night_chooses_again_and_says_why(tonight, every, digest, history, says) -> None:
    reason, _ = _reason(StoredChoice(KEY, CHOICE), tonight, every, digest, history)
    assert reason is not None and says in reason
    assert _reason(None, tonight, every)[0] == ("no stored choice" if every > 1 else reason)


MODELS = FittedModels(
    {"churn": "logistic", "purchases": "gradient_boosting", "value": "bgnbd"},
    (
        Fitted("churn", "logistic", {"coef": np.array([[0.5, -1.0]]), "intercept": np.array([0.25])}),
        Fitted("forecast", "bgnbd", {"bgnbd.r": np.array([[0.2]]), "gamma_gamma.p": np.array([[6.0]])}),
        Fitted("forecast", "gradient_boosting", {}),  # a fit that failed: no arrays
    ),
)


def test_stored_models_read_back_as_written(tmp_path: Path) -> None:
    path = write_models(tmp_path / "churn_models.npz", KEY, MODELS)
    stored = read_models(path)
    assert stored is not None and stored.key == KEY and stored.models.chosen == MODELS.chosen
    for read, written in zip(stored.models.models, MODELS.models, strict=True):
        assert (read.kind, read.name, sorted(read.arrays)) == (
            written.kind,
            written.name,
            sorted(written.arrays),
        )
        for name, array in written.arrays.items():
            np.testing.assert_array_equal(read.arrays[name], array)
    assert list(tmp_path.iterdir()) == [path]  # no partial file left beside it
    with np.load(path, allow_pickle=False) as arrays:  # plain arrays: no pickle needed to read them
        assert "meta" in arrays.files


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 cut short"])
def test_unreadable_stored_models_are_none_and_say_so(tmp_path: Path, content: bytes, caplog) -> None:
    path = tmp_path / "churn_models.npz"
    path.write_bytes(content)
    with caplog.at_level("WARNING", logger="models.churn_choice"):
        assert read_models(path) is None
    assert f"{path}: the stored churn / value models cannot be read" in caplog.text
    assert read_models(tmp_path / "absent.npz") is None


def test_stored_models_of_another_format_are_fitted_again(tmp_path: Path, caplog) -> None:
    path = write_models(tmp_path / "churn_models.npz", KEY, MODELS)
    with np.load(path, allow_pickle=False) as stored:
        arrays = dict(stored)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "format": 99}))
    with path.open("wb") as out:
        np.savez(out, **arrays)
    with caplog.at_level("WARNING", logger="models.churn_choice"):
        assert read_models(path) is None
    assert "format 99, this version reads 1" in caplog.text


def test_stored_models_are_fitted_again_on_the_cadence_s_reasons() -> None:
    def reason(tonight: date, every: int = 7) -> str | None:
        return redo_reason(REFIT, every, KEY, "abc", tonight, lambda day: "100:ff")

    assert reason(date(2025, 12, 3)) is None
    assert (
        reason(date(2025, 12, 8))
        == "the stored models is 7 days old (segmentation.churn.refit_every_days: 7)"
    )
    assert (
        reason(date(2025, 12, 3), every=1) == "segmentation.churn.refit_every_days is 1: fitting every night"
    )
    assert reason(MADE) == "the stored models was fitted for this same night (2025-12-01): a rerun fits again"
