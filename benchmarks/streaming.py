"""Streamed splits as Keras input: batches read from lazy ``Rows`` while the model trains.

Used only when a run's splits are streamed (``Splits.streamed``); arrays in memory go to
Keras as they are, so a run that fits in memory is not changed by this module.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from benchmarks.rows import Rows


class Batches(keras.utils.PyDataset):
    """Batches of (images, labels) read from ``Rows``; with ``shuffle``, a new order each
    epoch, drawn from NumPy's global generator when the object is made (the trial's seed
    sets it, so a repeated trial reads the same batches)."""

    def __init__(self, images: Rows, labels: np.ndarray | None, batch_size: int,
                 shuffle: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.shuffle = shuffle
        self.rng = np.random.default_rng(np.random.randint(2**31)) if shuffle else None
        self.order = self._order()

    def _order(self) -> np.ndarray:
        count = len(self.images)
        return self.rng.permutation(count) if self.shuffle else np.arange(count)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.labels is None:
            return self.images[chosen]
        return self.images[chosen], self.labels[chosen]

    def on_epoch_end(self) -> None:
        self.order = self._order()


def fit_arguments(args: tuple, kwargs: dict[str, Any], batch_size: int) -> tuple[tuple, dict]:
    """``model.fit``'s arguments with streamed ``Rows`` (training and validation) turned
    into ``Batches``; arrays are passed through, with the batch size."""
    if not args or not isinstance(args[0], Rows):
        return args, {**kwargs, "batch_size": batch_size}
    (images, labels, *rest), kwargs = args, dict(kwargs)
    validation = kwargs.get("validation_data")
    if validation is not None and isinstance(validation[0], Rows):
        kwargs["validation_data"] = Batches(validation[0], validation[1], batch_size)
    kwargs["shuffle"] = False  # Batches shuffles the images; Keras would only reorder batches
    return (Batches(images, labels, batch_size, shuffle=True), *rest), kwargs


def predict(model: keras.Model, images, batch_size: int) -> np.ndarray:
    """``model.predict`` over arrays or streamed ``Rows``."""
    if isinstance(images, Rows):
        images = Batches(images, None, batch_size)
    return model.predict(images, batch_size=None if isinstance(images, Batches) else batch_size,
                         verbose=0)
