"""Tests of a benchmark run end to end and its measurement phase (benchmarks/run/)."""
