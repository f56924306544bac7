"""New work directories start their MLflow and Prefect stores from the installation's migrated
templates (pipelines.store_templates, issue #18: the fixed cost of a first night)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipelines import runtime, store_templates
from pipelines.store_templates import CACHE_ENV
from pipelines.tracking import TrackingConfig, using_tracking
from tests.pipelines.test_runtime import launched


def _experiments(database: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as con:
        return con.execute("SELECT experiment_id, name, artifact_location FROM experiments").fetchall()


def test_cache_folder_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert store_templates.cache_dir() == tmp_path / "stores"
    monkeypatch.setenv(CACHE_ENV, "")
    assert store_templates.cache_dir() is None
    assert store_templates.template_path("mlflow", "1.0", tmp_path) is None


def test_a_template_is_named_by_version_and_migration_scripts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    scripts = tmp_path / "versions"
    scripts.mkdir()
    (scripts / "0001_a.py").write_text("")
    first = store_templates.template_path("mlflow", "1.0", scripts)
    assert first == store_templates.template_path("mlflow", "1.0", scripts)
    assert first != store_templates.template_path("mlflow", "1.1", scripts)
    (scripts / "0002_b.py").write_text("")
    assert first != store_templates.template_path("mlflow", "1.0", scripts)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////abs/mlflow.db", Path("/abs/mlflow.db")),
        ("sqlite+aiosqlite:////abs/prefect.db", Path("/abs/prefect.db")),
        ("sqlite:///relative.db", Path("relative.db")),
        ("sqlite:///:memory:", None),
        ("sqlite:////abs/x.db?mode=ro", None),
        ("postgresql://user@host/db", None),
        ("http://127.0.0.1:5000", None),
    ],
)
def test_sqlite_file(url: str, expected: Path | None) -> None:
    assert store_templates.sqlite_file(url) == expected


def test_seed_never_replaces_a_database(tmp_path: Path) -> None:
    template, database = tmp_path / "template.db", tmp_path / "work" / "store.db"
    template.write_bytes(b"template")
    assert store_templates.seed(database, template)
    assert database.read_bytes() == b"template"
    database.write_bytes(b"in use")
    assert not store_templates.seed(database, template)
    assert database.read_bytes() == b"in use"
    assert not store_templates.seed(tmp_path / "other.db", tmp_path / "missing.db")
    assert not (tmp_path / "other.db").exists()


def test_save_keeps_a_snapshot_without_the_dropped_rows(tmp_path: Path) -> None:
    database, template = tmp_path / "store.db", tmp_path / "cache" / "t.db"
    with sqlite3.connect(database) as con:
        con.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(0, "made here"), (1, "schema data")])
    store_templates.save(database, template, drop=("DELETE FROM t WHERE id = 0",))
    with sqlite3.connect(template) as con:
        assert con.execute("SELECT id, name FROM t").fetchall() == [(1, "schema data")]
    with sqlite3.connect(database) as con:  # the source is left as it was
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert [path.name for path in template.parent.iterdir()] == ["t.db"]  # no partial file left


def test_an_unwritable_cache_leaves_the_store_to_its_migrations(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    with sqlite3.connect(database) as con:
        con.execute("CREATE TABLE t (id INTEGER)")
    blocked = tmp_path / "a file"
    blocked.write_text("")
    store_templates.save(database, blocked / "t.db")  # logged at DEBUG, no error
    assert not store_templates.seed(tmp_path / "new.db", blocked / "t.db")


def test_a_new_mlflow_store_is_the_template_plus_what_mlflow_makes_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    config = TrackingConfig()
    with using_tracking(config, tmp_path / "first") as client:
        first_experiments = client.search_experiments()
    templates = list((tmp_path / "cache" / "stores").glob("mlflow-*.db"))
    assert len(templates) == 1
    assert _experiments(templates[0]) == []  # MLflow makes the Default experiment on first use

    with using_tracking(config, tmp_path / "second") as client:
        experiment = client.create_experiment("siyu-test")
        assert client.get_experiment(experiment).name == "siyu-test"
        second_experiments = client.search_experiments()

    monkeypatch.setenv(CACHE_ENV, "")  # the same store made by MLflow's migrations alone
    with using_tracking(config, tmp_path / "third") as client:
        client.create_experiment("siyu-test")
    assert [e.name for e in first_experiments] == ["Default"]
    assert sorted(e.name for e in second_experiments) == ["Default", "siyu-test"]
    assert _experiments(tmp_path / "second" / "mlflow.db") == _experiments(tmp_path / "third" / "mlflow.db")
    assert _schema(tmp_path / "second" / "mlflow.db") == _schema(tmp_path / "third" / "mlflow.db")


def _schema(database: Path) -> dict[str, Any]:
    """Tables and indexes with their columns, and the migration revision (the text of a CHECK
    constraint's list can come out in another order from one run of the migrations to the next)."""
    with sqlite3.connect(database) as con:
        names = con.execute("SELECT type, name FROM sqlite_master ORDER BY type, name").fetchall()
        columns = {
            name: con.execute(f"PRAGMA table_info('{name}')").fetchall()
            for kind, name in names
            if kind == "table"
        }
        return {
            "objects": names,
            "columns": columns,
            "revision": con.execute("SELECT * FROM alembic_version").fetchall(),
        }


@pytest.mark.skipif(runtime.sys.platform != "linux", reason="the launcher migrates in a fork on Linux only")
def test_a_new_prefect_database_is_migrated_once_then_copied(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args, env = launched(monkeypatch, True, tmp_path / "first", cache)
    database, keep = Path(args[6]), Path(args[7])  # after -P -c <launcher> <pid>
    assert args[5] == "migrate" and database == tmp_path / "first" / "prefect.db"
    assert keep.parent == tmp_path / "cache" / "stores" and keep.name.startswith("prefect-")

    keep.parent.mkdir(parents=True)
    with sqlite3.connect(keep) as con:  # as the launcher's fork would leave it
        con.execute("CREATE TABLE alembic_version (version_num TEXT)")
    args, env = launched(monkeypatch, True, tmp_path / "second", cache)
    assert args[5] == "-" and args[7] == "-"  # nothing to migrate: a copy of the template
    assert env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"
    assert (tmp_path / "second" / "prefect.db").read_bytes() == keep.read_bytes()

    args, _ = launched(
        monkeypatch, True, tmp_path / "second", cache
    )  # an existing database: migrated as always
    assert args[5] == "migrate" and args[7] == "-"


def test_the_launcher_keeps_the_migrated_database_as_the_template(tmp_path: Path) -> None:
    """The real launcher: its fork migrates a new database, keeps the template, and a server on a
    copy of it starts (the flow tests run nights on it)."""
    import os
    import subprocess

    database, template = tmp_path / "prefect.db", tmp_path / "cache" / "prefect-t.db"
    env = {**os.environ, "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}"}
    # uvicorn refuses the port and exits: by then the fork has migrated and kept the template
    launcher = [runtime.sys.executable, "-c", runtime._LAUNCHER, str(os.getpid()), "migrate"]
    launcher += [str(database), str(template), "--port", "not-a-port"]
    server = subprocess.run(launcher, capture_output=True, text=True, env=env, timeout=300)
    assert server.returncode == 2 and "not-a-port" in server.stderr, server.stderr[-2000:]
    with sqlite3.connect(template) as kept, sqlite3.connect(database) as migrated:
        version = "SELECT version_num FROM alembic_version"
        assert kept.execute(version).fetchall() == migrated.execute(version).fetchall() != []
