"""The benchmark harness: data, budget, tuning, measurement, results files and W&B."""
