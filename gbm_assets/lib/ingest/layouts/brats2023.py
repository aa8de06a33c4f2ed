"""BraTS 2023-2024 naming: `<cohort>/<case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz`.

`<case>` is `BraTS-<GLI|MEN|MET|PED|SSA>-<patient>-<timepoint>`, e.g. `BraTS-GLI-00001-000`. The
mask (`-seg`) is optional and uses the 2023 labels 1 NETC, 2 SNFH (edema), 3 ET (scheme `brats2023`).
"""

from __future__ import annotations

import re
from pathlib import Path

from gbm_assets.lib.ingest.layouts.base import register
from gbm_assets.lib.ingest.layouts.brats import SuffixLayout, _nifti

BRATS2023_SUFFIXES = {"t1n": "t1", "t1c": "t1c", "t2w": "t2", "t2f": "flair"}
CASE = re.compile(r"^BraTS-(GLI|MEN|MET|PED|SSA)-\d+-\d+$", re.IGNORECASE)


@register
class Brats2023Layout(SuffixLayout):
    name = "brats2023"
    suffixes = BRATS2023_SUFFIXES
    separator = "-"
    label_scheme = "brats2023"
    described = "BraTS 2023-named"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        return any(
            CASE.match(d.name) and any(_nifti(d, f"{d.name}-{s}") for s in BRATS2023_SUFFIXES)
            for d in cohort_dir.iterdir()
            if d.is_dir()
        )
