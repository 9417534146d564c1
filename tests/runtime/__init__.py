"""Tests of backends, start-up, signals, private names (benchmarks/runtime/)."""
