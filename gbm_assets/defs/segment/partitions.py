"""The 2D model inputs as static partitions: t1, t1c, t2, flair and the 3-channel stack."""

import dagster as dg

from gbm_assets.lib.preprocess.slices import INPUTS

model_inputs_partitions = dg.StaticPartitionsDefinition(list(INPUTS))
