"""Tests of the commands (benchmarks/cli/)."""
