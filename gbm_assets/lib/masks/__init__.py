"""Masks: post-processing of predicted probabilities and the way back to each patient's native grid."""
