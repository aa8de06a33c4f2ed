"""Radiomics: PyRadiomics features (long, wide, exclusions, provenance) and tumour burden, per cohort."""
