"""The command line: help everywhere, one clear message (no traceback) for user errors, end-to-end runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.cli import run_cli

REPO = Path(__file__).resolve().parents[2]

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


_EXIT_PROBE = """
import sys
from pipelines.cli import freeze_heap_at_exit

class Node:
    def __init__(self):
        self.other = None
    def __del__(self):
        sys.stdout.write("cycle freed\\n")

def garbage_cycle():
    first, second = Node(), Node()
    first.other, second.other = second, first

if sys.argv[1] == "frozen":
    freeze_heap_at_exit()
    freeze_heap_at_exit()  # a second call registers nothing more
garbage_cycle()
import atexit
sys.stdout.write(f"exit handlers {atexit._ncallbacks()}\\n")
"""


def test_the_heap_is_frozen_at_exit_so_the_last_collection_walks_nothing() -> None:
    """Without the freeze the interpreter's last collection finds the run's cycles (and walks the
    whole heap to do so); with it the cycle is left to the operating system, every handler runs."""

    def run(mode: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_PROBE, mode], capture_output=True, text=True, check=True, cwd=REPO
        )
        return done.stdout.splitlines()

    plain, frozen = run("plain"), run("frozen")
    assert plain[-1] == "cycle freed"
    assert "cycle freed" not in frozen
    handlers = [int(line.split()[-1]) for line in (plain[0], frozen[0])]
    assert handlers[1] == handlers[0] + 1  # registered once
