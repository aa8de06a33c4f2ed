"""Validate a cohort's patients file by file; one row per patient, problems recorded, never raised.

A patient passes when it has at least one sequence (and every sequence the cohort expects), each
readable, all volumes share one shape and (within tolerance) one affine, every voxel is finite, and the mask (when present) holds
only values its label scheme defines. A patient that fails is `excluded` with its reasons; the
other patients are unaffected. An empty mask is recorded (`labels_empty`), not a failure.

Sources that are not NIfTI (NRRD, DICOM series, 2D slice stacks) are converted once read: written
as `<converted_dir>/<patient>/<seq>.nii.gz` (and `labels.nii.gz`), and the row's paths name those
files, so every later stage reads NIfTI only.

Every file a patient uses must resolve (symlinks followed) inside the cohort folder or a
directory the operator allows (see `confine`); one that does not excludes that patient.

Subject identity: `image_sha256` is a content hash of the patient's decoded image arrays (the
sequences it has, in canonical order, each with its dtype and shape; independent of file names,
compression level and byte order); `subject_id` is the id declared in cohort.yaml's
`subject_ids` mapping, else `sha256:<first 16 hex of image_sha256>`. Two patients of one
cohort with identical images are both excluded, each naming the other.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SEQUENCES, LabelError, label_counts, to_canonical
from gbm_assets.lib.ingest.confine import outside
from gbm_assets.lib.ingest.layouts import CohortScan, LayoutError, PatientFiles, Source, scan_cohort, source_files
from gbm_assets.lib.ingest.layouts.spec import COHORT_YAML, read_cohort_yaml
from gbm_assets.lib.ingest.sources import is_nifti, load_source, write_converted

ROTATION_ATOL = 1e-3
"""Tolerance on the affine's 3x3 part (direction x spacing), in mm per voxel."""
TRANSLATION_ATOL_MM = 1e-2
"""Tolerance on the affine's origin, in mm."""
_PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""A patient id becomes a folder name under volumes/: letters, digits, '.', '_', '-', no '..'."""

RAW_COHORT_COLUMNS = [
    "cohort", "patient_id", "subject_id", "image_sha256", "layout", "status", "problems",
    *(f"{s}_path" for s in SEQUENCES), "labels_path", "label_scheme",
    "shape_x", "shape_y", "shape_z", "spacing_x_mm", "spacing_y_mm", "spacing_z_mm",
    "orientation", "dtype", "has_labels", "labels_empty",
    "voxels_necrotic_core", "voxels_edema", "voxels_enhancing", "sequences",
]  # fmt: skip


def _name(source: Source) -> str:
    return source.name if isinstance(source, Path) else str(source)


def _load(source: Source, converted: Path | None) -> tuple[nib.Nifti1Image, np.ndarray, Path]:
    """Read a source fully (so truncation is noticed); a non-NIfTI source is written as NIfTI at
    `converted`. Returns (image, array, the NIfTI file later stages read)."""
    img, data = load_source(source)
    if is_nifti(source):
        return img, data, Path(source)
    if converted is None:
        raise ValueError("a non-NIfTI source needs a folder to convert into (converted_dir)")
    return img, data, write_converted(img, data, converted)


def _same_grid(affine: np.ndarray, reference: np.ndarray) -> bool:
    return np.allclose(affine[:3, :3], reference[:3, :3], atol=ROTATION_ATOL) and np.allclose(
        affine[:3, 3], reference[:3, 3], atol=TRANSLATION_ATOL_MM
    )


def _hash_array(digest: "hashlib._Hash", seq: str, data: np.ndarray) -> None:
    """Feed one decoded volume (little-endian, C order) with its name, dtype and shape to `digest`."""
    array = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    digest.update(f"{seq}|{array.dtype.str}|{array.shape}\n".encode())
    digest.update(array.tobytes())


def _escaping(files: PatientFiles, cohort_dir: Path | None, allowed: Sequence[Path]) -> list[str]:
    if cohort_dir is None:
        return []
    named = [*(f"{s}" for s in files.images), *(["labels"] if files.labels else [])]
    sources = [*files.images.values(), *([files.labels] if files.labels else [])]
    problems = []
    for what, source in zip(named, sources):
        for path in source_files(source):
            if (real := outside(path, cohort_dir, allowed)) is not None:
                problems.append(f"{what}: file {path} resolves to {real}, outside the cohort folder {cohort_dir}")
                break
    return problems


def validate_patient(
    cohort: str,
    files: PatientFiles,
    layout: str,
    cohort_dir: Path | None = None,
    allowed: Sequence[Path] = (),
    subject_id: str | None = None,
    converted_dir: Path | None = None,
) -> dict:
    """Check one patient's files and describe them as a `raw_cohort` row (see RAW_COHORT_COLUMNS).

    Args:
        cohort_dir: when given, every file must resolve inside it (or inside `allowed`); a file
            that does not is a problem and is not read.
        subject_id: the declared subject id; default `sha256:<16 hex>` of the images.
        converted_dir: where non-NIfTI sources are written as NIfTI (`<converted_dir>/<patient>/`).
    """
    problems = list(files.problems)
    row: dict = {"cohort": cohort, "patient_id": files.patient_id, "layout": layout}
    row.update({f"{s}_path": str(files.images[s]) if s in files.images else None for s in SEQUENCES})
    row.update(labels_path=str(files.labels) if files.labels else None, label_scheme=files.label_scheme)
    row["sequences"] = ",".join(s for s in SEQUENCES if s in files.images)
    out = converted_dir / files.patient_id if converted_dir is not None and _PATIENT_ID.match(files.patient_id) else None
    if ".." in files.patient_id or not _PATIENT_ID.match(files.patient_id):
        first = next(iter(files.images.values()), files.labels)
        problems.append(f"invalid patient id {files.patient_id!r}{f' (file {first})' if first else ''}: use 1-128 letters, "
                        "digits, '.', '_' or '-', starting with a letter or digit")  # fmt: skip
    escaping = _escaping(files, cohort_dir, allowed)
    if escaping:  # nothing outside the cohort folder is read
        row.update(problems="; ".join([*problems, *escaping]), status="excluded", subject_id=subject_id,
                   image_sha256=None, has_labels=files.labels is not None, labels_empty=False, dtype="")  # fmt: skip
        return row
    reference: nib.Nifti1Image | None = None
    dtypes = []
    digest, hashed = hashlib.sha256(), 0
    for seq in SEQUENCES:
        source = files.images.get(seq)
        if source is None:
            continue
        path = Path(_name(source))
        try:
            img, data, nifti = _load(source, out / f"{seq}.nii.gz" if out else None)
        except Exception as exc:  # nibabel/ITK/Pillow raise many types for truncated/corrupt files
            problems.append(f"{seq}: unreadable file {_name(source)} ({type(exc).__name__}: {exc})")
            continue
        row[f"{seq}_path"] = str(nifti)
        _hash_array(digest, seq, data)
        hashed += 1
        dtypes.append(f"{seq}:{img.get_data_dtype()}")
        if not np.issubdtype(data.dtype, np.integer):
            bad = int(np.count_nonzero(~np.isfinite(data)))
            if bad:
                problems.append(f"{seq}: {bad} NaN or infinite voxels in {path.name}")
        if reference is None:
            reference = img
            row.update(zip(("shape_x", "shape_y", "shape_z"), map(int, data.shape)))
            row.update(zip(("spacing_x_mm", "spacing_y_mm", "spacing_z_mm"), map(float, img.header.get_zooms()[:3])))
            row["orientation"] = "".join(nib.aff2axcodes(img.affine))
        elif data.shape != reference.shape[:3]:
            problems.append(f"{seq}: shape {data.shape} of {path.name} differs from {reference.shape[:3]}")
        elif not _same_grid(img.affine, reference.affine):
            problems.append(f"{seq}: affine of {path.name} differs from the other sequences")
    row["dtype"] = ",".join(dtypes)
    row["image_sha256"] = digest.hexdigest() if hashed and hashed == len(files.images) else None
    row["subject_id"] = subject_id or (f"sha256:{row['image_sha256'][:16]}" if row["image_sha256"] else None)
    row["has_labels"] = files.labels is not None
    row["labels_empty"] = False
    if files.labels is not None:
        problems += _check_labels(files, reference, row, out)
    row["problems"] = "; ".join(problems)
    row["status"] = "excluded" if problems else "ok"
    return row


def _check_labels(files: PatientFiles, reference: nib.Nifti1Image | None, row: dict, out: Path | None) -> list[str]:
    path = Path(_name(files.labels))
    try:
        img, data, nifti = _load(files.labels, out / "labels.nii.gz" if out else None)
    except Exception as exc:
        return [f"labels: unreadable file {_name(files.labels)} ({type(exc).__name__}: {exc})"]
    row["labels_path"] = str(nifti)
    if reference is not None and data.shape != reference.shape[:3]:
        return [f"labels: shape {data.shape} of {path.name} differs from the images' {reference.shape[:3]}"]
    if reference is not None and not _same_grid(img.affine, reference.affine):
        return [f"labels: affine of {path.name} differs from the images'"]
    try:
        canonical = to_canonical(data, files.label_scheme, source=str(files.labels))
    except (LabelError, KeyError) as exc:
        return [f"labels: {exc}"]
    counts = label_counts(canonical)
    row.update(voxels_necrotic_core=counts[1], voxels_edema=counts[2], voxels_enhancing=counts[3])
    row["labels_empty"] = counts[1] + counts[2] + counts[3] == 0
    return []


def _exclude(row: dict, problem: str) -> None:
    row["problems"] = "; ".join(filter(None, [problem, row["problems"]]))
    row["status"] = "excluded"


def validate_scan(
    cohort: str,
    scan: CohortScan,
    cohort_dir: Path | None = None,
    allowed: Sequence[Path] = (),
    subject_ids: Mapping[str, str] | None = None,
    converted_dir: Path | None = None,
) -> pd.DataFrame:
    """Validate every patient of a scan (see `validate_patient` for the arguments).

    Duplicate patient ids exclude every copy; so do identical images under different ids
    (each copy names the others). Empty scan: an empty table with RAW_COHORT_COLUMNS.
    """
    subject_ids = subject_ids or {}
    duplicates = {pid for pid, n in Counter(p.patient_id for p in scan.patients).items() if n > 1}
    rows = [
        validate_patient(cohort, files, scan.layout, cohort_dir, allowed,
                         subject_ids.get(files.patient_id) or files.subject_id, converted_dir)
        for files in scan.patients
    ]
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("image_sha256"):
            by_image.setdefault(row["image_sha256"], []).append(row)
    for row in rows:
        if row["patient_id"] in duplicates:
            _exclude(row, f"duplicate patient id {row['patient_id']!r}")
        twins = [r["patient_id"] for r in by_image.get(row.get("image_sha256") or "", []) if r is not row]
        if twins:
            files = next((str(row[f"{s}_path"]) for s in SEQUENCES if row[f"{s}_path"]), "")
            _exclude(row, f"identical images to patient(s) {', '.join(map(repr, twins))} "
                          f"(image_sha256 {row['image_sha256'][:16]}, e.g. {files})")  # fmt: skip
    return pd.DataFrame(rows, columns=RAW_COHORT_COLUMNS).astype(
        {c: "Int64" for c in RAW_COHORT_COLUMNS if c.startswith(("shape_", "voxels_"))}
    )


def declared_subject_ids(cohort_dir: Path) -> dict[str, str]:
    """cohort.yaml's optional `subject_ids` mapping (patient id -> subject id); {} when absent.

    Raises:
        LayoutError: `subject_ids` is not a mapping of strings.
    """
    declared = read_cohort_yaml(cohort_dir).get("subject_ids") or {}
    if not isinstance(declared, dict) or not all(isinstance(v, (str, int)) for v in declared.values()):
        raise LayoutError(f"{cohort_dir / COHORT_YAML}: subject_ids must map patient ids to subject ids")
    return {str(k): str(v) for k, v in declared.items()}


def validate_cohort(cohort: str, cohort_dir: Path, allowed: Sequence[Path] = (), converted_dir: Path | None = None) -> pd.DataFrame:
    """Scan `cohort_dir` with the layout that recognises it and validate every patient.

    Args:
        allowed: directories outside the cohort folder that its files may resolve into (the
            operator's allowance; see `confine`).
        converted_dir: where non-NIfTI sources are written as NIfTI; None: such a source is a
            patient problem.

    Raises:
        LayoutError: the folder is missing, empty, or matches no layout, or cohort.yaml is
            malformed or names a path outside the folder (the whole cohort cannot be read; the
            message names the folder or the path).
    """
    scan = scan_cohort(cohort_dir)
    return validate_scan(cohort, scan, cohort_dir, allowed, declared_subject_ids(cohort_dir), converted_dir)


def sequence_counts(table: pd.DataFrame) -> dict[str, int]:
    """Valid patients per sequence ({sequence: count}, every sequence listed; zeros for an empty table)."""
    ok = table[table["status"] == "ok"]
    return {s: int(ok[f"{s}_path"].notna().sum()) for s in SEQUENCES}


def problems_markdown(table: pd.DataFrame, limit: int = 50) -> str:
    """A markdown table of excluded patients and their problems (for asset metadata)."""
    bad = table[table["status"] != "ok"]
    if bad.empty:
        return "No problems: every patient passed validation."
    lines = ["| patient | problems |", "|---|---|"]
    lines += [f"| {r.patient_id} | {str(r.problems).replace('|', '/')} |" for r in bad.head(limit).itertuples()]
    if len(bad) > limit:
        lines.append(f"| ... | {len(bad) - limit} more excluded patients |")
    return "\n".join(lines)
