"""How much the suite costs on top of the training it runs: ``nox -s perf``.

Three comparisons on this machine, in one invocation:

a. the suite's search (Keras Tuner, W&B offline, records) against a plain Keras loop that
   trains the same models with the same hyperparameters, epochs, batches and data;
b. ``--workers 2`` against one process on the same budget: trials per hour;
c. the suite's input pipeline (``model.fit`` on in-memory arrays, shuffled every epoch,
   a partial last batch) against pre-batched in-memory tensors, epoch by epoch, looking
   for stalls before epochs;
d. the accelerator options (mixed precision, XLA) against neither, on this machine.

Timings, not tests: nothing here asserts on them. Results go to stdout and to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

STALL_FACTOR = 2.0  # an epoch slower than this times the median epoch is a stall


def _archbench(*argv: str) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "benchmarks.cli", "run", *argv], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def load_splits(budget):
    """The budget's splits of Fashion-MNIST, loaded once for every comparison."""
    from benchmarks.data import DataRequest, make_splits
    from benchmarks.datasets import load_dataset

    dataset = load_dataset(DataRequest("fashion_mnist"), seed=budget.seed)
    return make_splits(dataset, budget.val_size, budget.train_size, budget.final_train_size,
                       budget.seed)


def suite_vs_plain(arch: str, budget, splits, output: Path) -> dict:
    """(a): the same trials through the suite and through a plain Keras loop."""
    import keras

    from benchmarks.architecture import ArchitectureBenchmark
    from benchmarks.options import RunOptions
    from benchmarks.recipe import LOSS
    from benchmarks.tuning import trial_seed
    from models.registry import get_architecture

    architecture = get_architecture(arch)
    import keras_tuner as kt

    def plain(hps: list[dict]) -> float:
        start = time.perf_counter()
        for i, values in enumerate(hps):
            keras.backend.clear_session()
            keras.utils.set_random_seed(trial_seed(budget.seed, str(i)))
            hp = kt.HyperParameters()
            hp.values = dict(values)
            model = architecture.build(hp, splits.image_shape, splits.num_classes)
            model.compile(keras.optimizers.Adam(values["learning_rate"]), LOSS, metrics=["accuracy"])
            model.fit(splits.x_tune, splits.y_tune, batch_size=budget.batch_size, epochs=budget.epochs,
                      validation_data=(splits.x_val, splits.y_val), verbose=0)
        return time.perf_counter() - start

    from benchmarks import rundir

    def suite(mode: str) -> tuple[float, list[dict]]:
        options = RunOptions([arch], budget, "fashion_mnist", output, f"perf-suite-{mode}",
                             wandb_mode=mode, wandb_project="archbench-perf", overwrite=True)
        shutil.rmtree(options.run_dir, ignore_errors=True)
        options.run_dir.mkdir(parents=True)
        bench = ArchitectureBenchmark(arch, options, splits, options.tracker())
        start = time.perf_counter()
        bench.search(bench.make_tuner())
        seconds = time.perf_counter() - start
        rows = rundir.read_rows(options.run_dir / rundir.TRIALS)
        return seconds, [json.loads(r["hyperparameters"])
                         for r in sorted(rows, key=lambda r: r["trial_id"])]

    plain([{"learning_rate": 1e-3}])  # warm-up: TensorFlow's first model is slower
    suite("offline")  # warm-up too: W&B's first run starts its service and imports
    with_wandb, hps = suite("offline")
    without_wandb, same = suite("disabled")
    assert same == hps, "the suite sampled other trials on its second search"
    plain_seconds = plain(hps)
    return {"trials": len(hps), "suite_seconds": round(with_wandb, 2),
            "suite_without_wandb_seconds": round(without_wandb, 2),
            "plain_seconds": round(plain_seconds, 2),
            "ratio": round(with_wandb / plain_seconds, 3),
            "ratio_without_wandb": round(without_wandb / plain_seconds, 3)}


def workers_vs_one(arch: str, budget_args: list[str], output: Path, workers: int) -> dict:
    """(b): trials per hour of the search, one process against ``workers`` workers."""
    from benchmarks import rundir

    result = {}
    for label, extra in (("one_process", []), (f"workers_{workers}", ["--workers", str(workers)])):
        name = f"perf-{label}"
        _archbench("-a", arch, *budget_args, "-o", str(output), "--name", name, "--overwrite",
                   "--wandb-mode", "offline", *extra)
        (row,) = rundir.read_rows(output / name / rundir.RESULTS)
        trials = int(row["trials_completed"]) + int(row["trials_failed"])
        seconds = float(row["search_seconds"])
        result[label] = {"trials": trials, "search_seconds": seconds,
                         "trials_per_hour": round(3600 * trials / seconds, 1)}
    one, many = result["one_process"], result[f"workers_{workers}"]
    result["ratio"] = round(many["trials_per_hour"] / one["trials_per_hour"], 3)
    return result


