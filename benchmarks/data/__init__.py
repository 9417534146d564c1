"""Data: the Dataset, its sources (built-in, CIFAR, folders, npz), rows read lazily, the input."""
