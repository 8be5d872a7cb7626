"""Evaluation: metrics as small pure functions (metrics.py) and the evaluation modes."""
