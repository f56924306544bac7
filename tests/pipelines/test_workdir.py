"""The work directory: one run at a time (a second process is refused at once), nothing foreign deleted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from features.catalog import output_names
from features.errors import SiyuError
from pipelines.workdir import LOCK, LOCK_INFO, MARKER, adopt, claim, clear_own
from tests.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from pathlib import Path
from pipelines.workdir import claim
with claim(Path(sys.argv[1]), "nightly"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held(tmp_path: Path):
    """Another process holding ``tmp_path/work``, as a running ``siyu nightly`` would."""
    work = tmp_path / "work"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(work)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout.readline().strip() == b"held"
    yield work, process
    process.kill()
    process.wait()


def test_a_second_run_is_refused_at_once_naming_the_first(
    held, tiny_dataset: Path, monkeypatch, capsys
) -> None:
    work, holder = held
    status = run_cli(monkeypatch, "validate", "--data", str(tiny_dataset), "--out", str(work))
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"another siyu run is in progress in {work} since " in err
    assert f"(pid {holder.pid} on {socket.gethostname()}): siyu nightly" in err and "fix:" in err
    assert f"it holds the lock {work / LOCK}" in err
    assert not (work / "clean").exists(), "the refused run wrote nothing"


def test_a_killed_runs_lock_is_recovered(held) -> None:
    work, holder = held
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (work / LOCK_INFO).is_file(), "precondition: the killed run left its info file"
    with claim(work, "validate"):  # the OS lock died with the process; the info file does not block
        assert f'"pid": {os.getpid()}' in (work / LOCK_INFO).read_text()


def test_claims_nest_in_one_process_and_release_at_the_end(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    monkeypatch.chdir(tmp_path)
    with claim(work, "nightly"), claim(Path("work"), "nightly"):  # one folder, spelled two ways
        assert (work / MARKER).is_file()
    with claim(work, "validate"):  # released: taken again
        pass


def test_a_users_folder_is_refused_and_keeps_its_files(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "mine"
    (folder / "outputs").mkdir(parents=True)
    (folder / "outputs" / "precious.txt").write_text("keep me")
    assert run_cli(monkeypatch, "nightly", "--out", str(folder)) == 2
    err = capsys.readouterr().err
    assert f"{folder}: holds files siyu did not write (outputs)" in err and "fix:" in err
    assert "Traceback" not in err
    assert (folder / "outputs" / "precious.txt").read_text() == "keep me"
    assert not (folder / MARKER).exists()


def test_a_folder_holding_only_siyu_work_directories_is_adopted(tmp_path: Path) -> None:
    """`siyu evaluate` (work/evaluation) or a notebook (work/notebook-demo) may claim a folder
    inside work/ before any nightly did: work/ is then still siyu's, a user's file is not."""
    work = tmp_path / "work"
    adopt(work / "evaluation")
    adopt(work / "notebook-demo")
    adopt(work)
    assert (work / MARKER).is_file()
    mixed = tmp_path / "mixed"
    adopt(mixed / "evaluation")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(SiyuError, match=r"holds files siyu did not write \(notes.txt\)"):
        adopt(mixed)


def test_an_owned_folder_loses_only_what_siyu_writes(tmp_path: Path, caplog) -> None:
    work = tmp_path / "work"
    adopt(work)
    outputs = work / "outputs"
    (outputs / "artifact").mkdir(parents=True)
    (outputs / "consumer_tiers.csv").write_text("from an earlier run")
    (outputs / "quality_alerts.csv.partial").write_text("a killed write")
    (outputs / "artifact" / "manifest.json").write_text("{}")
    (outputs / "precious.txt").write_text("an operator's notes")
    names = output_names()
    assert [p.name for p in clear_own(outputs, names).iterdir()] == ["precious.txt"]
    assert "precious.txt: not written by siyu; left alone" in caplog.text
    with pytest.raises(SiyuError, match="not a siyu work directory"):
        clear_own(tmp_path / "elsewhere" / "outputs", names)
    adopt(tmp_path / "empty")  # an existing empty folder is adopted
    assert (tmp_path / "empty" / MARKER).is_file()


@pytest.mark.parametrize("command", ["validate", "nightly"])
def test_out_pointing_at_a_file_is_one_message(
    command: str, tiny_dataset: Path, tmp_path, monkeypatch, capsys
) -> None:
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    assert run_cli(monkeypatch, command, "--data", str(tiny_dataset), "--out", str(a_file)) == 2
    err = capsys.readouterr().err
    assert f"{a_file}: is a file, not a folder" in err and "fix: pass --out" in err and "Traceback" not in err
