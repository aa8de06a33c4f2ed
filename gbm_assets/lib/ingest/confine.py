"""Confined inputs: every file a cohort names must lie inside the cohort folder.

A cohort folder is dropped by someone other than the operator, so what it says (globs and the
clinical table's path in `cohort.yaml`, and symlinks among its files) must not make the platform
read files elsewhere on the machine and copy them into its outputs. The rule:

- A glob or path written in `cohort.yaml` must be relative and free of `..` components
  (`check_pattern`); an absolute glob or one with `..` fails the whole cohort, naming it.
- Every file actually used is resolved, symlinks included, and must then lie inside the
  cohort folder (also resolved), or inside a directory the OPERATOR allows (`allowed`):
  the ingest assets' `allowed_input_dirs` run config, or the data-root resource's
  `allowed_input_dirs` (set from `$GBM_ALLOWED_INPUT_DIRS`, `os.pathsep`-separated). A cohort
  folder cannot allow itself anything.

Symlinks are resolved because a link is as good as a path: `P001/t1.nii.gz -> /etc/shadow`
would otherwise be read (with the platform's rights) into the cohort's volumes.

Pure: reads no file; only resolves paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath

ALLOWED_ENV = "GBM_ALLOWED_INPUT_DIRS"
"""The environment variable the data-root resource reads (through `dg.EnvVar`) for the operator's allowance."""


class OutsideCohortError(ValueError):
    """A path named by a cohort lies (or would lie) outside the cohort folder."""


def parse_allowed(value: str | None) -> list[Path]:
    """The directories in an `os.pathsep`-separated list ([] when empty or None)."""
    return [Path(p).expanduser() for p in (value or "").split(os.pathsep) if p.strip()]


def check_pattern(pattern: str, where: str, what: str) -> str:
    """Return `pattern` if it is a relative glob/path without `..` components.

    Args:
        pattern: the glob or path as written.
        where: the file that wrote it (named in the error), e.g. `<cohort>/cohort.yaml`.
        what: what the pattern is for (`patients`, `t1`, `labels`, `clinical.path`).

    Raises:
        OutsideCohortError: absolute, home-relative, or with a `..` component.
    """
    text = str(pattern)
    parts = PurePath(text).parts
    if not text.strip():
        raise OutsideCohortError(f"{where}: {what} is empty")
    if PurePath(text).is_absolute() or text.startswith("~"):
        raise OutsideCohortError(f"{where}: {what} {text!r} is absolute; paths in cohort.yaml must be relative to the cohort folder")
    if ".." in parts:
        raise OutsideCohortError(f"{where}: {what} {text!r} leaves the cohort folder ('..'); paths must stay inside it")
    return text


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def outside(path: Path, cohort_dir: Path, allowed: Iterable[Path] = ()) -> Path | None:
    """Where `path` really points when that is outside `cohort_dir` and every allowed dir; else None.

    Both sides are resolved (symlinks followed). A dangling link resolves to its target path
    and is judged by it.
    """
    real = Path(path).resolve()
    roots = [Path(cohort_dir).resolve(), *(Path(a).expanduser().resolve() for a in allowed)]
    return None if any(_within(real, root) for root in roots) else real


def confine(path: Path, cohort_dir: Path, allowed: Sequence[Path] = (), what: str = "file") -> Path:
    """Return `path` if it resolves inside `cohort_dir` (or an allowed dir).

    Raises:
        OutsideCohortError: it resolves elsewhere; the message names the path and its target.
    """
    real = outside(path, cohort_dir, allowed)
    if real is not None:
        raise OutsideCohortError(
            f"{what} {path} resolves to {real}, outside the cohort folder {cohort_dir}"
            f" (an operator may allow a directory with allowed_input_dirs or ${ALLOWED_ENV})"
        )
    return path
