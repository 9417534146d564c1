"""The search: Keras Tuner's tuner, its per-trial hooks and its distributed mode."""
