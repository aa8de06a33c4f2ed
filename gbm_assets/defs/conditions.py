"""Declarative automation conditions shared by the stages' assets."""

import dagster as dg

EAGER = dg.AutomationCondition.eager()
"""For an asset that should follow its upstream without a click: materialize a partition when
an upstream partition updates (once none is missing or in progress). Assets run in the same
run as their upstream are not requested again. Use as `automation_condition=EAGER`."""

MODEL_ASSETS = ("unet_model", "unet_champion", "subtype_classifier", "subtype_champion")
EAGER_EXCEPT_MODELS = dg.AutomationCondition.eager().ignore(dg.AssetSelection.keys(*MODEL_ASSETS))
"""`EAGER`, except that a retrained model does not trigger it: a per-cohort asset that uses a
model follows its cohort inputs, while re-scoring every cohort with new champions is the
nightly schedule's job (a trained model is not necessarily the champion)."""
