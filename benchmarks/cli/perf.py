"""How much the suite costs on top of the training it runs: ``nox -s perf``.

Four comparisons on this machine, in one invocation, each repeated ``--repeats`` times with
the contenders interleaved (the machine's own noise then falls on both sides):

a. the suite's search (Keras Tuner, W&B offline, records) against a plain Keras loop that
   fits the same compiled models (network, optimizer, loss, schedule) with the same
   hyperparameters, seeds, epochs, batch size and data; a'. the same with W&B disabled;
b. ``--workers N`` against one process on the same budget: trials per hour;
c. the suite's input pipeline (``Batches``: shuffled every epoch, whole batches) against
   pre-batched in-memory tensors, epoch by epoch;
d. the accelerator options (float16 and bfloat16 mixed precision; XLA on TensorFlow)
   against float32 without XLA, on this machine;
e. the whole registry under one budget (default ``quick``) on each backend, TensorFlow then
   JAX: wall seconds, winner, accuracies and compilation time (one run each, not repeated).

Each ratio is given per repeat, with its median, minimum and maximum. The JSON it writes
(with the machine, CPU flags, threads and versions) is what ``python -m reports.perf_table``
turns into the tables of docs/results/performance.md. Timings, not tests: nothing here asserts on them.
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

from reports.perf_table import PAGE

COMPARISONS = ("a", "b", "c", "d", "e")


def spread(values: list[float]) -> dict:
    """The median, minimum and maximum of a comparison's repeats."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "repeats": [round(v, 3) for v in values]}


def _archbench(*argv: str) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "benchmarks.cli", "run", *argv], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def load_splits(budget):
    """The budget's splits of Fashion-MNIST, loaded once for every comparison."""
    from benchmarks.data.dataset import DataRequest
    from benchmarks.data.sources import load_dataset
    from benchmarks.data.splits import make_splits

    dataset = load_dataset(DataRequest("fashion_mnist"), seed=budget.seed)
    return make_splits(dataset, budget.val_size, budget.train_size, budget.final_train_size,
                       budget.seed)


