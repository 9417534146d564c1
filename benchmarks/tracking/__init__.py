"""Weights & Biases: one run per trial and per final training, and its epoch loggers."""
