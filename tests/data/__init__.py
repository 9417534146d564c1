"""Tests of datasets, their sources and the training input (benchmarks/data/)."""
