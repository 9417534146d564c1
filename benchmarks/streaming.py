"""The training input: batches of images and labels, from arrays in memory or lazy ``Rows``.

Every ``model.fit`` of the suite reads ``Batches``, on every Keras backend. Training batches
are all full (one traced training step, no partial last batch to trace and run apart), in a
new order each epoch; validation and prediction batches cover every image in order.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from benchmarks.rows import Rows


class Batches(keras.utils.PyDataset):
    """Batches of (images, labels) from an array or ``Rows``.

    With ``shuffle`` (training): epoch ``e`` reads a permutation drawn from ``(seed, e)``,
    where ``seed`` comes from NumPy's global generator when the object is made (the trial's
    seed sets it, so a repeated trial reads the same batches), cut into whole batches; the
    fewer than ``batch_size`` images that permutation leaves over sit out that epoch only.
    Without: every image in order, the last batch partial.
    """

    def __init__(self, images: Rows | np.ndarray, labels: np.ndarray | None, batch_size: int,
                 shuffle: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.count = len(images)
        self.batch_size = min(batch_size, self.count) if shuffle else batch_size
        self.shuffle = shuffle
        self.seed = int(np.random.randint(2**31)) if shuffle else 0
        self.epoch = 0
        self.order = self.epoch_order(0)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The images of epoch ``epoch``, in the order they are read."""
        if not self.shuffle:
            return np.arange(self.count)
        permutation = np.random.default_rng([self.seed, epoch]).permutation(self.count)
        return permutation[:len(self) * self.batch_size]

    def __len__(self) -> int:
        if self.shuffle:
            return self.count // self.batch_size
        return math.ceil(self.count / self.batch_size)

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.labels is None:
            return self.images[chosen]
        return self.images[chosen], self.labels[chosen]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self.epoch_order(self.epoch)


def fit_arguments(args: tuple, kwargs: dict[str, Any], batch_size: int) -> tuple[tuple, dict]:
    """``model.fit``'s arguments with the training images and labels (and validation data
    given as a pair) turned into ``Batches``."""
    (images, labels, *rest), kwargs = args, dict(kwargs)
    validation = kwargs.get("validation_data")
    if isinstance(validation, tuple) and len(validation) == 2:
        kwargs["validation_data"] = Batches(validation[0], validation[1], batch_size)
    kwargs["shuffle"] = False  # Batches shuffles the images; Keras would only reorder batches
    kwargs.pop("batch_size", None)
    return (Batches(images, labels, batch_size, shuffle=True), *rest), kwargs


def predict(model: keras.Model, images, batch_size: int) -> np.ndarray:
    """``model.predict`` over arrays or streamed ``Rows``."""
    if isinstance(images, Rows):
        images = Batches(images, None, batch_size)
    return model.predict(images, batch_size=None if isinstance(images, Batches) else batch_size,
                         verbose=0)