def input_pipeline(arch: str, budget, splits, epochs: int) -> dict:
    """(c): epoch times through ``fit`` on arrays against pre-batched in-memory tensors."""
    import keras
    import keras_tuner as kt
    import tensorflow as tf

    from models.registry import get_architecture

    n = len(splits.y_final)
    batch = budget.batch_size

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self._start = [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    def run(data, **kwargs) -> list[float]:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = get_architecture(arch).build(kt.HyperParameters(), splits.image_shape,
                                             splits.num_classes)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = EpochTimes()
        model.fit(*data, epochs=epochs + 1, verbose=0, callbacks=[timer], **kwargs)
        return timer.seconds[1:]  # the first epoch traces the functions

    suite = run((splits.x_final, splits.y_final), batch_size=batch)  # what the suite does
    full = n // batch * batch  # pre-batched: whole batches only, already tensors
    tensors = tf.data.Dataset.from_tensor_slices(
        (tf.reshape(splits.x_final[:full], (-1, batch, *splits.x_final.shape[1:])),
         tf.reshape(splits.y_final[:full], (-1, batch)))
    ).cache()
    prebatched = run((tensors,))

    def stats(seconds: list[float], images: int) -> dict:
        median = statistics.median(seconds)
        return {"epoch_seconds": [round(x, 3) for x in seconds],
                "images_per_second": round(images / median, 1),
                "stalls": sum(x > STALL_FACTOR * median for x in seconds)}

    a, b = stats(suite, n), stats(prebatched, full)
    return {"images": n, "batch_size": batch, "suite": a, "prebatched": b,
            "ratio": round(b["images_per_second"] / a["images_per_second"], 3)}


def accelerator_options(arch: str, budget, splits) -> dict:
    """(d): training images/s of one model with each accelerator setting on this machine."""
    import dataclasses

    import keras
    import keras_tuner as kt

    from benchmarks.accelerator import apply_accelerator
    from benchmarks.measure import training_throughput
    from benchmarks.recipe import SuiteHyperModel
    from models.registry import get_architecture

    result = {}
    settings = {"float32, no XLA": {"mixed_precision": "off", "xla": "off"},
                "mixed precision": {"mixed_precision": "on", "xla": "off"},
                "XLA": {"mixed_precision": "off", "xla": "on"}}
    try:
        for label, fields in settings.items():
            changed = dataclasses.replace(budget, **fields)
            apply_accelerator(changed)
            keras.backend.clear_session()
            model = SuiteHyperModel(get_architecture(arch), splits.image_shape,
                                    splits.num_classes, changed).build(kt.HyperParameters())
            speed = training_throughput(model, splits.x_final, splits.y_final, budget.batch_size)
            result[label] = round(speed, 1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", "-a", default="simple_cnn")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the pipeline comparison")
    parser.add_argument("--output", "-o", type=Path, default=Path("runs/perf"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")

    from benchmarks.budget import make_budget

    budget = make_budget(args.budget, trials=args.trials)
    splits = load_splits(budget)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"architecture": args.architecture, "budget": budget.to_dict(), "cpu_count": os.cpu_count()}
    print(f"perf: {args.architecture}, budget {args.budget} with {args.trials} trials", flush=True)

    report["a_suite_vs_plain"] = a = suite_vs_plain(args.architecture, budget, splits, args.output)
    print(f"(a) the same {a['trials']} trials: suite search {a['suite_seconds']} s with W&B offline, "
          f"{a['suite_without_wandb_seconds']} s with W&B disabled; plain Keras "
          f"{a['plain_seconds']} s: ratio {a['ratio']} ({a['ratio_without_wandb']} without W&B)",
          flush=True)

    budget_args = ["--budget", args.budget, "--trials", str(args.trials)]
    report["b_workers"] = b = workers_vs_one(args.architecture, budget_args, args.output, args.workers)
    one, many = b["one_process"], b[f"workers_{args.workers}"]
    print(f"(b) trials per hour: one process {one['trials_per_hour']}, {args.workers} workers "
          f"{many['trials_per_hour']}: ratio {b['ratio']}", flush=True)

    report["c_input_pipeline"] = c = input_pipeline(args.architecture, budget, splits, args.epochs)
    print(f"(c) training images/s: suite's pipeline {c['suite']['images_per_second']} "
          f"(stalled epochs: {c['suite']['stalls']}), pre-batched tensors "
          f"{c['prebatched']['images_per_second']} (stalled epochs: {c['prebatched']['stalls']}): "
          f"ratio {c['ratio']}; epoch seconds {c['suite']['epoch_seconds']} vs "
          f"{c['prebatched']['epoch_seconds']}", flush=True)

    report["d_accelerator_images_per_second"] = d = accelerator_options(args.architecture, budget, splits)
    print("(d) training images/s: " + ", ".join(f"{k} {v}" for k, v in d.items()), flush=True)

    report["seconds"] = round(time.perf_counter() - started, 1)
    path = args.output / "perf.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"perf: written to {path} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
