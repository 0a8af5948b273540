"""Multi-objective optimisation: NSGA-II, indicators, objectives and constraints.

Pure, never torch.
"""
