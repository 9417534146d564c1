"""The two halves of a distributed search: the chief serving each architecture's oracle,
and the workers that train the trials it hands out."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable

import grpc
import keras_tuner as kt

from benchmarks import rundir, timing
from benchmarks.data.splits import Splits
from benchmarks.run.architecture import ArchitectureBenchmark
from benchmarks.run.options import RunOptions, to_argv
from benchmarks.runtime import interrupt, workarounds
from benchmarks.search.distributed import (
    EXIT_OK,
    EXIT_RECYCLE,
    POLL_SECONDS,
    ChiefServer,
    Cluster,
    DistributedError,
    LocalWorkers,
    WorkersLost,
    free_port_range,
)
from benchmarks.search.tuning import Recycle, TrialQuota, TrialRecord
from benchmarks.tracking.runs import Tracker


def worker_argv(options: RunOptions) -> list[str]:
    """The command line of a local worker: this run's options, role worker."""
    worker = dataclasses.replace(options, role="worker", workers=0, overwrite=False, threads=None)
    return [sys.executable, "-m", "benchmarks.cli", "run", *to_argv(worker)]


class ChiefSearch:
    """The chief of a distributed search: serves each architecture's oracle to the workers
    (its own, started here with ``--workers N``, or those of other machines); the final
    trainings come after every search, with no worker running."""

    conclude_at_once = False

    def __init__(self, options: RunOptions, cluster: Cluster | None, gpus: int) -> None:
        names = options.architectures
        if cluster is None:  # --workers N: a chief and its workers on this machine
            cluster = Cluster("chief", "127.0.0.1", free_port_range(len(names)),
                              options.chief_timeout)
        self.cluster, self.run_dir = cluster, options.run_dir
        self.server = ChiefServer(cluster)
        self.workers = None
        if options.workers:
            threads = options.threads or max(1, (os.cpu_count() or 1) // options.workers)
            self.workers = LocalWorkers(worker_argv(options), options.workers, cluster,
                                        options.run_dir / rundir.WORKERS_DIR, threads=threads,
                                        gpus=gpus)
        self.where = (f" on {options.workers} local worker(s)" if self.workers else
                      f" on the workers of {cluster.ip}:{cluster.port}-"
                      f"{cluster.port + len(names) - 1}")

    def __enter__(self) -> ChiefSearch:
        if self.workers:
            self.workers.start()
        return self

    def __exit__(self, exc_type, *rest) -> None:
        try:
            if self.workers and exc_type is None:
                self.workers.stop()
        finally:
            if self.workers:
                self.workers.kill()
                self.server.close()  # its own workers are gone
            rundir.merge_worker_trials(self.run_dir)

    def close(self, linger: bool) -> None:
        """Other machines' workers may still be ending their last trial: the servers answer
        "stopped" until the run's end and, with ``linger``, until each worker heard it."""
        self.server.close(linger=linger)

    def skip(self, index: int) -> None:
        self.server.skip(index)

    def search(self, index: int, bench: ArchitectureBenchmark) -> kt.Tuner:
        try:
            with self.cluster.serving(index):
                tuner = bench.make_tuner()
                tuner.oracle.verbose = 0  # the chief's own progress lines say it all
                tuner.save()
                with timing.phase(timing.SEARCH):
                    self.server.serve(
                        index, tuner.oracle, poll=self.workers.poll if self.workers else None,
                        on_trial_end=lambda trial: bench.writer.write(trial, None),
                    )
        except WorkersLost:
            raise
        except Exception:
            self.server.skip(index)  # its workers move on to the next architecture
            raise
        finally:
            rundir.merge_worker_trials(self.run_dir)
        return tuner


def run_worker(options: RunOptions, splits: Splits, cluster: Cluster, tracker: Tracker) -> int:
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
    print(f"archbench: worker {cluster.tuner_id} of {cluster.ip}:{cluster.port}", flush=True)
    try:
        _train_handed_trials(options, splits, cluster, tracker)
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


def _train_handed_trials(options: RunOptions, splits: Splits, cluster: Cluster,
                         tracker: Tracker) -> None:
    """Every architecture's search, as this worker's share of it."""
    # A worker waits for its chief as long as the chief waits for its workers.
    workarounds.set_oracle_client_timeout(cluster.timeout)
    trials = options.run_dir / rundir.WORKERS_DIR / rundir.safe_name(cluster.tuner_id) / rundir.TRIALS
    quota = TrialQuota(options.recycle_after)
    for index, name in enumerate(options.architectures):
        interrupt.check()
        bench = ArchitectureBenchmark(name, options.shared, splits, tracker, trials, quota)
        with cluster.serving(index):
            try:
                tuner = bench.make_tuner()
            except Exception as exc:  # noqa: BLE001 - reported to the chief as failed trials
                record = TrialRecord(worker=cluster.tuner_id)
                reason = f"search failed: {rundir.one_line(exc)}"
                fail_handed_trials(cluster, index, reason,
                                   on_trial_end=lambda trial, b=bench, r=record: b.writer.write(trial, r))
                continue
            bench.search(tuner)


def fail_handed_trials(cluster: Cluster, index: int, reason: str, on_trial_end: Callable | None = None) -> None:
    """A worker that cannot build an architecture's tuner still answers its chief.

    Every trial the chief hands it is ended as failed with ``reason`` (and passed to
    ``on_trial_end``: Keras Tuner does not send a trial's message to the chief), until
    the chief says stop; without this the chief would wait for it until its timeout.
    """
    from keras_tuner.src.distribute import oracle_client

    with cluster.serving(index):
        client = oracle_client.OracleClient(None)
        while True:
            trial = client.create_trial(cluster.tuner_id)
            if trial.status == "STOPPED":
                return
            if trial.status == "IDLE":
                time.sleep(POLL_SECONDS)
                interrupt.check()
                continue
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = reason
            client.end_trial(trial)
            if on_trial_end is not None:
                on_trial_end(trial)
