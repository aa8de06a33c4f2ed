"""Segment: per-input U-Nets, the champion alias and segmentation metrics, per model input."""
