"""Tests of the search, its trials and its distributed mode (benchmarks/search/)."""
