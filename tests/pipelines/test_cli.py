"""The command line: help everywhere, one clear message (no traceback) for user errors, end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli import run_cli

COMMANDS = [
    [],
    ["simulate"],
    ["validate"],
    ["quality"],
    ["segment"],
    ["recommend"],
    ["evaluate"],
    ["nightly"],
    ["serve"],
    ["import"],
    ["import", "online-retail"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "siyu")
def test_every_command_has_help(command: list[str], monkeypatch, capsys) -> None:
    assert run_cli(monkeypatch, *command, "--help") == 0
    assert "Usage: siyu" in capsys.readouterr().out


def test_user_errors_print_one_message_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    assert run_cli(monkeypatch, "validate", "--data", str(tmp_path / "missing")) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "data directory not found" in err and "Traceback" not in err

    bad = tmp_path / "bad.yaml"
    bad.write_text("validation:\n  max_quarantine_shar: 0.1\n")
    assert run_cli(monkeypatch, "nightly", "--config", str(bad)) == 2
    assert "validation.max_quarantine_shar: unknown key" in capsys.readouterr().err

    assert run_cli(monkeypatch, "validate", "--data", str(tmp_path), "--as-of", "31/12/2025") == 2
    assert "is not a date" in capsys.readouterr().err


def test_validate_fails_with_exit_1_over_the_quarantine_limit(
    tiny_dataset: Path, tmp_path, monkeypatch
) -> None:
    orders = pd.read_csv(tiny_dataset / "orders.csv", dtype=str)
    orders.loc[0, "unit_price"] = "-1"
    orders.to_csv(tiny_dataset / "orders.csv", index=False)
    out = tmp_path / "v"
    assert run_cli(monkeypatch, "validate", "--data", str(tiny_dataset), "--out", str(out)) == 1
    quarantine = pd.read_csv(out / "quarantine" / "orders.csv")
    assert quarantine["quarantine_reason"].tolist() == ["unit_price_not_positive"]


def test_simulate_then_quality_end_to_end(tmp_path: Path, monkeypatch, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    args = ["--consumers", "800", "--distributors", "20", "--products", "150", "--days", "90"]
    assert run_cli(monkeypatch, "simulate", "--out", str(data), *args) == 0
    assert run_cli(monkeypatch, "quality", "--data", str(data), "--out", str(out)) == 0
    first = pd.read_csv(out / "quality_alerts.csv", encoding="utf-8-sig")
    assert len(first) == 150 and set(first["change"]) == {"new"}
    assert (
        run_cli(
            monkeypatch, "quality", "--data", str(data), "--out", str(tmp_path / "o2"), "--previous", str(out)
        )
        == 0
    )
    second = pd.read_csv(tmp_path / "o2" / "quality_alerts.csv", encoding="utf-8-sig")
    assert set(second["change"]) == {"unchanged"}
    assert "quality as of" in capsys.readouterr().out


def test_an_as_of_after_today_is_refused(tiny_dataset: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "v"
    assert (
        run_cli(
            monkeypatch, "validate", "--data", str(tiny_dataset), "--as-of", "2999-12-31", "--out", str(out)
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--as-of 2999-12-31: is after today" in err and "fix:" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00\x81 not utf-8", b'product_id,level\n"P1,unclosed\n'],
    ids=["not-utf8", "malformed"],
)
def test_an_unreadable_previous_alerts_file_is_one_message(
    content: bytes, tmp_path: Path, monkeypatch, capsys
) -> None:
    from sources.simulator import SimulationConfig, simulate

    data = tmp_path / "data"
    simulate(data, SimulationConfig(consumers=200, distributors=5, products=30, days=60, seed=3))
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "quality_alerts.csv").write_bytes(content)
    args = ["quality", "--data", str(data), "--out", str(tmp_path / "out"), "--previous", str(previous)]
    capsys.readouterr()  # what the simulator logged through an earlier test's (closed) log stream
    assert run_cli(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert f"{previous / 'quality_alerts.csv'}: " in err and "fix:" in err and "Traceback" not in err
