"""The training input: batches of images and labels, from arrays in memory or lazy ``Rows``.

Every ``model.fit`` of the suite reads ``Batches``, on every Keras backend. Training batches
are all full (one traced training step, no partial last batch to trace and run apart), in a
new order each epoch; validation and prediction batches cover every image in order. On
TensorFlow, training arrays held in memory reach ``fit`` as a tf.data pipeline of such
batches instead (``tensorflow_pipeline``), and validation arrays as arrays.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import keras
import numpy as np

from benchmarks.data.rows import Rows
from benchmarks.runtime import backends

PIPELINE_EPOCHS = 2**62  # epochs a training pipeline serves: more than any training runs
_HELD: dict[tuple[int, int], tuple[Any, Any]] = {}  # (images, labels) ids: their tensors


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
    given as a pair) turned into ``Batches``; on TensorFlow, arrays in memory are read
    through ``tensorflow_pipeline`` (with ``steps_per_epoch``: its batches of one epoch)
    and a validation pair is left to Keras, in batches of ``batch_size``."""
    (images, labels, *rest), kwargs = args, dict(kwargs)
    validation = kwargs.get("validation_data")
    pair = isinstance(validation, tuple) and len(validation) == 2
    kwargs["shuffle"] = False  # Batches shuffles the images; Keras would only reorder batches
    kwargs.pop("batch_size", None)
    batches = Batches(images, labels, batch_size, shuffle=True)
    if not read_by_tensorflow(images):
        if pair:
            kwargs["validation_data"] = Batches(validation[0], validation[1], batch_size)
        return (batches, *rest), kwargs
    if pair and isinstance(validation[0], Rows):
        kwargs["validation_data"] = Batches(validation[0], validation[1], batch_size)
    elif pair:
        kwargs["validation_batch_size"] = batch_size
    kwargs["steps_per_epoch"] = len(batches)
    return (tensorflow_pipeline(batches), *rest), kwargs


def read_by_tensorflow(images) -> bool:
    """Whether a training on ``images`` reads them through ``tensorflow_pipeline``: arrays
    in memory on TensorFlow (``Rows``, and every split on another backend, are read as
    ``Batches``)."""
    return backends.current() == backends.TENSORFLOW and not isinstance(images, Rows)


def prepare(images, labels) -> None:
    """Make what a training on this split will read before it starts (call it outside any
    block that measures the training): TensorFlow's copy of arrays in memory (``hold``)."""
    if read_by_tensorflow(images):
        hold(images, labels)


def tensorflow_pipeline(batches: Batches):
    """The training batches of ``batches`` (arrays in memory), epoch after epoch, as a
    tf.data pipeline with no Python in it, as Keras builds one for arrays: epoch ``e``
    reads TensorFlow's stateless permutation of ``(seed, e)`` (``Batches.seed``: the
    trial's seed fixes it), cut into ``len(batches)`` whole batches, each gathered from
    one tensor of the images by tf.data's threads. Fit it with ``steps_per_epoch=
    len(batches)``: the pipeline does not end.

    Why not the ``PyDataset``: Keras reads one through a Python generator in tf.data's
    threads, and a pipeline calling Python (even once an epoch) stays costly after its
    training: it slows the process's later trainings and speed measurements, and freeing
    it takes long (see docs/results/performance.md).
    """
    import tensorflow as tf

    whole, size = len(batches), batches.batch_size
    seed = tf.constant(batches.seed, tf.int64)

    def order(epoch):
        permutation = tf.random.experimental.stateless_shuffle(
            tf.range(batches.count, dtype=tf.int64), tf.stack([seed, epoch]))
        return tf.reshape(permutation[:whole * size], (whole, size))

    orders = tf.data.Dataset.range(PIPELINE_EPOCHS).map(order).prefetch(1)
    indices = orders.flat_map(tf.data.Dataset.from_tensor_slices)
    arrays = tf.data.Dataset.from_tensors(hold(batches.images, batches.labels)).repeat()
    pipeline = tf.data.Dataset.zip((indices, arrays)).map(
        lambda index, data: (tf.gather(data[0], index), tf.gather(data[1], index)),
        num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # as Keras' own: no static rewrites (each would re-serialize the pipeline per fit)
    options.experimental_optimization.apply_default_optimizations = False
    # No autotuning thread. The pipeline's iterator lives until the garbage collector frees
    # it, and freeing it waits for that thread to join, so a collection that falls inside a
    # later training or test pass blocks it. Without the thread tf.data fixes the AUTOTUNE
    # values above (the cores; a prefetch buffer that grows while training waits), which
    # trains as fast (see docs/results/performance.md).
    options.autotune.enabled = False
    return pipeline.with_options(options).prefetch(tf.data.AUTOTUNE)


def hold(images: np.ndarray, labels: np.ndarray):
    """TensorFlow's copy of a training split (arrays in memory), made once and kept while
    the arrays live: every training of the split reads it (a copy per training would cost
    its time and, inside a training whose memory is measured, its memory; call this before
    such a block)."""
    key = (id(images), id(labels))
    if key not in _HELD:
        import tensorflow as tf

        _HELD[key] = (tf.convert_to_tensor(images), tf.convert_to_tensor(labels))
        for array in (images, labels):
            weakref.finalize(array, _HELD.pop, key, None)
    return _HELD[key]


def predict(model: keras.Model, images, batch_size: int) -> np.ndarray:
    """``model.predict`` over arrays or streamed ``Rows``."""
    if isinstance(images, Rows):
        images = Batches(images, None, batch_size)
    return model.predict(images, batch_size=None if isinstance(images, Batches) else batch_size,
                         verbose=0)
