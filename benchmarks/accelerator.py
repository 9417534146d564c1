"""What a training runs on: GPUs, mixed precision, XLA, tf.distribute and CPU threads."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from benchmarks.budget import Budget


def apply_accelerator(budget: Budget) -> dict[str, Any]:
    """Resolve the budget's accelerator fields on this machine; set the process-wide one.

    Returns:
        What is in effect, for the manifest: GPUs seen, mixed precision, XLA, strategy.
    """
    gpus = tf.config.list_physical_devices("GPU")
    mixed = budget.mixed_precision == "on" or (
        budget.mixed_precision == "auto" and any(_compute_capability(g) >= (7, 0) for g in gpus)
    )
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if budget.xla == "auto":  # Keras' own rule for jit_compile="auto"
        xla = bool(gpus) and budget.distribute == "none"
    else:
        xla = budget.xla == "on"
    return {"gpus": len(gpus), "mixed_precision": mixed, "xla": xla,
            "distribute": budget.distribute}


def _compute_capability(gpu) -> tuple[int, int]:
    details = tf.config.experimental.get_device_details(gpu)
    return tuple(details.get("compute_capability") or (0, 0))


def distribution_strategy(budget: Budget) -> tf.distribute.Strategy | None:
    """The strategy one training runs under: MirroredStrategy over every visible GPU."""
    return tf.distribute.MirroredStrategy() if budget.distribute == "mirrored" else None


def set_threads(threads: int | None) -> None:
    """Limit TensorFlow's threads (workers sharing a CPU split its cores between them)."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
