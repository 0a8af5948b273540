"""Reports that read a run: progress, the front table and plot, show, runs."""
