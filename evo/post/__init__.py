"""Post-search steps: retrain, export of a run, bench of a run, import."""
