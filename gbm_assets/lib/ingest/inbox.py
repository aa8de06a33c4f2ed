"""The cohort inbox: which folders under `cohorts/` are complete, new, changed, invalid or gone.

The inbox rule: whoever copies a cohort into `$GBM_DATA_ROOT/cohorts/<cohort>/` writes a file
named `READY` in that folder last. A folder without `READY` is still being copied and is left
alone. A complete folder is scored once per content fingerprint: when its files change (and
`READY` is there), it is scored again.

The fingerprint is the first 16 hex digits of a sha256 over the sorted relative paths, sizes
and modification times (ns) of every file in the folder except `READY` and hidden names
(starting with `.`, at any depth, such as an atomic writer's temp files). It reads no file
contents, so it costs one `stat` per file: milliseconds for thousands of files. Touching
`READY` alone does not change it; rewriting any file does, even with the same bytes (its
mtime changes), while a copy that preserves mtimes (`cp -p`, `rsync -a`) of identical files
does not.

The cursor remembers, per folder name, the fingerprint last requested (`seen`) and the
fingerprint last reported invalid (`invalid`), so an invalid folder is reported once and not
retried until its contents change. It is JSON, stored by the sensor between ticks.

Pure: no Dagster; the filesystem is only read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gbm_assets.lib.ingest.clinical import ClinicalTableError, clinical_source
from gbm_assets.lib.ingest.layouts import LayoutError, reader_for
from gbm_assets.lib.ingest.layouts.mapped import read_cohort_yaml
from gbm_assets.lib.store.paths import CohortNameError, validate_cohort_name

READY = "READY"
"""Name of the completion marker, written last into a cohort folder."""
CURSOR_VERSION = 1


@dataclass(frozen=True)
class InboxCursor:
    """What the inbox has already acted on.

    Attributes:
        seen: folder name -> fingerprint for which a scoring run was requested.
        invalid: folder name -> fingerprint with which the folder was reported invalid.
    """

    seen: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"version": CURSOR_VERSION, "seen": self.seen, "invalid": self.invalid}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "InboxCursor":
        """Decode a cursor; None or "" is the empty cursor.

        Raises:
            ValueError: not a cursor written by `to_json`.
        """
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"inbox cursor is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
            raise ValueError(f"inbox cursor has no version {CURSOR_VERSION}: {text[:80]!r}")
        seen, invalid = data.get("seen", {}), data.get("invalid", {})
        for part in (seen, invalid):
            if not isinstance(part, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in part.items()):
                raise ValueError(f"inbox cursor maps must be str -> str: {text[:80]!r}")
        return cls(dict(seen), dict(invalid))


@dataclass(frozen=True)
class InboxPlan:
    """What one look at the inbox found, sorted by folder name.

    Attributes:
        new_or_changed: (cohort, fingerprint) to register and score: complete, valid, and not
            yet requested with this fingerprint.
        invalid: (folder name, reason) newly found invalid (bad name, unreadable layout, no
            patients). A folder already reported with the same fingerprint is not listed again.
        incomplete: folders without `READY` (or that changed while being read).
        removed: cohorts requested before whose folder is gone. Their partitions stay.
        deferred: new or changed cohorts left for a later look because a run for them is in
            progress (the `busy` argument); the cursor keeps their previous fingerprint.
        next_cursor: the cursor to store once the requests are made.
    """

    new_or_changed: list[tuple[str, str]]
    invalid: list[tuple[str, str]]
    incomplete: list[str]
    removed: list[str]
    deferred: list[str]
    next_cursor: InboxCursor

    def summary(self) -> str:
        """One line for a sensor's skip message."""
        invalid = f" ({', '.join(name for name, _ in self.invalid)})" if self.invalid else ""
        parts = [
            f"{len(self.new_or_changed)} new or changed",
            f"{len(self.invalid)} newly invalid{invalid}",
            f"{len(self.incomplete)} incomplete (no {READY})",
            f"{len(self.deferred)} deferred (run in progress)",
            f"{len(self.removed)} removed",
        ]
        return "cohort inbox: " + ", ".join(parts)


