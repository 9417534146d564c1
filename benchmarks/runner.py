"""The benchmark: tune every architecture under one budget, evaluate, measure, write."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import keras
import keras_tuner as kt
import numpy as np
from keras_tuner.src.distribute import oracle_client

from benchmarks import interrupt, rundir, timing
from benchmarks.budget import PRESETS, Budget
from benchmarks.data import Dataset, DatasetSpec, Splits, load_dataset, make_splits
from benchmarks.distributed import (
    DEFAULT_TIMEOUT,
    EXIT_RECYCLE,
    ChiefServer,
    Cluster,
    DistributedError,
    LocalWorkers,
    WorkersLost,
    drain,
    free_port_range,
)
from benchmarks.lock import RunLock
from benchmarks.measure import measure
from benchmarks.tracking import Tracker
from benchmarks.tuning import (
    Recycle,
    SearchContext,
    SuiteHyperModel,
    TrialQuota,
    TrialRecord,
    apply_accelerator,
    distribution_strategy,
    make_tuner,
    release_graphs,
)
from models.registry import get_architecture

EXIT_OK = 0
EXIT_ARCHITECTURE_FAILED = 1  # everything was written, but some architecture has no result
PREDICT_BATCH = 512


@dataclass
class RunOptions:
    """Everything ``archbench run`` was asked to do."""

    architectures: list[str]
    budget: Budget
    dataset: DatasetSpec
    output: Path
    name: str
    data_dir: Path | None = None
    overwrite: bool = False
    wandb_mode: str = "auto"
    wandb_project: str = "archbench"
    wandb_entity: str | None = None
    trial_gradients: bool = False
    role: str | None = None  # None: one process; "chief" or "worker" of a distributed search
    workers: int = 0  # worker processes this run starts on this machine (0: none)
    threads: int | None = None  # TensorFlow threads of this process (None: TF's default)
    chief_timeout: float = DEFAULT_TIMEOUT
    recycle_after: int = 0  # a worker process is replaced after this many trials (0 = never)

    @property
    def run_dir(self) -> Path:
        return self.output / rundir.safe_name(self.name)

    @property
    def distributed(self) -> bool:
        return self.workers > 0 or self.role is not None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def prepare_run_dir(options: RunOptions) -> dict[str, Any] | None:
    """Create the run directory, or check that an existing one can be resumed.

    Returns:
        The existing manifest when resuming, else None.

    Raises:
        RunDirError: the directory belongs to another run, or cannot be written.
    """
    path = options.run_dir
    if path.exists() and not rundir.is_run_dir(path) and _foreign_files(path):
        raise rundir.RunDirError(
            f"{path} exists and is not an archbench run directory; choose another --name"
        )
    if options.overwrite and rundir.is_run_dir(path):
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise rundir.RunDirError(f"cannot write to run directory {path}: {exc.strerror}") from exc
    if not rundir.is_run_dir(path):
        return None
    manifest = rundir.read_json(path / rundir.MANIFEST)
    differences = []
    if manifest["budget"]["hash"] != options.budget.hash:
        old = manifest["budget"]["fields"]
        new = options.budget.to_dict()
        changed = [k for k in new if k != "name" and old.get(k) != new[k]]
        differences.append(
            "budget " + ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in changed)
        )
    if manifest["dataset"]["name"] != options.dataset.name:
        differences.append(f"dataset {manifest['dataset']['name']} -> {options.dataset.name}")
    if differences:
        raise rundir.RunDirError(
            f"{path} holds a run with a different {'; '.join(differences)}; resume it with "
            "its own settings, or start a new run with --name NAME (or --overwrite)"
        )
    return manifest


def _foreign_files(path: Path) -> list[Path]:
    """What a directory holds besides what archbench's workers may write before the chief."""
    own = {rundir.TUNER_DIR, rundir.WORKERS_DIR, rundir.WANDB_DIR}
    return [p for p in path.iterdir() if p.name not in own and not p.name.startswith(".")]


