"""Empty, migrated SQLite stores kept per installation, so that a new work directory starts from a
copy instead of running the migrations again.

A new work directory needs two SQLite databases before its night can start: MLflow's store
(``mlflow.db``) and the local Prefect server's (``prefect/prefect.db``). Each is created by
running its package's schema migrations from scratch: seconds of CPU each (MLflow about 6 s,
Prefect about 11 s on the 2-core machine), paid again by every new work directory, though the
result depends only on the installed package. So the first creation also leaves a template in
the cache folder, and later ones copy it (milliseconds):

- **where**: ``$SIYU_CACHE_DIR`` when set (an empty value turns templates off), else the
  platform's user cache folder (``platformdirs.user_cache_dir("siyu")``, ``~/.cache/siyu`` on
  Linux), under ``stores/``;
- **which**: a template's file name holds the package's version and a digest of the names of its
  migration scripts, so an upgrade (or an edited development install) makes a new one and never
  reuses an old schema;
- **what**: the database right after its migrations, copied with SQLite's backup API (a
  consistent snapshot); rows that depend on where or when the store was made are left out of the
  template and made by the package itself on first use (MLflow's ``Default`` experiment, whose
  artifact location is the current folder).

A template is only an optimisation: a cache folder that cannot be written or read is logged at
DEBUG and the store is created by its migrations as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from features.files import atomic_path

logger = logging.getLogger(__name__)

CACHE_ENV = "SIYU_CACHE_DIR"
_STORES = "stores"


def cache_dir() -> Path | None:
    """The folder templates live in, or None when ``$SIYU_CACHE_DIR`` is set empty (templates off)."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured) / _STORES if configured.strip() else None
    import platformdirs

    return Path(platformdirs.user_cache_dir("siyu")) / _STORES


def template_path(kind: str, version: str, migrations: Path) -> Path | None:
    """Where the template of ``kind`` (e.g. ``mlflow``) at package ``version`` with the migration
    scripts in ``migrations`` lives (it may not exist yet); None when templates are off."""
    folder = cache_dir()
    if folder is None:
        return None
    names = sorted(path.name for path in migrations.glob("*.py")) if migrations.is_dir() else []
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return folder / f"{kind}-{version}-{digest}.db"


def seed(database: Path, template: Path | None) -> bool:
    """Copy ``template`` to ``database`` when the database does not exist and the template does;
    whether it did. Written beside the database and renamed into place (``atomic_path``: a work
    dir is claimed by one run at a time)."""
    if template is None or database.exists() or not template.is_file():
        return False
    try:
        with atomic_path(database) as partial:
            shutil.copyfile(template, partial)
    except OSError as error:
        logger.debug("cannot copy the store template %s to %s: %s", template, database, error)
        return False
    logger.debug("store %s copied from the template %s", database, template)
    return True


def save(database: Path, template: Path | None, drop: tuple[str, ...] = ()) -> None:
    """Keep a snapshot of ``database`` (SQLite's backup API) as ``template`` unless it exists;
    ``drop``: SQL statements run on the snapshot before it is kept (rows a new store must make
    itself). Written beside the template under a name of its own (the cache is shared by every
    run on the machine, so two may keep the same template at once) and renamed into place:
    readers never see half of one."""
    if template is None or template.exists():
        return
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial_beside(template)
        try:
            source = sqlite3.connect(database)
            target = sqlite3.connect(partial)
            try:
                source.backup(target)
                for statement in drop:
                    target.execute(statement)
                target.commit()
            finally:
                target.close()
                source.close()
            os.replace(partial, template)
        finally:
            partial.unlink(missing_ok=True)
    except (OSError, sqlite3.Error) as error:
        logger.debug("cannot keep %s as the store template %s: %s", database, template, error)
        return
    logger.debug("kept %s as the store template %s", database, template)


def _partial_beside(path: Path) -> Path:
    """A new empty file beside ``path``, to be renamed over it once written."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as part:
        return Path(part.name)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite SQLAlchemy URL (``sqlite:///…``, ``sqlite+aiosqlite:///…``); None for
    any other database, an in-memory one or a URL with options."""
    scheme, _, rest = url.partition(":///")
    if scheme.split("+")[0] != "sqlite" or not rest or rest.startswith(":memory:") or "?" in rest:
        return None
    return Path(rest)
