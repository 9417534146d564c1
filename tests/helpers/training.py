"""Tiny splits, and one architecture benchmarked on them as a run does it."""

from __future__ import annotations

from benchmarks import rundir
from benchmarks.budget import make_budget
from benchmarks.data.splits import Splits
from benchmarks.run.manifest import TimeBook
from benchmarks.run.options import RunOptions
from benchmarks.run.runner import SearchHere, benchmark_all
from benchmarks.tracking.runs import Tracker
from tests.conftest import synthetic_images

BUDGET = make_budget("smoke", trials=2, batch_size=32, train_size=64, val_size=32,
                     final_train_size=64, final_epochs=1)


def tiny_splits() -> Splits:
    x, y = synthetic_images(64)
    xv, yv = synthetic_images(32, seed=1)
    xt, yt = synthetic_images(40, seed=2)
    return Splits(x, y, xv, yv, x, y, xt, yt, class_names=tuple("0123456789"))


def bench(name: str, tmp_path, splits: Splits, wandb_mode: str = "disabled",
          budget=BUDGET) -> tuple[dict, list[dict]]:
    options = RunOptions(architectures=[name], budget=budget, dataset="fashion_mnist",
                         output=tmp_path, name="t", wandb_mode=wandb_mode)
    options.run_dir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(wandb_mode, "p", "t", tmp_path / "w")
    benchmark_all(options, splits, tracker, TimeBook({}, options.run_dir), SearchHere())
    row = next(r for r in rundir.read_rows(options.run_dir / rundir.RESULTS)
               if r["architecture"] == name)
    return row, rundir.read_rows(options.run_dir / rundir.TRIALS)