def environment() -> dict[str, Any]:
    """Versions and hardware, so that numbers can be compared across machines."""
    import tensorflow as tf
    import wandb

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_tuner": kt.__version__,
        "wandb": wandb.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def git_state() -> dict[str, Any]:
    """The commit the code runs from and whether the checkout has uncommitted changes."""
    where = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def new_manifest(options: RunOptions, dataset: Dataset, splits: Splits) -> dict[str, Any]:
    return {
        "name": options.name,
        "budget": {"fields": options.budget.to_dict(), "hash": options.budget.hash},
        "dataset": {
            "name": dataset.spec.name,
            "source": dataset.source,
            "checksums": dataset.checksums,
            "split_sizes": splits.sizes(),
            "class_names": list(dataset.spec.class_names),
        },
        "architectures": options.architectures,
        "seeds": {"budget": options.budget.seed, "final": options.budget.final_seed_values()},
        "environment": environment(),
        "git": git_state(),
        "wandb": {
            "project": options.wandb_project,
            "entity": options.wandb_entity,
            "group": options.name,
        },
        "command": sys.argv,
        "started_at": now(),
        "finished_at": None,
        "wall_seconds": None,
    }


class ArchitectureBenchmark:
    """Tune, retrain, evaluate and measure one architecture."""

    def __init__(
        self, name: str, options: RunOptions, splits: Splits, tracker: Tracker,
        trials_path: Path | None = None, quota: TrialQuota | None = None,
    ):
        self.name = name
        self.options = options
        self.budget = options.budget
        self.splits = splits
        self.tracker = tracker
        self.run_dir = options.run_dir
        self.trials_path = trials_path or self.run_dir / rundir.TRIALS
        self.quota = quota or TrialQuota()
        self.search_seconds: float | None = None  # wall time of this invocation's search
        self.architecture = get_architecture(name)
        spec = options.dataset
        self.hypermodel = SuiteHyperModel(
            self.architecture, spec.image_shape, spec.num_classes, self.budget
        )
        self.base_config = {
            "architecture": name,
            "family": self.architecture.family,
            "budget": self.budget.to_dict(),
            "budget_hash": self.budget.hash,
            "dataset": spec.name,
            "benchmark": options.name,
            "git_commit": git_state()["commit"],
            "git_dirty": git_state()["dirty"],
        }

    def run(self) -> dict[str, Any]:
        """Run every stage and return the architecture's ``results.csv`` row."""
        start = time.perf_counter()
        try:
            tuner = self.make_tuner()
            self.search(tuner)
        except Exception as exc:  # noqa: BLE001 - one architecture never stops the others
            return self.search_failed(exc)
        self.search_seconds = time.perf_counter() - start
        return self.conclude(tuner)

    def search_failed(self, exc: BaseException) -> dict[str, Any]:
        return self._failed(f"search failed: {_one_line(exc)}")

    def conclude(self, tuner: kt.Tuner) -> dict[str, Any]:
        """The ``results.csv`` row once the search is over: best trial, final, measurements."""
        trials = rundir.read_rows(self.run_dir / rundir.TRIALS)
        mine = [t for t in trials if t["architecture"] == self.name]
        completed = sum(t["status"] == "COMPLETED" for t in mine)
        counts = {"trials_completed": completed, "trials_failed": len(mine) - completed}
        best = tuner.oracle.get_best_trials(1)
        if not best or best[0].score is None:
            errors = sorted({t["error"] for t in mine if t["error"]})
            reason = "; ".join(errors) or "no trial completed"
            return {**self._failed(f"no successful trial: {reason}"), **counts}
        best_trial = best[0]
        try:
            final = self._final(best_trial.hyperparameters)
        except Exception as exc:  # noqa: BLE001 - recorded as the architecture's failure
            return {**self._failed(f"final training failed: {_one_line(exc)}"), **counts}
        return {
            "architecture": self.name,
            "status": "ok",
            "error": "",
            "best_trial_id": best_trial.trial_id,
            "best_hyperparameters": _public_hp(best_trial.hyperparameters.values),
            "val_accuracy": best_trial.score,
            **final,
            **counts,
            "search_seconds": round(self.search_seconds, 1) if self.search_seconds else None,
            "budget_hash": self.budget.hash,
        }

    def _failed(self, error: str) -> dict[str, Any]:
        return {
            "architecture": self.name,
            "status": "failed",
            "error": error,
            "budget_hash": self.budget.hash,
        }

    def make_tuner(self) -> kt.Tuner:
        """This architecture's tuner, resumed from the run directory when it exists.

        Raises:
            RunDirError: Keras Tuner's saved state is unreadable.
            Exception: whatever the architecture's ``build`` raises at its defaults.
        """
        context = SearchContext(
            architecture=self.architecture,
            budget=self.budget,
            tracker=self.tracker,
            base_config=self.base_config,
            on_trial_end=self.record_trial,
            gradients=self.options.trial_gradients,
            quota=self.quota,
        )
        project = self.run_dir / rundir.TUNER_DIR / rundir.safe_name(self.name)
        try:
            tuner = make_tuner(self.hypermodel, context, str(project.parent), project.name)
        except json.JSONDecodeError as exc:
            # Keras Tuner writes its JSON state in place; a kill mid-write can cut it short.
            raise rundir.RunDirError(
                f"the Keras Tuner state in {project} is unreadable ({exc}); delete that "
                "directory to restart this architecture's search (its trials.csv rows stay)"
            ) from exc
        return tuner

    def search(self, tuner: kt.Tuner) -> None:
        """Run the search (as a worker of a distributed search: the chief's trials)."""
        s = self.splits
        tuner.search(s.x_tune, s.y_tune, validation_data=(s.x_val, s.y_val), verbose=0)

    def record_trial(self, trial, record: TrialRecord | None) -> None:
        """Write the ``trials.csv`` row of an ended trial.

        ``record`` is None on the chief of a distributed search, which knows a trial only
        from its oracle; the worker that trained it writes the full row.
        """
        completed = trial.status == "COMPLETED"
        error = "" if completed else _last_line(trial.message)
        score = trial.score
        if completed and record is not None and record.val_accuracy_history:
            score = max(record.val_accuracy_history)  # a worker's trial carries no score
        detail = record is not None
        record = record or TrialRecord()
        row = {
            "architecture": self.name,
            "trial_id": trial.trial_id,
            "status": trial.status,
            "score": score if completed else None,
            "epochs_run": record.epochs_run if detail else None,
            "train_seconds": round(record.train_seconds, 3) if detail else None,
            "hyperparameters": dict(trial.hyperparameters.values),
            "val_accuracy_history": [round(v, 6) for v in record.val_accuracy_history],
            "error": error,
            "wandb_run_id": record.wandb_run_id,
            "worker": record.worker,
            "budget_hash": self.budget.hash,
        }
        rundir.upsert_row(self.trials_path, rundir.TRIAL_COLUMNS, row, rundir.TRIAL_KEY)
        outcome = f"val_accuracy {score:.4f}" if row["score"] is not None else error
        seconds = f" ({record.train_seconds:.1f} s)" if detail else ""
        print(f"  [{self.name}] trial {trial.trial_id} {trial.status.lower()}: {outcome}"
              f"{seconds}", flush=True)

    def _final(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """Retrain the best configuration per final seed; evaluate once on the test set."""
        s = self.splits
        accuracies, losses, prediction_rows, run_ids = [], [], [], []
        measurements = None
        strategy = distribution_strategy(self.budget)
        for seed in self.budget.final_seed_values():
            with timing.phase(timing.TRAINING):
                release_graphs()
                keras.backend.clear_session()
                keras.utils.set_random_seed(seed)
                with strategy.scope() if strategy else contextlib.nullcontext():
                    model = self.hypermodel.build(hp)
            config = {**self.base_config, "seed": seed, "hyperparameters": dict(hp.values)}
            run = self.tracker.start(
                f"{self.name}-final-s{seed}", "final", config, [self.name, self.budget.name]
            )
            try:
                self.hypermodel.fit(
                    hp, model, s.x_final, s.y_final, validation_data=(s.x_val, s.y_val),
                    epochs=self.budget.final_epochs,
                    extra_callbacks=self.tracker.training_callbacks(
                        run, s.x_final, s.y_final, gradients=True
                    ),
                )
                with timing.phase(timing.EVALUATION):
                    probabilities = model.predict(s.x_test, batch_size=PREDICT_BATCH, verbose=0)
                    accuracy, loss, rows = _evaluate(probabilities, s.y_test, seed)
                self.tracker.log_test_predictions(
                    run, s.x_test, s.y_test, probabilities, self.options.dataset.class_names
                )
                if measurements is None:
                    # Timing trains the model further: measure after its predictions are kept.
                    with timing.phase(timing.MEASUREMENT):
                        measurements = measure(
                            model, s.x_final, s.y_final, self.budget.batch_size, len(s.y_final)
                        )
            except BaseException as exc:
                self.tracker.finish_failed(run, exc)
                raise
            accuracies.append(accuracy)
            losses.append(loss)
            prediction_rows.extend(rows)
            if run is not None:
                run.summary.update(
                    {"test_accuracy": accuracy, "test_loss": loss, **measurements.to_dict()}
                )
                run_ids.append(run.id)
            self.tracker.finish(run)
        rundir.write_rows(
            self.run_dir / rundir.PREDICTIONS_DIR / f"{rundir.safe_name(self.name)}.csv",
            rundir.PREDICTION_COLUMNS,
            prediction_rows,
        )
        return {
            "test_accuracy": statistics.fmean(accuracies),
            "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "test_loss": statistics.fmean(losses),
            "final_seeds": len(accuracies),
            **measurements.to_dict(),
            "wandb_run_id": " ".join(run_ids),
        }


def _evaluate(probabilities: np.ndarray, labels: np.ndarray, seed: int):
    """Test accuracy, test loss and per-sample prediction rows from class probabilities."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    accuracy = float(np.mean(predicted == labels))
    true_prob = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    loss = float(-np.mean(np.log(true_prob)))
    rows = [
        {"seed": seed, "sample": i, "label": int(t), "predicted": int(p), "confidence": f"{c:.5f}"}
        for i, (t, p, c) in enumerate(zip(labels, predicted, confidence, strict=True))
    ]
    return accuracy, loss, rows


def _public_hp(values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters without Keras Tuner's own bookkeeping entries (``tuner/...``)."""
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _last_line(message: str | None) -> str:
    lines = [ln.strip() for ln in (message or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def finished_architectures(run_dir: Path) -> set[str]:
    """Architectures whose result is already written: a resumed run skips them."""
    rows = rundir.read_rows(run_dir / rundir.RESULTS)
    return {r["architecture"] for r in rows if r["status"] == "ok"}


def run_benchmark(options: RunOptions) -> int:
    """Run the whole benchmark; returns EXIT_OK or EXIT_ARCHITECTURE_FAILED.

    Raises:
        DataError, RunDirError, RegistryError, DistributedError: bad input or settings,
            before any training.
    """
    started = time.perf_counter()
    clock = timing.Phases()
    set_threads(options.threads)
    accelerator = apply_accelerator(options.budget)
    cluster = Cluster.from_environment(options.role, options.chief_timeout) if options.role else None
    # Data first: bad data is refused before anything is written.
    dataset = load_dataset(options.dataset, options.data_dir)
    b = options.budget
    splits = make_splits(dataset, b.val_size, b.train_size, b.final_train_size, b.seed)
    if cluster is not None and not cluster.is_chief:
        return run_worker(options, splits, cluster)
    lock = RunLock(options.output / f".{rundir.safe_name(options.name)}.lock", options.run_dir)
    with lock, timing.recording(clock):
        return _run_locked(options, dataset, splits, started, cluster, accelerator)


def set_threads(threads: int | None) -> None:
    """Limit TensorFlow's threads (workers sharing a CPU split its cores between them)."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _run_locked(
    options: RunOptions, dataset: Dataset, splits: Splits, started: float,
    cluster: Cluster | None, accelerator: dict[str, Any],
) -> int:
    manifest = _open_manifest(options, dataset, splits)
    manifest["accelerator"] = accelerator
    run_dir = options.run_dir
    tracker = Tracker(
        options.wandb_mode, options.wandb_project, options.name,
        run_dir / rundir.WANDB_DIR, options.wandb_entity,
    )
    b = options.budget
    print(
        f"archbench: {len(options.architectures)} architecture(s), budget {b.name} "
        f"({b.hash}), {dataset.spec.name} from {dataset.source}, W&B {tracker.mode}, "
        f"writing {run_dir}",
        flush=True,
    )
    times = _TimeBook(manifest, run_dir)
    if options.distributed:
        ran = _benchmark_distributed(options, splits, tracker, cluster, times, accelerator["gpus"])
    else:
        ran = _benchmark_all(options, splits, tracker, times)

    from reports.leaderboard import LEADERBOARD_CSV, write_leaderboard

    manifest["wandb"]["mode"] = tracker.mode
    manifest["finished_at"] = now()
    previous = manifest.get("wall_seconds") or 0
    manifest["wall_seconds"] = round(previous + time.perf_counter() - started, 1)
    times.finish_run()  # the time until the leaderboard; its W&B report run comes after
    rundir.write_json(run_dir / rundir.MANIFEST, manifest)
    leaderboard = write_leaderboard(run_dir)
    print(f"archbench: leaderboard written to {leaderboard}")
    report_config = {"benchmark": options.name, "budget": b.to_dict(), "budget_hash": b.hash,
                     "dataset": dataset.spec.name, "architectures": manifest["architectures"],
                     "git_commit": git_state()["commit"]}
    if ran:  # a rerun that trained nothing adds no second report run
        report_id = tracker.log_report(report_config, leaderboard, leaderboard.parent / LEADERBOARD_CSV)
        manifest["wandb"]["report_run_id"] = report_id
        rundir.write_json(run_dir / rundir.MANIFEST, manifest)
    sync = tracker.sync_command()
    if sync:
        print(f"archbench: W&B runs were logged offline; upload them with:\n  {sync}")
    results = rundir.read_rows(run_dir / rundir.RESULTS)
    failed = [r["architecture"] for r in results
              if r["architecture"] in options.architectures and r["status"] != "ok"]
    if failed:
        print(f"archbench: no result for {', '.join(failed)} (see {leaderboard})", file=sys.stderr)
        return EXIT_ARCHITECTURE_FAILED
    return EXIT_OK


def orphan_wandb_runs(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Ids of local W&B runs that no results file names: runs of interrupted trainings.

    They stay on disk (W&B may still sync them) but are not counted anywhere.
    """
    known = {row["wandb_run_id"] for row in rundir.read_rows(run_dir / rundir.TRIALS)}
    for row in rundir.read_rows(run_dir / rundir.RESULTS):
        known.update(row["wandb_run_id"].split())
    known.add(manifest.get("wandb", {}).get("report_run_id") or "")
    local = (run_dir / rundir.WANDB_DIR / "wandb").glob("*run-*")
    return sorted({p.name.rsplit("-", 1)[-1] for p in local if p.is_dir()} - known)


def _open_manifest(options: RunOptions, dataset: Dataset, splits: Splits) -> dict[str, Any]:
    """A new manifest, or the resumed run's, checked against this command's dataset."""
    manifest = prepare_run_dir(options)
    if manifest is None:
        manifest = new_manifest(options, dataset, splits)
    elif manifest["dataset"]["checksums"] != dataset.checksums:
        raise rundir.RunDirError(
            f"{options.run_dir} was made from other dataset files than {dataset.source}; "
            "start a new run with --name NAME (or --overwrite)"
        )
    else:
        known = manifest["architectures"]
        manifest["architectures"] = known + [a for a in options.architectures if a not in known]
        manifest["finished_at"] = None
        orphans = orphan_wandb_runs(options.run_dir, manifest)
        if orphans:
            print(f"archbench: resuming; {len(orphans)} W&B run(s) of interrupted trainings "
                  f"are not counted: {', '.join(orphans)}", flush=True)
    rundir.write_json(options.run_dir / rundir.MANIFEST, manifest)
    return manifest


class _TimeBook:
    """Writes the time breakdown into the manifest: per architecture, and for the run.

    Both come from the run's one clock (``timing.recording`` in ``run_benchmark``), so the
    architectures' phases and the run's add up; a resumed run adds to what is there.
    """

    def __init__(self, manifest: dict[str, Any], run_dir: Path) -> None:
        self.manifest = manifest
        self.run_dir = run_dir
        self.book = manifest.setdefault("time", {"architectures": {}, "run": {}})

    @staticmethod
    def _now() -> dict[str, float]:
        clock = timing.current()
        return clock.summary() if clock is not None else {}

    @staticmethod
    def _add(into: dict[str, float], start: dict[str, float], end: dict[str, float]) -> None:
        for key, value in end.items():
            into[key] = round(into.get(key, 0.0) + value - start.get(key, 0.0), 3)

    @contextlib.contextmanager
    def architecture(self, name: str) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self._add(self.book["architectures"].setdefault(name, {}), start, self._now())
            rundir.write_json(self.run_dir / rundir.MANIFEST, self.manifest)

    def finish_run(self) -> None:
        self._add(self.book["run"], {}, self._now())  # the clock started with run_benchmark


def _benchmark_all(options: RunOptions, splits: Splits, tracker: Tracker, times: _TimeBook) -> int:
    """Every architecture in turn; each result row is written as soon as it is known.

    Returns:
        How many architectures were benchmarked (not skipped as already finished).
    """
    b, run_dir = options.budget, options.run_dir
    done = finished_architectures(run_dir)
    ran = 0
    for index, name in enumerate(options.architectures, start=1):
        interrupt.check()
        prefix = f"[{index}/{len(options.architectures)}] {name}"
        if name in done:
            print(f"{prefix}: already finished, skipped", flush=True)
            continue
        print(f"{prefix}: tuning {b.trials} trial(s) with {b.tuner}", flush=True)
        arch_start = time.perf_counter()
        with times.architecture(name):
            row = ArchitectureBenchmark(name, options, splits, tracker).run()
            rundir.upsert_row(run_dir / rundir.RESULTS, rundir.RESULT_COLUMNS, row, ["architecture"])
        print(f"{prefix}: {_summary(row)} ({time.perf_counter() - arch_start:.0f} s)", flush=True)
        ran += 1
    return ran


def _benchmark_distributed(
    options: RunOptions, splits: Splits, tracker: Tracker, cluster: Cluster | None,
    times: _TimeBook, gpus: int,
) -> int:
    """The chief of a distributed search: serve each architecture's oracle to the workers,
    then train, evaluate and measure the best configurations here, with no worker running.

    Returns:
        How many architectures were benchmarked (not skipped as already finished).
    """
    run_dir, names = options.run_dir, options.architectures
    if cluster is None:  # --workers N: a chief and its workers on this machine
        cluster = Cluster("chief", "127.0.0.1", free_port_range(len(names)), options.chief_timeout)
    workers = None
    if options.workers:
        workers = LocalWorkers(
            worker_argv(options), options.workers, cluster, run_dir / rundir.WORKERS_DIR,
            threads=options.threads or _threads_per_worker(options.workers),
            gpus=gpus,
        )
    done = finished_architectures(run_dir)
    server = ChiefServer(cluster)
    searched: list[tuple[ArchitectureBenchmark, kt.Tuner]] = []
    where = (f"{options.workers} local worker(s)" if workers else
             f"the workers of {cluster.ip}:{cluster.port}-{cluster.port + len(names) - 1}")
    try:
        if workers:
            workers.start()
        for index, name in enumerate(names):
            interrupt.check()
            prefix = f"[{index + 1}/{len(names)}] {name}"
            if name in done:
                server.skip(index)
                print(f"{prefix}: already finished, skipped", flush=True)
                continue
            print(f"{prefix}: tuning {options.budget.trials} trial(s) with "
                  f"{options.budget.tuner} on {where}", flush=True)
            bench = ArchitectureBenchmark(name, options, splits, tracker)
            start = time.perf_counter()
            try:
                with cluster.serving(index), times.architecture(name):
                    tuner = bench.make_tuner()
                    tuner.oracle.verbose = 0  # the chief's own progress lines say it all
                    tuner.save()
                    with timing.phase(timing.SEARCH):
                        server.serve(
                            index, tuner.oracle, poll=workers.poll if workers else None,
                            on_trial_end=lambda t, b=bench: b.record_trial(t, None),
                        )
            except WorkersLost:
                raise
            except Exception as exc:  # noqa: BLE001 - one architecture never stops the others
                server.skip(index)
                row = bench.search_failed(exc)
                rundir.upsert_row(run_dir / rundir.RESULTS, rundir.RESULT_COLUMNS, row, ["architecture"])
                print(f"{prefix}: {_summary(row)}", flush=True)
                continue
            finally:
                rundir.merge_worker_trials(run_dir)
            bench.search_seconds = time.perf_counter() - start
            searched.append((bench, tuner))
        if workers:
            workers.stop()
    finally:
        if workers:
            workers.kill()
        server.close()
        rundir.merge_worker_trials(run_dir)
    for bench, tuner in searched:
        interrupt.check()
        start = time.perf_counter()
        with times.architecture(bench.name):
            row = bench.conclude(tuner)
            rundir.upsert_row(run_dir / rundir.RESULTS, rundir.RESULT_COLUMNS, row, ["architecture"])
        print(f"{bench.name}: {_summary(row)} ({time.perf_counter() - start:.0f} s)", flush=True)
    return len(searched)


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def worker_argv(options: RunOptions) -> list[str]:
    """The command line of a local worker: this run's options, role worker."""
    argv = [sys.executable, "-m", "benchmarks.cli", "run", "--role", "worker",
            "-a", *options.architectures, "--dataset", options.dataset.name,
            "-o", str(options.output), "--name", options.name,
            "--wandb-mode", options.wandb_mode, "--wandb-project", options.wandb_project,
            "--budget", options.budget.name if options.budget.name in PRESETS else "quick"]
    if options.data_dir:
        argv += ["--data-dir", str(options.data_dir)]
    if options.wandb_entity:
        argv += ["--wandb-entity", options.wandb_entity]
    if options.trial_gradients:
        argv.append("--trial-gradients")
    if options.recycle_after:
        argv += ["--recycle-after", str(options.recycle_after)]
    for field, value in options.budget.to_dict().items():
        if field == "name":
            continue
        flag = "--" + field.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


def run_worker(options: RunOptions, splits: Splits, cluster: Cluster) -> int:
    """A worker of a distributed search: run the trials the chief hands out, architecture
    after architecture, writing their rows to ``workers/<tuner id>/trials.csv``."""
    run_dir = options.run_dir
    if rundir.is_run_dir(run_dir):
        manifest = rundir.read_json(run_dir / rundir.MANIFEST)
        if manifest["budget"]["hash"] != options.budget.hash:
            raise rundir.RunDirError(
                f"this worker's budget ({options.budget.hash}) differs from the run's in "
                f"{run_dir} ({manifest['budget']['hash']}); give every process the same options"
            )
    tracker = Tracker(
        options.wandb_mode, options.wandb_project, options.name,
        run_dir / rundir.WANDB_DIR, options.wandb_entity,
    )
    trials = run_dir / rundir.WORKERS_DIR / rundir.safe_name(cluster.tuner_id) / rundir.TRIALS
    print(f"archbench: worker {cluster.tuner_id} of {cluster.ip}:{cluster.port}", flush=True)
    try:
        _work(options, splits, cluster, tracker, trials)
    except Recycle as exc:
        print(f"archbench: worker {cluster.tuner_id} {exc}; exiting to be replaced", flush=True)
        return EXIT_RECYCLE
    except grpc.RpcError as exc:
        raise DistributedError(
            f"worker {cluster.tuner_id} lost the chief at {cluster.ip}:{cluster.port}+: "
            f"{exc.code().name} ({exc.details()})"
        ) from exc
    print(f"archbench: worker {cluster.tuner_id}: every search is over", flush=True)
    return EXIT_OK


def _work(options: RunOptions, splits: Splits, cluster: Cluster, tracker: Tracker, trials: Path):
    # A worker waits for its chief as long as the chief waits for its workers.
    oracle_client.TIMEOUT = cluster.timeout
    quota = TrialQuota(options.recycle_after)
    for index, name in enumerate(options.architectures):
        interrupt.check()
        bench = ArchitectureBenchmark(name, options, splits, tracker, trials, quota)
        with cluster.serving(index):
            try:
                tuner = bench.make_tuner()
            except Exception as exc:  # noqa: BLE001 - reported to the chief as failed trials
                record = TrialRecord(worker=cluster.tuner_id)
                drain(cluster, index, bench.search_failed(exc)["error"],
                      on_trial_end=lambda t, b=bench, r=record: b.record_trial(t, r))
                continue
            bench.search(tuner)


def _summary(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"FAILED: {row['error']}"
    return (
        f"test accuracy {row['test_accuracy']:.4f}, val {row['val_accuracy']:.4f}, "
        f"{row['total_params']:,} params, {row['inference_latency_ms']:.2f} ms/image"
    )

