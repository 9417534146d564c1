"""The benchmark: every architecture under one budget, in this process or as a chief.

One loop serves both: where a search runs (``SearchHere``, or ``ChiefSearch`` serving the
oracle to workers) is the only branch. Results are written as they are known; the
leaderboard is written by the function the caller passes (the CLI passes the report's).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import keras_tuner as kt

from benchmarks import rundir, timing
from benchmarks.data.dataset import Dataset
from benchmarks.data.splits import Splits, make_splits
from benchmarks.run.architecture import ArchitectureBenchmark, summary_line
from benchmarks.run.manifest import TimeBook, git_state, machine, now, open_manifest
from benchmarks.run.options import RunOptions
from benchmarks.run.speeds import measure_saved
from benchmarks.run.workers import ChiefSearch, run_worker
from benchmarks.runtime import interrupt
from benchmarks.runtime.backends import set_threads
from benchmarks.search.distributed import EXIT_OK, Cluster, WorkersLost
from benchmarks.tracking.runs import Tracker
from benchmarks.training.accelerator import apply_accelerator

EXIT_ARCHITECTURE_FAILED = 1  # everything was written, but some architecture has no result

WriteLeaderboard = Callable[[Path], Path]  # run directory -> the leaderboard's markdown file


class SearchPlace(Protocol):
    """Where the searches of a run happen (a context: set up on entry, torn down on exit)."""

    where: str  # for progress lines
    conclude_at_once: bool  # final trainings right after each search, or after every search

    def __enter__(self) -> SearchPlace: ...
    def __exit__(self, *exc_info) -> None: ...
    def skip(self, index: int) -> None: ...
    def search(self, index: int, bench: ArchitectureBenchmark) -> kt.Tuner: ...
    def close(self, linger: bool) -> None: ...  # after the run's end (``linger``: it succeeded)


class SearchHere:
    """One process: each search runs here and its final trainings follow at once."""

    where = ""
    conclude_at_once = True

    def __enter__(self) -> SearchHere:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def skip(self, index: int) -> None:
        return None

    def search(self, index: int, bench: ArchitectureBenchmark) -> kt.Tuner:
        tuner = bench.make_tuner()
        bench.search(tuner)
        return tuner

    def close(self, linger: bool) -> None:
        return None


def make_tracker(options: RunOptions) -> Tracker:
    """The W&B tracker of a run: its runs grouped under the run's name, their files in the
    run directory."""
    return Tracker(options.wandb_mode, options.wandb_project, options.name,
                   options.run_dir / rundir.WANDB_DIR, options.wandb_entity)


def run_benchmark(options: RunOptions, dataset: Dataset, write_leaderboard: WriteLeaderboard,
                  resumed: dict[str, Any] | None = None) -> int:
    """Run the whole benchmark on ``dataset`` (loaded and checked by the caller); returns
    EXIT_OK or EXIT_ARCHITECTURE_FAILED.

    Except as a worker (which writes no run directory of its own), the caller holds the
    run directory through ``manifest.claim_run_dir``; ``resumed`` is what that yielded.

    Raises:
        RunDirError, RegistryError, DistributedError: bad settings, before any training.
    """
    started = time.perf_counter()
    clock = timing.Phases()
    set_threads(options.threads)
    accelerator = apply_accelerator(options.budget)
    cluster = Cluster.from_environment(options.role, options.chief_timeout) if options.role else None
    budget = options.budget
    splits = make_splits(dataset, budget.val_size, budget.train_size, budget.final_train_size,
                         budget.seed, input_mode=options.input_mode)
    tracker = make_tracker(options)
    if cluster is not None and not cluster.is_chief:
        return run_worker(options, splits, cluster, tracker)
    with timing.recording(clock):
        manifest = open_manifest(options, dataset, splits, resumed)
        manifest["accelerator"] = accelerator
        digest, record = machine(accelerator)
        manifest.setdefault("machines", {})[digest] = record  # a resume may add another
        print(f"archbench: {len(options.architectures)} architecture(s), budget {budget.name} "
              f"({budget.hash}), {dataset.name} from {dataset.source}, W&B {tracker.mode}, "
              f"writing {options.run_dir}", flush=True)
        times = TimeBook(manifest, options.run_dir)
        place = (ChiefSearch(options, cluster, accelerator["gpus"]) if options.distributed
                 else SearchHere())
        try:
            ran = benchmark_all(options, splits, tracker, times, place, digest)
            interrupt.check()
            ran += len(measure_saved(options.run_dir, splits.x_final))
            manifest["wall_seconds"] = round(
                (manifest.get("wall_seconds") or 0) + time.perf_counter() - started, 1)
            code = _finish(options, dataset, manifest, tracker, times, ran, write_leaderboard)
        except BaseException:
            place.close(linger=False)
            raise
        place.close(linger=True)
        return code


def benchmark_all(
    options: RunOptions, splits: Splits, tracker: Tracker, times: TimeBook, place: SearchPlace,
    machine_hash: str = "",
) -> int:
    """Every architecture in turn; each result row is written as soon as it is known.

    Returns:
        How many architectures were benchmarked (not skipped as already finished).
    """
    names, budget = options.architectures, options.budget
    done = rundir.finished_architectures(options.run_dir)
    searched: list[tuple[ArchitectureBenchmark, kt.Tuner, str]] = []
    ran, took = 0, []
    with place:
        for index, name in enumerate(names):
            interrupt.check()
            prefix = f"[{index + 1}/{len(names)}] {name}"
            if name in done:
                place.skip(index)
                print(f"{prefix}: already finished, skipped", flush=True)
                continue
            print(f"{prefix}: tuning {budget.trials} trial(s) with {budget.tuner}{place.where}",
                  flush=True)
            ran += 1
            start = time.perf_counter()
            bench = ArchitectureBenchmark(name, options.shared, splits, tracker,
                                          machine=machine_hash)
            tuner = _search(place, index, bench, times, prefix)
            if tuner is not None and place.conclude_at_once:
                _conclude(bench, tuner, times, prefix)
            elif tuner is not None:
                searched.append((bench, tuner, prefix))
            if place.conclude_at_once:
                took.append(time.perf_counter() - start)
                _progress(took, len(names) - index - 1)
    for bench, tuner, prefix in searched:  # the workers are gone: the machine is free
        interrupt.check()
        _conclude(bench, tuner, times, prefix)
    return ran


def _progress(took: list[float], remaining: int) -> None:
    """The run so far and, while architectures remain, the time left at this pace."""
    if remaining:
        print(f"archbench: {len(took)} architecture(s) in {timing.duration(sum(took))}, "
              f"about {timing.duration(timing.time_left(took, remaining))} left for "
              f"{remaining} more", flush=True)


def _search(place: SearchPlace, index: int, bench: ArchitectureBenchmark, times: TimeBook,
            prefix: str) -> kt.Tuner | None:
    """One architecture's search; a failed one writes its failed row and gives None."""
    start = time.perf_counter()
    with times.architecture(bench.name):
        try:
            tuner = place.search(index, bench)
        except WorkersLost:
            raise
        except Exception as exc:  # noqa: BLE001 - one architecture never stops the others
            row = bench.failed_row(exc)
            rundir.write_result(bench.run_dir, row)
            print(f"{prefix}: {summary_line(row)}", flush=True)
            return None
    bench.search_seconds = time.perf_counter() - start
    return tuner