def _visible_files(cohort_dir: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every non-hidden file under `cohort_dir` except READY.

    Symlinked folders are followed once each (a link loop is not walked twice).
    """
    files, visited = [], set()
    for dirpath, dirnames, filenames in os.walk(cohort_dir, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(cohort_dir).as_posix()
            if rel != READY:
                files.append((rel, path))
    return sorted(files)


def fingerprint(cohort_dir: Path) -> str:
    """16 hex digits identifying the folder's file list, sizes and mtimes (see the module doc).

    Raises:
        OSError: a file vanished or cannot be read while listing.
    """
    digest = hashlib.sha256()
    for rel, path in _visible_files(Path(cohort_dir)):
        st = path.stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def precheck(cohort_dir: Path, allowed: Sequence[Path] = ()) -> str | None:
    """Why the folder cannot be scored, or None. Cheap: finds the layout, lists patients and
    locates the clinical table (a cohort.yaml glob or clinical path that leaves the folder is a
    reason), reads no volume (`raw_cohort` validates each patient's files)."""
    try:
        reader = reader_for(cohort_dir)
        scan = reader.scan(cohort_dir)
        clinical_source(cohort_dir, read_cohort_yaml(cohort_dir).get("clinical"), list(allowed))
    except (LayoutError, ClinicalTableError, OSError) as exc:
        return str(exc)
    if not scan.patients:
        return f"no patients found in {cohort_dir} ({reader.name} layout)"
    return None


def plan_inbox(cohorts_dir: Path, cursor: InboxCursor | None = None, busy: Collection[str] = (),
               allowed: Sequence[Path] = ()) -> InboxPlan:
    """Compare the folders in `cohorts_dir` with `cursor` and say what to do.

    Args:
        cohorts_dir: `$GBM_DATA_ROOT/cohorts`. Missing means empty. Files and hidden folders
            in it are ignored.
        cursor: what was acted on before (None: nothing).
        busy: cohorts with a run in progress; their changes are deferred, never requested twice.

    Returns:
        An `InboxPlan`. Only folders whose fingerprint changed are validated, so an unchanged
        inbox costs one `stat` per file.
    """
    cursor = cursor or InboxCursor()
    cohorts_dir = Path(cohorts_dir)
    entries = cohorts_dir.iterdir() if cohorts_dir.is_dir() else []
    folders = sorted(p for p in entries if p.is_dir() and not p.name.startswith("."))
    seen, invalid_seen = dict(cursor.seen), {}
    new_or_changed, invalid, incomplete, deferred = [], [], [], []
    for folder in folders:
        name = folder.name
        if not (folder / READY).is_file():
            incomplete.append(name)
            if name in cursor.invalid:
                invalid_seen[name] = cursor.invalid[name]
            continue
        try:
            fp = fingerprint(folder)
        except OSError:
            incomplete.append(name)  # changing under our feet: look again next time
            continue
        if cursor.seen.get(name) == fp:
            continue
        if cursor.invalid.get(name) == fp:  # reported before, unchanged: not retried
            invalid_seen[name] = fp
            continue
        try:
            validate_cohort_name(name)
            reason = None
        except CohortNameError as exc:
            reason = str(exc)
        if reason is None and name in busy:
            deferred.append(name)
            continue
        reason = reason or precheck(folder, allowed)
        if reason is not None:
            invalid_seen[name] = fp
            invalid.append((name, reason))
            continue
        new_or_changed.append((name, fp))
        seen[name] = fp
    present = {f.name for f in folders}
    removed = sorted(name for name in cursor.seen if name not in present)
    for name in removed:
        del seen[name]
    return InboxPlan(new_or_changed, invalid, incomplete, removed, deferred, InboxCursor(seen, invalid_seen))
