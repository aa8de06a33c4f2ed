"""Medical Segmentation Decathlon split channels: `<case>_0000.nii.gz` ... + `<case>_labels.nii.gz`.

The channel order comes from `dataset.json`'s `modality` map (beside the case files, or at the
cohort root), e.g. Task01: 0 FLAIR, 1 T1w, 2 T1gd, 3 T2w. Labels use the MSD Task01 scheme. Case
files may sit directly in the cohort folder or in one sub-folder per case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gbm_assets.lib.contract import canonical_sequence
from gbm_assets.lib.ingest.layouts.base import CohortScan, LayoutError, LayoutReader, PatientFiles, register

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii(\.gz)?$")


def channel_order(dataset_json: Path) -> dict[int, str]:
    """Channel index -> canonical sequence, from an MSD `dataset.json`.

    Raises:
        LayoutError: unreadable file, no `modality` (or `channel_names`) map, or a modality
            name that is not a known sequence.
    """
    try:
        meta = json.loads(dataset_json.read_text())
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{dataset_json}: cannot read dataset.json ({exc})") from exc
    modalities = meta.get("modality") or meta.get("channel_names")
    if not isinstance(modalities, dict):
        raise LayoutError(f"{dataset_json}: no 'modality' map giving the channel order")
    try:
        return {int(k): canonical_sequence(str(v)) for k, v in modalities.items()}
    except KeyError as exc:
        raise LayoutError(f"{dataset_json}: {exc.args[0]}") from None


@register
class MsdLayout(LayoutReader):
    name = "msd"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        has_json = (cohort_dir / "dataset.json").is_file() or any(cohort_dir.glob("*/dataset.json"))
        return has_json and next(cohort_dir.rglob("*_0000.nii*"), None) is not None

    def scan(self, cohort_dir: Path) -> CohortScan:
        patients = []
        cases: dict[tuple[Path, str], dict[int, Path]] = {}
        for path in sorted(cohort_dir.rglob("*.nii*")):
            if m := _CHANNEL.match(path.name):
                cases.setdefault((path.parent, m["case"]), {})[int(m["channel"])] = path
        for (folder, case), channels in sorted(cases.items(), key=lambda kv: kv[0][1]):
            meta = folder / "dataset.json"
            order = channel_order(meta if meta.is_file() else cohort_dir / "dataset.json")
            images, problems = {}, []
            for index, path in sorted(channels.items()):
                if index in order:
                    images[order[index]] = path
                else:
                    problems.append(f"channel file {path.name} has no modality in dataset.json")
            labels = next((p for p in (folder / f"{case}_labels.nii.gz", folder / f"{case}_labels.nii") if p.is_file()), None)
            patients.append(PatientFiles(case, images, labels, "msd", (*self.missing(images, folder), *problems)))
        return CohortScan(self.name, patients)
