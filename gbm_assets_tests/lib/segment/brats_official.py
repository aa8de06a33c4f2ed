"""Run under the official BraTS evaluation's own environment (.venv-brats; scripts/install_brats_eval.sh), not ours:

    .venv-brats/bin/python brats_official.py PRED.nii.gz REF.nii.gz [PRED REF ...]

Scores each (prediction, reference) pair of canonical label maps with panoptica and the `gli` configuration bundled in
brats-evaluation (what the BraTS glioma evaluation runs) and prints one JSON list: per pair, per region group (wt, tc,
et), the instance counts and lesion-wise figures test_lesions.py compares with lib/segment/lesions.py. Imports
nothing from gbm_assets (that environment does not have it).
"""

import contextlib
import io
import json
import sys
import warnings
from importlib.resources import files

warnings.filterwarnings("ignore")
with contextlib.redirect_stdout(io.StringIO()):  # panoptica prints a citation banner
    from panoptica import Panoptica_Evaluator

    evaluator = Panoptica_Evaluator.load_from_config(str(files("brats_evaluation").joinpath("configs", "config_gli.yaml")))


def number(value):
    return None if value is None or value != value else float(value)  # NaN -> null


scored = []
for pred, ref in zip(sys.argv[1::2], sys.argv[2::2]):
    with contextlib.redirect_stdout(io.StringIO()):
        results = evaluator.evaluate(pred, ref)
    scored.append({group: {key: number(r.to_dict(True).get(key)) for key in ("tp", "fp", "fn", "rq", "sq_dsc", "sq_hd95")}
                   for group, r in results.items() if group in ("wt", "tc", "et")})
print(json.dumps(scored))
