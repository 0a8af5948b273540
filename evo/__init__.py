"""evo: grammatical evolution + NSGA-II for mobile-size CNNs, exported to the edge."""

__version__ = "0.1.0"
