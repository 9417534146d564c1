"""``archbench check NAME``: validate one architecture in seconds, before any budget is spent."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import keras_tuner as kt
import numpy as np

from benchmarks.budget import make_budget
from benchmarks.rundir import format_hyperparameters, one_line
from benchmarks.training.measure import inference_speed
from benchmarks.training.recipe import SuiteHyperModel, check_model
from models.registry import Architecture

SAMPLES = 3
CHECK_BATCH = 16


class CheckFailed(Exception):
    """The architecture cannot be benchmarked; the message says why."""


def sample_hyperparameters(
    architecture: Architecture, input_shape, num_classes: int, seed: int
) -> kt.HyperParameters:
    """Random values for every hyperparameter the architecture declares at its defaults."""
    space = kt.HyperParameters()
    architecture.build(space, input_shape, num_classes)
    hp = kt.HyperParameters()
    for i, param in enumerate(space.space):
        hp.values[param.name] = param.random_sample(seed * 1000 + i)
    return hp


def check_architecture(
    architecture: Architecture, shape: tuple[int, int, int], classes: int,
    report: Callable[[str], None] = print,
) -> None:
    """Build at the defaults and at sampled hyperparameters, train one step, time a forward.

    Raises:
        CheckFailed: naming the step that failed and its error.
    """
    candidates = [("default hyperparameters", kt.HyperParameters())]
    for seed in range(1, SAMPLES + 1):
        try:
            hp = sample_hyperparameters(architecture, shape, classes, seed)
        except Exception as exc:  # noqa: BLE001 - reported as the check's verdict
            raise CheckFailed(f"build at default hyperparameters failed: {one_line(exc)}") from exc
        candidates.append((f"sample {seed} ({format_hyperparameters(hp.values)})", hp))
    model = None
    for label, hp in candidates:
        keras.backend.clear_session()
        try:
            model = architecture.build(hp, shape, classes)
            check_model(model, architecture.name, classes)
        except Exception as exc:  # noqa: BLE001
            raise CheckFailed(f"{label}: {one_line(exc)}") from exc
        report(f"  {label}: ok, {model.count_params():,} parameters, output {model.output_shape}")

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((CHECK_BATCH, *shape), dtype=np.float32)
    y = np.arange(CHECK_BATCH) % classes
    try:
        compiled = SuiteHyperModel(architecture, shape, classes, make_budget("smoke")).build(
            kt.HyperParameters()
        )
        loss = float(compiled.train_on_batch(x, y, return_dict=True)["loss"])
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"training step failed: {one_line(exc)}") from exc
    if not math.isfinite(loss):
        raise CheckFailed(f"training step gave a non-finite loss ({loss})")
    report(f"  one training step: loss {loss:.4f}")
    latency_ms, _, _ = inference_speed(compiled, x)
    report(f"  forward latency at batch 1: {latency_ms:.2f} ms")

