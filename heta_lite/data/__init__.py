"""Data files shipped with the package (measured thresholds)."""
