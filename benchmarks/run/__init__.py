"""A benchmark run: the loop over architectures, one architecture's life, workers, the manifest."""
