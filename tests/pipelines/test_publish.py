"""Publishing: manifest with checksums, atomic switches of the links, recovery after a kill, pruning."""

from __future__ import annotations

import errno
import json
import os
from datetime import date
from pathlib import Path

import pytest

import pipelines.publish as publish
from features.catalog import RunFile
from features.errors import SiyuError
from pipelines.publish import (
    CURRENT_FILE,
    CURRENT_LINK,
    PUBLISH_LOCK,
    PublishError,
    current_export,
    dated_exports,
    previous_export,
    publish_export,
    recover_interrupted,
    sha256_of,
    verify_export,
)

VERSIONS = {"python": "3.11", "siyu": "0.1.0"}


def outputs(root: Path, marker: str) -> dict[str, Path]:
    """Two export files and an artifact folder with a nested file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "quality_alerts.csv").write_text(f"product_id,level\nP1,{marker}\n", encoding="utf-8-sig")
    (root / "consumer_tiers.csv").write_text("consumer_id,member_tier\nC1,gold\n", encoding="utf-8-sig")
    artifact = root / "artifact"
    (artifact / "ids").mkdir(parents=True, exist_ok=True)
    (artifact / "ids" / "items.json").write_text('["P1"]')
    return {path.name: path for path in sorted(root.iterdir())}


def test_publish_writes_manifest_and_switches_current(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    published = publish_export(
        outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {"mlflow_run_id": "r1"}
    )
    target = exports / "2025-03-31"
    assert published.export_dir == target and published.same_as_before is None
    manifest = json.loads((target / RunFile.MANIFEST).read_text())
    assert [f["path"] for f in manifest["files"]] == [
        "artifact/ids/items.json",
        "consumer_tiers.csv",
        "quality_alerts.csv",
    ]
    alerts = next(f for f in manifest["files"] if f["path"] == "quality_alerts.csv")
    assert alerts["sha256"] == sha256_of(target / "quality_alerts.csv")
    assert alerts["bytes"] == (target / "quality_alerts.csv").stat().st_size
    assert manifest["as_of"] == "2025-03-31" and manifest["versions"] == VERSIONS
    assert manifest["run"] == {"mlflow_run_id": "r1"}
    assert os.readlink(exports / CURRENT_LINK) == "2025-03-31"
    folder = os.readlink(target)  # the export's own folder, named by date and a token
    assert folder.startswith("2025-03-31.") and (exports / folder).is_dir()
    assert (exports / CURRENT_FILE).read_text() == f"{folder}\n"
    assert (
        (exports / CURRENT_LINK / "consumer_tiers.csv")
        .read_text(encoding="utf-8-sig")
        .startswith("consumer_id")
    )
    assert [p.name for p in exports.iterdir() if p.name.startswith(".") and p.name != PUBLISH_LOCK] == []


def test_rerun_replaces_the_export_and_reports_identical_files(tmp_path: Path) -> None:
    exports, day = tmp_path / "exports", date(2025, 3, 31)
    sources = outputs(tmp_path / "out", "normal")
    first = publish_export(sources, exports, day, VERSIONS, {"mlflow_run_id": "r1"})
    second = publish_export(sources, exports, day, VERSIONS, {"mlflow_run_id": "r2"})
    assert second.same_as_before is True and second.files == first.files
    assert json.loads((exports / "2025-03-31" / RunFile.MANIFEST).read_text())["run"] == {
        "mlflow_run_id": "r2"
    }
    third = publish_export(outputs(tmp_path / "out", "pulled"), exports, day, VERSIONS, {})
    assert third.same_as_before is False


def test_current_moves_to_the_newest_and_history_is_the_one_before(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    for day in (date(2025, 3, 29), date(2025, 3, 30), date(2025, 3, 31)):
        publish_export(outputs(tmp_path / "out", "normal"), exports, day, VERSIONS, {}, keep_last=2)
    assert [p.name for p in dated_exports(exports)] == ["2025-03-30", "2025-03-31"]
    assert sorted(p.name[:10] for p in exports.iterdir() if p.is_dir() and not p.is_symlink()) == [
        "2025-03-30",
        "2025-03-31",
    ]
    assert current_export(exports) == exports / "2025-03-31"
    assert previous_export(exports, date(2025, 3, 31)) == exports / "2025-03-30"
    assert previous_export(exports, date(2025, 3, 30)) is None


def test_pruning_never_removes_the_current_export(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {})
    # a backfill of an older date becomes current; keep_last=1 would otherwise remove it as the oldest
    publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 1), VERSIONS, {}, keep_last=1)
    assert current_export(exports) == exports / "2025-03-01"
    assert (exports / "2025-03-01" / RunFile.MANIFEST).is_file() and (exports / "2025-03-31").is_dir()


def test_a_changed_file_fails_verification(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    published = publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {})
    (published.export_dir / "quality_alerts.csv").write_text("tampered")
    with pytest.raises(SiyuError, match="does not match"):
        verify_export(published.export_dir)


def test_a_missing_source_stops_before_current_switches(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 30), VERSIONS, {})
    with pytest.raises(SiyuError, match="export file missing"):
        publish_export({"gone.csv": tmp_path / "gone.csv"}, exports, date(2025, 3, 31), VERSIONS, {})
    assert current_export(exports) == exports / "2025-03-30"
    assert not (exports / "2025-03-31").exists()


def test_recovery_restores_a_set_aside_export_and_drops_staging(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {})
    # what a kill between "set the old export aside" and "rename the new one in" leaves behind
    os.replace(exports / "2025-03-31", exports / ".2025-03-31.previous-abcd")
    (exports / ".2025-04-01.staging-ef01").mkdir()
    recover_interrupted(exports)
    assert (exports / "2025-03-31" / RunFile.MANIFEST).is_file()
    assert not (exports / ".2025-04-01.staging-ef01").exists()
    verify_export(current_export(exports))


def test_a_real_folder_named_current_is_refused(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    (exports / CURRENT_LINK).mkdir(parents=True)
    with pytest.raises(SiyuError, match="not the link siyu maintains"):
        publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {})
    assert sorted(p.name for p in exports.iterdir() if p.name != PUBLISH_LOCK) == [CURRENT_LINK]


def test_a_same_date_rerun_killed_at_any_rename_leaves_current_on_a_complete_export(
    tmp_path: Path, monkeypatch
) -> None:
    exports, day = tmp_path / "exports", date(2025, 3, 31)
    publish_export(outputs(tmp_path / "out", "normal"), exports, day, VERSIONS, {"mlflow_run_id": "r1"})
    real_replace, renames = os.replace, 0
    for kill_at in range(1, 10):
        calls = 0

        def replace_until_killed(source, target, _kill_at=kill_at):
            nonlocal calls
            calls += 1
            if calls == _kill_at:
                raise SystemExit("killed")  # nothing of publish's own handling runs, as with kill -9
            real_replace(source, target)

        monkeypatch.setattr(publish.os, "replace", replace_until_killed)
        try:
            publish_export(outputs(tmp_path / "out", "pulled"), exports, day, VERSIONS, {})
        except SystemExit:
            pass
        else:
            renames = calls
        monkeypatch.setattr(publish.os, "replace", real_replace)
        verify_export(exports / CURRENT_LINK)  # current names a complete export at every moment
        verify_export(exports / (exports / CURRENT_FILE).read_text().strip())
        if renames:
            break
    assert renames >= 4, "the loop must have killed the publish at each of its renames"
    publish_export(outputs(tmp_path / "out", "normal"), exports, day, VERSIONS, {})
    folders = [p.name for p in exports.iterdir() if not p.is_symlink() and p.is_dir()]
    assert folders == [os.readlink(exports / "2025-03-31")], "leftovers of the killed runs are removed"


def test_a_full_disk_stops_publishing_with_current_unchanged(tmp_path: Path, monkeypatch) -> None:
    exports = tmp_path / "exports"
    publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 30), VERSIONS, {})

    def disk_full(source, target, relative, bar=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(publish, "copy_file", disk_full)
    with pytest.raises(PublishError) as error:
        publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {})
    message = str(error.value)
    assert message.startswith("publishing failed: ") and "No space left on device" in message
    assert f"{exports / CURRENT_LINK} is unchanged" in message and "fix:" in message
    assert current_export(exports) == exports / "2025-03-30"
    leftovers = [
        p for p in exports.iterdir() if p.name.startswith((".", "2025-03-31")) and p.name != PUBLISH_LOCK
    ]
    assert not leftovers


def test_an_export_of_the_old_layout_is_replaced_by_a_linked_one(tmp_path: Path, monkeypatch) -> None:
    exports, day = tmp_path / "exports", date(2025, 3, 31)
    monkeypatch.setattr(publish, "can_symlink", lambda exports_dir: False)
    publish_export(outputs(tmp_path / "out", "normal"), exports, day, VERSIONS, {})
    assert (exports / "2025-03-31").is_dir() and not (exports / "2025-03-31").is_symlink()
    assert (exports / CURRENT_FILE).read_text() == "2025-03-31\n"
    monkeypatch.undo()
    publish_export(outputs(tmp_path / "out", "pulled"), exports, day, VERSIONS, {})
    assert (exports / "2025-03-31").is_symlink() and current_export(exports) == exports / "2025-03-31"
    assert "pulled" in (exports / CURRENT_LINK / "quality_alerts.csv").read_text(encoding="utf-8-sig")
    assert not [p for p in exports.iterdir() if p.name.startswith(".") and p.name != PUBLISH_LOCK]


def test_the_manifest_records_the_tables_read(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    published = publish_export(
        outputs(tmp_path / "out", "normal"),
        exports,
        date(2025, 3, 31),
        VERSIONS,
        {},
        tables=["orders", "events"],
    )
    assert json.loads(published.manifest_path.read_text())["tables"] == ["events", "orders"]


def test_a_publish_waits_for_another_into_the_same_folder_then_gives_up(tmp_path: Path, monkeypatch) -> None:
    from filelock import FileLock

    exports = tmp_path / "exports"
    publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 30), VERSIONS, {})
    monkeypatch.setattr(publish, "PUBLISH_WAIT_SECONDS", 0)
    with FileLock(exports / PUBLISH_LOCK), pytest.raises(PublishError, match="another publish into"):
        publish_export(outputs(tmp_path / "out", "normal"), exports, date(2025, 3, 31), VERSIONS, {})
    assert current_export(exports) == exports / "2025-03-30"


def test_copying_and_checking_count_the_mib(tmp_path: Path) -> None:
    from features.progress import add_listener

    sources = outputs(tmp_path / "out", "normal")
    (tmp_path / "out" / "big.parquet").write_bytes(os.urandom(3 * 2**20 + 5))
    sources["big.parquet"] = tmp_path / "out" / "big.parquet"
    updates = []
    remove = add_listener(updates.append)
    try:
        publish_export(sources, tmp_path / "exports", date(2025, 3, 31), VERSIONS, {})
    finally:
        remove()
    total = sum(path.stat().st_size for path in (tmp_path / "out").rglob("*") if path.is_file()) / 2**20
    for step in ("publish: copying 4 files", "publish: checking 4 files"):
        seen = [update for update in updates if update.step == step]
        assert seen and seen[-1].finished and seen[-1].unit == "MiB", step
        assert seen[-1].total == pytest.approx(total) and seen[-1].done == pytest.approx(total), step
