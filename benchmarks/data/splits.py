"""The split of a dataset into what a run trains, validates and tests on, stratified by
class and drawn from the budget's seed; held in memory or read batch by batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from benchmarks.data.dataset import Dataset, Notice
from benchmarks.data.rows import STREAM_SHARE, Rows, available_memory, should_stream, to_float

MAX_VALIDATION_SHARE = 0.2  # of the training set, when a budget asks for more than there is


@dataclass
class Splits:
    """The arrays of one benchmark run, as float32 images in [0, 1] with a channel axis."""

    x_tune: np.ndarray  # or lazy ``Rows`` when ``streamed``
    y_tune: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_final: np.ndarray
    y_final: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = ()
    streamed: bool = False  # images are lazy ``Rows`` read batch by batch, not arrays
    mirror_invariant: bool = False  # the dataset's: flips may augment
    index_hash: str = ""  # SHA-256 of the tuning, validation and final training indices

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_tune.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {
            "tune": len(self.y_tune),
            "validation": len(self.y_val),
            "final_train": len(self.y_final),
            "test": len(self.y_test),
        }


def stratified_take(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` samples whose class proportions match ``labels``'s.

    Each class gets its proportional share, rounded down, and the samples left over go to
    the classes with the largest remainders, so class counts differ from exact
    proportions by less than one.
    """
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(int)
    leftover = size - quota.sum()
    quota[np.argsort(-(exact - quota), kind="stable")[:leftover]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def carve_test_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train indices, test indices) for a source without a test split."""
    test_idx = stratified_take(labels, max(1, round(len(labels) * fraction)),
                               np.random.default_rng(seed))
    return np.setdiff1d(np.arange(len(labels)), test_idx), test_idx


def fit_sizes(total: int, val_size: int, train_size: int, final_train_size: int,
              notice: Notice = print) -> tuple[int, int, int]:
    """The budget's split sizes, made to fit a dataset smaller than they assume.

    A budget's sizes are upper bounds: the validation split takes at most a fifth of the
    training set, and the tuning and final-training subsets at most what is left (then
    all of it). Every change is one notice line; the manifest records the sizes used.
    """
    changes = []
    if val_size > MAX_VALIDATION_SHARE * total:
        fitted = max(1, int(MAX_VALIDATION_SHARE * total))
        changes.append(f"val_size {val_size:,} -> {fitted:,}")
        val_size = fitted
    rest = total - val_size
    if train_size > rest:
        changes.append(f"train_size {train_size:,} -> all {rest:,}")
        train_size = 0
    if final_train_size > rest:
        changes.append(f"final_train_size {final_train_size:,} -> all {rest:,}")
        final_train_size = 0
    if changes:
        notice(f"archbench: the training set has {total:,} images, fewer than the budget "
               f"assumes: {', '.join(changes)}")
    return val_size, train_size, final_train_size


def make_splits(
    dataset: Dataset, val_size: int, train_size: int, final_train_size: int, seed: int,
    notice: Notice = print, input_mode: str = "auto",
) -> Splits:
    """Carve a stratified validation split from the training set with a fixed seed.

    The rest of the training set is the training split; ``train_size`` and
    ``final_train_size`` take stratified subsets of it for tuning and for the final
    training (0 = all of it); sizes larger than the data are fitted (``fit_sizes``). The
    test set is left whole and untouched. The splits are float32 arrays in memory, or,
    when ``input_mode`` asks for it or they would not fit (``should_stream``), lazy
    ``Rows`` of the dataset's own arrays that training reads batch by batch.
    """
    total = len(dataset.y_train)
    val_size, train_size, final_train_size = fit_sizes(
        total, val_size, train_size, final_train_size, notice)
    rest = total - val_size
    rng = np.random.default_rng(seed)
    val_idx = stratified_take(dataset.y_train, val_size, rng)
    train_idx = np.setdiff1d(np.arange(total), val_idx)
    y_rest = dataset.y_train[train_idx]
    tune_idx = train_idx[stratified_take(y_rest, train_size or rest, rng)]
    final_idx = train_idx[stratified_take(y_rest, final_train_size or rest, rng)]
    images = len(tune_idx) + len(val_idx) + len(final_idx) + len(dataset.y_test)
    # the float32 splits, and the copy of the final training split a TensorFlow training
    # holds (streaming.tensorflow_pipeline)
    split_bytes = (images + len(final_idx)) * int(np.prod(dataset.image_shape)) * 4
    available = available_memory()
    streamed = should_stream(input_mode, split_bytes, available)
    if streamed and input_mode == "auto":
        notice(f"archbench: the splits of {dataset.name} would take {split_bytes / 2**30:.1f} GiB "
               f"as float32 (with training's copy of the largest), more than {STREAM_SHARE:.0%} of the "
               f"{available / 2**30:.1f} GiB available; training reads them batch by batch "
               "from their source (--input memory to hold them)")
    pick = _streamed_images if streamed else _images
    return Splits(
        *pick(dataset.x_train, dataset.y_train, tune_idx),
        *pick(dataset.x_train, dataset.y_train, val_idx),
        *pick(dataset.x_train, dataset.y_train, final_idx),
        *pick(dataset.x_test, dataset.y_test, np.arange(len(dataset.y_test))),
        class_names=tuple(dataset.class_names),
        streamed=streamed,
        mirror_invariant=dataset.mirror_invariant,
        index_hash=_index_hash(tune_idx, val_idx, final_idx),
    )


def _index_hash(*indices: np.ndarray) -> str:
    """Which images each split took, as one SHA-256 (the same seed and data: the same hash)."""
    digest = hashlib.sha256()
    for idx in indices:
        digest.update(np.asarray(idx, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def _images(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images ``idx`` as float32 in memory (the whole test set keeps its own order)."""
    chosen = x if len(idx) == len(x) and (idx == np.arange(len(x))).all() else x[idx]
    return to_float(chosen), np.asarray(y[idx]).astype(np.int64)


def _streamed_images(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[Rows, np.ndarray]:
    """Images ``idx`` as lazy float32 rows of ``x``; the labels (small) in memory."""
    return Rows(x, idx, as_float=True), np.asarray(y[idx]).astype(np.int64)
