"""The measurement phase: the inference speeds of every saved final model, timed after the
last training in interleaved rounds (A, B, C, A, B, C, ...) so that a machine's drift
falls on all alike.

An architecture's results row is written when its training ends, with its sizes and its
training speed (``measure.TrainingSpeed``) and its inference speeds empty; this phase
fills those of every row that lacks them and has a saved model, so a run killed during it
measures again on the next invocation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from benchmarks import rundir, timing
from benchmarks.training.measure import Meter
from benchmarks.training.recipe import WarmupCosine  # noqa: F401 - registers what saved models use

ROUNDS = 5  # each measurement split into this many interleaved rounds


def unmeasured(run_dir: Path) -> list[dict[str, str]]:
    """The ``ok`` rows of ``results.csv`` without a latency whose model is saved."""
    return [row for row in rundir.read_rows(run_dir / rundir.RESULTS)
            if row["status"] == "ok" and not row.get("inference_latency_ms")
            and rundir.model_path(run_dir, row["architecture"]).is_file()]


def measure_saved(run_dir: Path, x: np.ndarray, rounds: int = ROUNDS,
                  notice: Callable[[str], None] = print) -> list[str]:
    """Time the inference of every saved model that lacks its speeds, interleaved, and
    write them into its row. Returns the architectures measured."""
    rows = unmeasured(run_dir)
    if not rows:
        return []
    names = [row["architecture"] for row in rows]
    notice(f"archbench: measuring {len(names)} saved model(s) in {rounds} interleaved "
           f"rounds: {', '.join(names)}")
    with timing.phase(timing.MEASUREMENT):
        keras.backend.clear_session()  # the trainings' models are gone
        meters = [Meter(keras.saving.load_model(rundir.model_path(run_dir, name)), x)
                  for name in names]
        for _ in range(rounds):
            for meter in meters:
                meter.round(1 / rounds)
        for row, meter in zip(rows, meters, strict=True):
            speeds = meter.speeds()
            rundir.write_result(run_dir, {**row, **{k: v for k, v in speeds.items()
                                                    if not math.isnan(v)}})
    return names
