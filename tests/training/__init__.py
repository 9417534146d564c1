"""Tests of the recipe, its optimizer, the measurements, saved models (benchmarks/training/)."""