def _conclude(bench: ArchitectureBenchmark, tuner: kt.Tuner, times: TimeBook, prefix: str) -> None:
    start = time.perf_counter()
    with times.architecture(bench.name):
        row = bench.result_row(tuner)
        rundir.write_result(bench.run_dir, row)
    print(f"{prefix}: {summary_line(row)} ({time.perf_counter() - start:.0f} s)", flush=True)


def _finish(options: RunOptions, dataset: Dataset, manifest: dict[str, Any], tracker: Tracker,
            times: TimeBook, ran: int, write_leaderboard: WriteLeaderboard) -> int:
    """The manifest's last entries, the leaderboard, its W&B report run, the exit code."""
    run_dir, budget = options.run_dir, options.budget
    manifest["wandb"]["mode"] = tracker.mode
    manifest["finished_at"] = now()
    times.finish_run()  # the time until the leaderboard; its W&B report run comes after
    rundir.write_json(run_dir / rundir.MANIFEST, manifest)
    leaderboard = write_leaderboard(run_dir)
    print(f"archbench: leaderboard written to {leaderboard}")
    if ran:  # a rerun that trained nothing adds no second report run
        config = {"benchmark": options.name, "budget": budget.to_dict(),
                  "budget_hash": budget.hash, "dataset": dataset.name,
                  "architectures": manifest["architectures"], "git_commit": git_state()["commit"]}
        report_id = tracker.log_report(config, leaderboard, leaderboard.parent / rundir.LEADERBOARD_CSV,
                                       rundir.measurements(run_dir))
        manifest["wandb"]["report_run_id"] = report_id
        rundir.write_json(run_dir / rundir.MANIFEST, manifest)
    sync = tracker.sync_command()
    if sync:
        print(f"archbench: W&B runs were logged offline; upload them with:\n  {sync}")
    failed = [r["architecture"] for r in rundir.read_rows(run_dir / rundir.RESULTS)
              if r["architecture"] in options.architectures and r["status"] == "failed"]
    if failed:
        print(f"archbench: no result for {', '.join(failed)} (see {leaderboard})", file=sys.stderr)
        return EXIT_ARCHITECTURE_FAILED
    return EXIT_OK
