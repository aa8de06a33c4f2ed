"""The demo's named jobs (`demo_prepare`, `demo_splits`, `demo_unet`, `demo_score`, `demo_classifier`,
`demo_predict`), in the code location so the UI's job pages and timeline show what `make demo` ran."""

import dagster as dg

from gbm_assets.demo import demo_jobs


@dg.definitions
def demo_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=demo_jobs())
