"""Synthetic data: the seeded GBM phantom cohort (anatomy + tumours) and assembly of the real cases in shared data."""
