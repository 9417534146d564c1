"""Datasets: the one shape every source fills, and its checks.

Every source (``benchmarks.data.sources``) yields a ``Dataset``: a name, class names, images
``(n, height, width, channels)`` as unsigned bytes or floats in [0, 1] (memory-mapped
arrays are fine), integer labels, where it came from and a fingerprint (checksums of its
source files) that the manifest records and the resume check compares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TEST_FRACTION = 0.2  # of a dataset without a test split, carved off as its test set
FINITE_CHECK_CHUNK = 4096  # images per np.isfinite pass: memory-mapped arrays stay on disk
Notice = Callable[[str], None]


class DataError(ValueError):
    """A dataset is missing, truncated or not what it claims to be."""


@dataclass(frozen=True)
class DataRequest:
    """What the user asked for: ``--dataset``, ``--data-dir``, ``--image-size``,
    ``--test-fraction`` (for sources without a test split of their own)."""

    name: str = "fashion_mnist"
    data_dir: Path | None = None
    image_size: tuple[int, int] | None = None  # folders: (height, width) to resize to
    test_fraction: float = TEST_FRACTION
    mirror_invariant: bool = False  # folders and arrays: the user says flips keep the class


@dataclass
class Dataset:
    """The checked arrays of one dataset and where they came from."""

    name: str
    class_names: tuple[str, ...]
    x_train: np.ndarray  # (n, height, width, channels), uint8 or float in [0, 1]
    y_train: np.ndarray  # (n,) integer labels
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    mirror_invariant: bool = False  # a mirrored image keeps its class: flips may augment

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def check_dataset(dataset: Dataset) -> None:
    """Check shapes, lengths, label range and finite values.

    Raises:
        DataError: naming the first problem.
    """
    name = dataset.name
    if dataset.num_classes < 2:
        raise DataError(f"{name} has {dataset.num_classes} class(es); a classifier needs 2 or more")
    for split in ("train", "test"):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if x.ndim != 4:
            raise DataError(f"{name} x_{split} has shape {x.shape}; expected (images, height, "
                            "width, channels)")
        if x.shape[1:] != dataset.x_train.shape[1:]:
            raise DataError(f"{name} x_{split} images are {x.shape[1:]}, the training images "
                            f"{dataset.x_train.shape[1:]}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{name} y_{split} has shape {y.shape} for {len(x):,} images")
        if not len(y):
            raise DataError(f"{name} has no {split} images")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name} y_{split} holds {y.dtype} values; labels must be integers")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= dataset.num_classes:
            raise DataError(f"{name} {split} labels reach {low if low < 0 else high}, beyond the "
                            f"{dataset.num_classes} classes (0 to {dataset.num_classes - 1})")
    for role in ("x_train", "x_test"):
        check_float_images(getattr(dataset, role), f"{name} {role}")


def check_float_images(array: np.ndarray, name: str) -> None:
    """Refuse float images holding NaN or infinite values, or values outside [0, 1],
    before any training sees them.

    A model fed such values may train to a finite, meaningless loss: some CPU kernels
    (oneDNN's fused ones) turn the NaN of ``inf - inf`` into zeros. Integer arrays (the
    IDX files' unsigned bytes) cannot hold NaN or infinity, so only floating-point
    arrays are scanned, in chunks so that a memory-mapped array is never read into
    memory whole.

    Raises:
        DataError: naming the array and how many of its values are not finite, or the
            range of its values.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad, low, high = 0, np.inf, -np.inf
    for start in range(0, len(array), FINITE_CHECK_CHUNK):
        chunk = np.asarray(array[start:start + FINITE_CHECK_CHUNK])
        finite = np.isfinite(chunk)
        bad += int(np.count_nonzero(~finite))
        if finite.any():
            low, high = min(low, float(chunk[finite].min())), max(high, float(chunk[finite].max()))
    if bad:
        raise DataError(f"{name} holds {bad:,} non-finite values (NaN or infinity)")
    if low < 0.0 or high > 1.0:
        raise DataError(f"{name} holds floats from {low:g} to {high:g}; images must be uint8 or "
                        "floats in [0, 1]")


