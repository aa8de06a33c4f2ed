"""Content-keyed per-patient results: a re-run skips every patient whose inputs did not change.

Each patient's result is recorded under `results/<stage>/<cohort>/<patient>.json` with its key: a
BLAKE2b digest of the CONTENT of its input files (streamed; size and mtime are not enough: a file
rewritten with other values in the same second and size would be missed) and of the stage's
parameters (settings, code version, model checkpoint digest). `KeyedCompute` wraps a `Compute`:
patients whose record holds the same key (and whose recorded output files still exist with their
recorded sizes) are answered from the record; the others run on the wrapped backend, and each
success is recorded as it arrives. So a crash loses at most the patients in flight.

Nothing partial is visible: a patient's record is removed before it is recomputed (its output
files are about to be overwritten) and written atomically after its result arrives; the stage's
table is written by the IO manager only when the whole partition is done. Failures are not
recorded: a failed patient is tried again by the next run.

Records store paths relative to the data root (`paths.stored_path`), so a copied data root
reuses them and reads its own files. Pure: never imports Dagster.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gbm_assets.lib.store.compute import Compute
from gbm_assets.lib.store.files import write_atomic
from gbm_assets.lib.store.paths import map_paths_in, resolved_path, stored_path

CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (128 bit) hex digest of a file's bytes, read in 1 MiB chunks (bounded memory)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(files: Mapping[str, str | os.PathLike[str] | None], params: Mapping[str, Any]) -> str:
    """The key of one patient's work: its input files' contents (by role, e.g. "t1", not by path, so
    a copied data root keeps its keys) and `params` (JSON, sorted keys). A missing file counts as
    absent (the step itself reports it, e.g. as an exclusion; the file appearing changes the key).

    Raises:
        OSError: an input file exists but cannot be read (the message names it).
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    for role in sorted(files):
        path = files[role]
        digest.update(f"\0{role}\0{_digest_or_absent(path)}".encode())
    return digest.hexdigest()


def _digest_or_absent(path) -> str:
    if not path:
        return "-"
    try:
        return file_digest(path)
    except FileNotFoundError:
        return "absent"


def folder_files(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Name -> path of the visible files in `folder` (a patient's output folder as the next stage's input)."""
    return {p.name: str(p) for p in sorted(Path(folder).iterdir()) if p.is_file() and not p.name.startswith(".")}


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record a {type(value).__name__} in a result record")


class ResultStore:
    """One JSON record per patient in `folder`; paths inside results are stored relative to `root`."""

    def __init__(self, folder: str | os.PathLike[str], root: str | os.PathLike[str]):
        self.folder, self.root = Path(folder), Path(root)

    def _record(self, patient: str) -> Path:
        return self.folder / f"{patient}.json"

    def get(self, patient: str, key: str) -> Any | None:
        """The recorded result when its key is `key` and its output files are intact, else None."""
        try:
            record = json.loads(self._record(patient).read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != key:
            return None
        for rel, size in record.get("outputs", {}).items():
            path = Path(resolved_path(rel, self.root))
            if not path.is_file() or path.stat().st_size != size:
                return None
        return map_paths_in(record["result"], lambda v: resolved_path(v, self.root))

    def forget(self, patient: str) -> None:
        self._record(patient).unlink(missing_ok=True)

    def put(self, patient: str, key: str, result: Any, outputs: Iterable[str | os.PathLike[str]] = ()) -> None:
        """Record `result` under `key`, with the sizes of the `outputs` files it wrote."""
        record = {
            "key": key,
            "result": map_paths_in(result, lambda v: stored_path(v, self.root)),
            "outputs": {stored_path(str(p), self.root): Path(p).stat().st_size for p in outputs},
        }
        text = json.dumps(record, default=_plain)
        write_atomic(self._record(patient), lambda tmp: tmp.write_text(text))


class KeyedCompute(Compute):
    """A `Compute` that answers unchanged patients from a `ResultStore` and runs only the others.

    Args:
        compute: the backend that runs the patients to compute.
        store: where the records live.
        key_of: item -> (patient id, key); raising (an unreadable input) is that patient's failure.
        outputs_of: result -> the files it wrote, checked on reuse (None: no files).

    `reused` and `computed` count the patients of the last `map_patients`.
    """

    def __init__(self, compute: Compute, store: ResultStore, key_of: Callable[[Any], tuple[str, str]],
                 outputs_of: Callable[[Any], Iterable[str]] | None = None):  # fmt: skip
        self.compute, self.store, self.key_of, self.outputs_of = compute, store, key_of, outputs_of
        self.name, self.workers = compute.name, compute.workers
        self.reused = self.computed = 0

    def describe(self) -> str:
        return self.compute.describe()

    def map_patients(self, fn, items, *, initializer=None):
        self.reused = self.computed = 0
        keys: dict[int, tuple[str, str]] = {}
        todo = []
        for item in items:
            try:
                patient, key = self.key_of(item)
            except Exception as exc:  # an unreadable input: this patient's failure; the others proceed
                yield item, exc
                continue
            hit = self.store.get(patient, key)
            if hit is not None:
                self.reused += 1
                yield item, hit
                continue
            self.store.forget(patient)  # its outputs are about to be rewritten: no stale record may match them
            keys[id(item)] = (patient, key)
            todo.append(item)
        for item, result in self.compute.map_patients(fn, todo, initializer=initializer):
            if not isinstance(result, BaseException):
                patient, key = keys[id(item)]
                self.store.put(patient, key, result, self.outputs_of(result) if self.outputs_of else ())
                self.computed += 1
            yield item, result
