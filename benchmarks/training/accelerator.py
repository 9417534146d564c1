"""What a training runs on: GPUs, mixed precision, XLA, data parallelism and CPU threads,
on the run's Keras backend (``benchmarks.runtime.backends``)."""

from __future__ import annotations

from typing import Any

import keras

from benchmarks.budget import Budget, BudgetError
from benchmarks.runtime import backends

BFLOAT16_CAPABILITY = (8, 0)  # bfloat16 arithmetic on NVIDIA GPUs: Ampere and later


def apply_accelerator(budget: Budget) -> dict[str, Any]:
    """Resolve the budget's accelerator fields on this machine; set the process-wide ones
    (the dtype policy; on JAX, data parallelism).

    Returns:
        What is in effect, for the manifest: backend, GPUs seen, mixed precision (the
        policy's name), XLA, data parallelism.

    Raises:
        BudgetError: bfloat16 asked for on a GPU without bfloat16 arithmetic.
    """
    backend = backends.current()
    gpus = backends.gpus()
    policy = precision_policy(budget.mixed_precision, [cc for _, cc in gpus])
    keras.mixed_precision.set_global_policy(policy)
    if backend == backends.JAX:
        xla = True  # JAX compiles everything with XLA (--xla off is refused for it)
    elif budget.xla == "auto":  # Keras' own rule for jit_compile="auto"
        xla = bool(gpus) and budget.distribute == "none"
    else:
        xla = budget.xla == "on"
    if budget.distribute == "mirrored" and backend == backends.JAX:
        backends.data_parallel(budget.batch_size)  # set once, for every training
    return {"backend": backend, "gpus": len(gpus), "gpu_names": [name for name, _ in gpus],
            "mixed_precision": policy != "float32", "policy": policy, "xla": xla,
            "distribute": budget.distribute}


def precision_policy(setting: str, capabilities: list[tuple[int, int]]) -> str:
    """The Keras dtype policy of a ``mixed_precision`` setting on GPUs of these compute
    capabilities (none: CPU). ``auto``: float16 with a GPU of capability 7.0 or more."""
    if setting == "bfloat16":
        old = [cc for cc in capabilities if cc < BFLOAT16_CAPABILITY]
        if old:
            raise BudgetError(f"--mixed-precision bfloat16 needs a GPU of compute capability "
                              f"8.0 or more; this one has {'.'.join(map(str, old[0]))}")
        return "mixed_bfloat16"
    mixed = setting == "on" or (setting == "auto" and any(cc >= (7, 0) for cc in capabilities))
    return "mixed_float16" if mixed else "float32"


def distribution_strategy(budget: Budget):
    """The ``tf.distribute`` strategy one training runs under (TensorFlow, ``mirrored``:
    every visible GPU); None otherwise (JAX's data parallelism is process-wide)."""
    if budget.distribute != "mirrored" or backends.current() == backends.JAX:
        return None
    return backends.data_parallel(budget.batch_size)
