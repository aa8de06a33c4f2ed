"""Relocating a data root's SQLite MLflow store: MLflow records artifact locations as absolute
`file://` URIs, so a data root that was copied, moved or mounted elsewhere would still read (or,
once it is gone, fail to read) the old root's artifacts. `TrackingStore.for_data_root` calls
`relocate_artifacts` for the root's own store; a tracking server is never rewritten.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

LOG = logging.getLogger(__name__)

# Every (table, column) of MLflow's SQL schema that holds an artifact location (MLflow 3.17: the
# experiment's root, each run's, each model version's source and storage, each logged model's).
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


@contextmanager
def store_lock(lock_dir: Path) -> Iterator[None]:
    """The lock file that serialises store creation and relocation across processes."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _old_prefixes(db: sqlite3.Connection, current: str) -> set[str]:
    """The `file://<old root>/mlartifacts` prefixes recorded by `ensure_experiment` that are not `current`.

    Only experiments laid out as `<prefix>/<experiment name>` with a prefix ending in
    `/mlartifacts` count, so a location a user chose elsewhere is never taken for an old root.
    """
    found = set()
    for name, location in db.execute("SELECT name, artifact_location FROM experiments"):
        suffix = f"/{name}"
        if location and location.startswith("file://") and location.endswith(suffix):
            prefix = location[: -len(suffix)]
            if prefix.endswith("/mlartifacts") and prefix != current:
                found.add(prefix)
    return found


def relocate_artifacts(db_path: Path, artifact_root: Path, lock_dir: Path) -> dict[str, int]:
    """Rewrite the artifact locations the SQLite store `db_path` recorded under another root to `artifact_root`.

    Why: MLflow stores absolute `file://` URIs, so a copied or moved data root would download its
    checkpoints and load its registered models from the old root (or fail once that is gone).
    Only exact prefixes `file://<old>/mlartifacts` (followed by `/` or nothing) are replaced, in one
    transaction under the store lock; a second call finds nothing to do. The old root's own
    database is never opened. Returns `{"<table>.<column>": rows rewritten}` (empty: nothing to do).
    """
    if not db_path.is_file():
        return {}
    current = Path(artifact_root).as_uri()
    with closing(sqlite3.connect(db_path)) as db:
        try:
            stale = _old_prefixes(db, current)
        except sqlite3.OperationalError:  # no experiments table yet: MLflow has not created the schema
            return {}
    if not stale:
        return {}
    done: dict[str, int] = {}
    with store_lock(lock_dir), closing(sqlite3.connect(db_path, timeout=60)) as db, db:
        db.execute("BEGIN IMMEDIATE")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for old in _old_prefixes(db, current):  # again, under the lock: another process may have done it
            for table, column in ARTIFACT_COLUMNS:
                if table not in tables or column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                    continue
                rows = db.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (current, len(old) + 1, old, len(old) + 1, old + "/"),
                ).rowcount
                if rows:
                    done[f"{table}.{column}"] = done.get(f"{table}.{column}", 0) + rows
            LOG.warning(
                "MLflow store %s: artifact locations moved from %s to %s (%s)",
                db_path,
                old,
                current,
                done,
            )
    return done
