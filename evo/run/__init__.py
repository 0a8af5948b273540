"""The run folder: the only code that speaks SQL to run.db and knows the file layout of a run."""
