"""Tests of W&B (benchmarks/tracking/)."""