def _plain_loop(arch: str, budget, splits):
    """A plain Keras loop over given hyperparameters: the same compiled model as the suite's
    (network, optimizer, loss, metrics, learning-rate schedule), fitted on the arrays as a
    user would write it, with none of the harness around it."""
    import keras
    import keras_tuner as kt

    from benchmarks.search.tuning import trial_seed
    from benchmarks.training.recipe import LEARNING_RATE, SuiteHyperModel, WarmupCosine
    from models.registry import get_architecture

    hypermodel = SuiteHyperModel(get_architecture(arch), splits.image_shape, splits.num_classes,
                                 budget)

    def plain(hps: list[dict]) -> float:
        start = time.perf_counter()
        for i, values in enumerate(hps):
            keras.backend.clear_session()
            keras.utils.set_random_seed(trial_seed(budget.seed, str(i)))
            hp = kt.HyperParameters()
            hp.values = dict(values)
            model = hypermodel.build(hp)
            if budget.schedule == "cosine":
                steps = -(-len(splits.y_tune) // budget.batch_size) * budget.epochs
                model.optimizer.learning_rate = WarmupCosine.over(
                    hp.get(LEARNING_RATE), budget.warmup, steps)
            model.fit(splits.x_tune, splits.y_tune, batch_size=budget.batch_size,
                      epochs=budget.epochs, validation_data=(splits.x_val, splits.y_val), verbose=0)
        return time.perf_counter() - start

    return plain


def _suite_search(arch: str, budget, splits, output: Path):
    from benchmarks import rundir
    from benchmarks.run.architecture import ArchitectureBenchmark
    from benchmarks.run.options import RunOptions
    from benchmarks.run.runner import make_tracker

    def suite(mode: str) -> tuple[float, list[dict]]:
        options = RunOptions([arch], budget, "fashion_mnist", output, f"perf-suite-{mode}",
                             wandb_mode=mode, wandb_project="archbench-perf", overwrite=True)
        shutil.rmtree(options.run_dir, ignore_errors=True)
        options.run_dir.mkdir(parents=True)
        bench = ArchitectureBenchmark(arch, options.shared, splits, make_tracker(options))
        start = time.perf_counter()
        bench.search(bench.make_tuner())
        seconds = time.perf_counter() - start
        rows = rundir.read_rows(options.run_dir / rundir.TRIALS)
        return seconds, [json.loads(r["hyperparameters"])
                         for r in sorted(rows, key=lambda r: int(r["trial_id"]))]

    return suite


def suite_vs_plain(arch: str, budget, splits, output: Path, repeats: int) -> dict:
    """(a) and (a'): the same trials through the suite (W&B offline, then disabled) and
    through a plain Keras loop, the three in a rotating order in each repeat."""
    plain, suite = _plain_loop(arch, budget, splits), _suite_search(arch, budget, splits, output)
    _, hps = suite("offline")  # warm-up: W&B's first run starts its service and imports
    plain(hps[:1])  # and TensorFlow's first model is slower
    runs = []
    for repeat in range(repeats):
        seconds = {}
        for label in _rotated(["offline", "disabled", "plain"], repeat):
            if label == "plain":
                seconds[label] = plain(hps)
            else:
                seconds[label], same = suite(label)
                assert same == hps, "the suite sampled other trials on a later search"
        runs.append({k: round(v, 2) for k, v in seconds.items()})
    return {"trials": len(hps), "runs": runs,
            "ratio": spread([r["offline"] / r["plain"] for r in runs]),
            "ratio_without_wandb": spread([r["disabled"] / r["plain"] for r in runs])}


def _rotated(items: list, by: int) -> list:
    by %= len(items)
    return items[by:] + items[:by]


def workers_vs_one(arch: str, budget_args: list[str], output: Path, workers: int,
                   repeats: int) -> dict:
    """(b): trials per hour of the search, one process against ``workers`` workers."""
    from benchmarks import rundir

    runs = []
    for repeat in range(repeats):
        per_hour = {}
        for label in _rotated(["one_process", "workers"], repeat):
            extra = ["--workers", str(workers)] if label == "workers" else []
            name = f"perf-{label}"
            _archbench("-a", arch, *budget_args, "-o", str(output), "--name", name, "--overwrite",
                       "--wandb-mode", "offline", *extra)
            (row,) = rundir.read_rows(output / name / rundir.RESULTS)
            trials = int(row["trials_completed"]) + int(row["trials_failed"])
            per_hour[label] = round(3600 * trials / float(row["search_seconds"]), 1)
        runs.append(per_hour)
    return {"workers": workers, "runs": runs,
            "ratio": spread([r["workers"] / r["one_process"] for r in runs])}


def input_pipeline(arch: str, budget, splits, epochs: int, repeats: int) -> dict:
    """(c): training images/s through the suite's ``Batches`` against pre-batched in-memory
    tensors (median epoch of each training; its first epoch, which traces, left out)."""
    import keras
    import keras_tuner as kt
    import tensorflow as tf

    from benchmarks.data.streaming import fit_arguments
    from models.registry import get_architecture

    x, y, batch = splits.x_final, splits.y_final, budget.batch_size
    full = len(y) // batch * batch

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self._start = [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    def images_per_second(label: str) -> float:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = get_architecture(arch).build(kt.HyperParameters(), splits.image_shape,
                                             splits.num_classes)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        if label == "suite":
            args, kwargs = fit_arguments((x, y), {}, batch)
        else:
            args, kwargs = (tf.data.Dataset.from_tensor_slices(
                (tf.reshape(x[:full], (-1, batch, *x.shape[1:])), tf.reshape(y[:full], (-1, batch)))
            ).cache(),), {}
        timer = EpochTimes()
        model.fit(*args, epochs=epochs + 1, verbose=0, callbacks=[timer], **kwargs)
        return full / statistics.median(timer.seconds[1:])

    runs = []
    for repeat in range(repeats):
        runs.append({label: round(images_per_second(label), 1)
                     for label in _rotated(["suite", "prebatched"], repeat)})
    return {"images": full, "batch_size": batch, "epochs": epochs, "runs": runs,
            "ratio": spread([r["suite"] / r["prebatched"] for r in runs])}


def accelerator_options(arch: str, budget, splits, repeats: int) -> dict:
    """(d): training images/s of one model with each accelerator setting on this machine."""
    import dataclasses

    import keras
    import keras_tuner as kt

    from benchmarks.training.accelerator import apply_accelerator
    from benchmarks.training.measure import training_throughput
    from benchmarks.training.recipe import SuiteHyperModel
    from models.registry import get_architecture

    jax = budget.backend == "jax"  # always compiled with XLA: no XLA comparison
    off = "auto" if jax else "off"
    settings = {"float32": {"mixed_precision": "off", "xla": off},
                "mixed_precision": {"mixed_precision": "on", "xla": off},
                "bfloat16": {"mixed_precision": "bfloat16", "xla": off}}
    if not jax:
        settings["xla"] = {"mixed_precision": "off", "xla": "on"}
    runs = []
    try:
        for repeat in range(repeats):
            speeds = {}
            for label in _rotated(list(settings), repeat):
                changed = dataclasses.replace(budget, **settings[label])
                apply_accelerator(changed)
                keras.backend.clear_session()
                model = SuiteHyperModel(get_architecture(arch), splits.image_shape,
                                        splits.num_classes, changed).build(kt.HyperParameters())
                speed, _ = training_throughput(model, splits.x_final, splits.y_final,
                                               budget.batch_size)
                speeds[label] = round(speed, 1)
            runs.append(speeds)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"runs": runs, **{f"{label}_ratio": spread([r[label] / r["float32"] for r in runs])
                             for label in settings if label != "float32"}}


def backends_side_by_side(budget_name: str, output: Path) -> dict:
    """(e): ``archbench run --budget BUDGET --budget-by epochs`` (the same work on each
    backend; a time budget would give both the same seconds) on each backend in turn, from
    this one invocation: its wall seconds (this process's clock, the backend's start included), the
    run's own wall seconds and phases, the winner and every architecture's accuracy."""
    from benchmarks.rundir import MANIFEST, RESULTS, read_json, read_rows
    from benchmarks.runtime.backends import BACKENDS

    runs = []
    for backend in BACKENDS:
        name = f"{budget_name}-{backend}"
        start = time.perf_counter()
        _archbench("--budget", budget_name, "--budget-by", "epochs", "--backend", backend,
                   "-o", str(output / "e"), "--name", name, "--overwrite")
        seconds = time.perf_counter() - start
        run_dir = output / "e" / name
        manifest = read_json(run_dir / MANIFEST)
        accuracy = {r["architecture"]: round(float(r["test_accuracy"]), 4)
                    for r in read_rows(run_dir / RESULTS) if r.get("status") == "ok"}
        phases = (manifest.get("time") or {}).get("run") or {}
        runs.append({"backend": backend, "seconds": round(seconds, 1),
                     "run_wall_seconds": manifest.get("wall_seconds"),
                     "training_seconds": phases.get("training"),
                     "compilation_seconds": phases.get("compilation"),
                     "winner": max(accuracy, key=accuracy.get) if accuracy else None,
                     "test_accuracy": accuracy})
    return {"budget": budget_name, "runs": runs,
            "ratio": spread([runs[1]["seconds"] / runs[0]["seconds"]])}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli.perf",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", "-a", default="simple_cnn")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the pipeline comparison")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each comparison")
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help="comparisons to run, e.g. a,c (default: all)")
    parser.add_argument("--output", "-o", type=Path, default=Path("runs/perf"))
    parser.add_argument("--backend", default=None,
                        help="Keras backend of a-d: tensorflow or jax (default: $KERAS_BACKEND, "
                        "else tensorflow); e runs both")
    args = parser.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(args.only) - set(COMPARISONS))
    if unknown or not args.only:
        parser.error(f"--only {','.join(unknown) or '(empty)'}: choose among {','.join(COMPARISONS)}")
    for flag in ("trials", "workers", "epochs", "repeats"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")

    from benchmarks.budget import BudgetError, make_budget
    from benchmarks.runtime import backends

    try:
        # (a)-(d) time a fixed amount of work: the preset's epochs, even for a time budget
        budget = make_budget(args.budget, trials=args.trials, budget_by="epochs",
                             backend=backends.requested(args.backend))
    except BudgetError as exc:
        print(f"python -m benchmarks.cli.perf: error: {exc}", file=sys.stderr)
        return 2
    backends.start(budget.backend)
    from benchmarks.run.manifest import environment, git_state

    splits = load_splits(budget)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env = environment()
    env.pop("packages")
    report = {"architecture": args.architecture, "budget": args.budget, "trials": args.trials,
              "repeats": args.repeats, "command": " ".join(["python -m benchmarks.cli.perf", *(argv or sys.argv[1:])]),
              "git": git_state(), "environment": env}
    print(f"perf: {args.architecture}, budget {args.budget} with {args.trials} trials, "
          f"{args.repeats} repeats of {','.join(args.only)}", flush=True)
    if "a" in args.only:
        report["a_suite_vs_plain"] = suite_vs_plain(args.architecture, budget, splits, args.output,
                                                    args.repeats)
    if "b" in args.only:
        budget_args = ["--budget", args.budget, "--trials", str(args.trials)]
        report["b_workers"] = workers_vs_one(args.architecture, budget_args, args.output,
                                             args.workers, args.repeats)
    if "c" in args.only:
        report["c_input_pipeline"] = input_pipeline(args.architecture, budget, splits,
                                                    args.epochs, args.repeats)
    if "d" in args.only:
        report["d_accelerator"] = accelerator_options(args.architecture, budget, splits, args.repeats)
    if "e" in args.only:
        report["e_backends"] = backends_side_by_side(args.budget, args.output)
    report["seconds"] = round(time.perf_counter() - started, 1)
    path = args.output / "perf.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        if isinstance(value, dict) and "runs" in value:
            ratios = {k: v["median"] for k, v in value.items() if isinstance(v, dict) and "median" in v}
            print(f"{key}: median {ratios}", flush=True)
    print(f"perf: written to {path} ({report['seconds']} s); put it in the results page with "
          f"python -m reports.perf_table {path} --page {PAGE} (the table alone: without --page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
