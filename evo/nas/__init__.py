"""The NAS problem: training a phenotype and measuring it inside the search."""
