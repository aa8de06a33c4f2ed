"""Location: each patient's tumour regions localised in MNI152 space (Harvard-Oxford structures and lobes), per cohort."""
