"""Keras Tuner's distributed mode: a chief oracle, workers over gRPC, local supervision.

Keras Tuner runs the search: the chief holds the oracle and serves it over gRPC, workers
ask it for trials, train them and report back (``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``). archbench adds what a benchmark of
several architectures needs around that:

- architecture ``i`` of the run is served on ``PORT + i``, so a worker can never talk to
  the oracle of another architecture;
- the chief keeps the server of every architecture it has finished answering "stopped",
  so a late or restarted worker walks through the finished ones in seconds;
- the chief has a timeout: when no worker has said anything for that long while trials
  are outstanding, that architecture's search fails instead of hanging;
- ``LocalWorkers`` starts and supervises workers on this machine, restarting a dead one
  with the same tuner id so that Keras Tuner hands it its unfinished trial again.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

from benchmarks.runtime import interrupt
from benchmarks.runtime.backends import WORKER_SLOT

ID_VAR = "KERASTUNER_TUNER_ID"
IP_VAR = "KERASTUNER_ORACLE_IP"
PORT_VAR = "KERASTUNER_ORACLE_PORT"
ROLES = ("chief", "worker")
EXIT_OK = 0
EXIT_RECYCLE = 75  # a worker that ran its quota of trials exits with this, to be replaced
POLL_SECONDS = 0.2
DEFAULT_TIMEOUT = 3600.0


class DistributedError(RuntimeError):
    """The chief, a worker or their settings cannot go on."""


class WorkersLost(DistributedError):
    """Local workers keep dying: the whole search stops."""


@dataclass(frozen=True)
class Cluster:
    """Where this process stands in a distributed search.

    Args:
        tuner_id: Keras Tuner's id of this process; a chief's contains "chief".
        ip: the chief's address.
        port: the first port; architecture ``i`` is served on ``port + i``.
        timeout: seconds the chief waits without hearing from any worker.
    """

    tuner_id: str
    ip: str
    port: int
    timeout: float = DEFAULT_TIMEOUT

    @property
    def is_chief(self) -> bool:
        return "chief" in self.tuner_id  # Keras Tuner's own rule

    @classmethod
    def from_environment(cls, role: str, timeout: float = DEFAULT_TIMEOUT) -> Cluster:
        """The cluster described by the ``KERASTUNER_*`` variables, checked against ``role``.

        Raises:
            DistributedError: a variable is missing or does not fit the role.
        """
        if role not in ROLES:
            raise DistributedError(f"unknown --role {role!r}; choose chief or worker")
        missing = [v for v in (ID_VAR, IP_VAR, PORT_VAR) if not os.environ.get(v)]
        if missing:
            raise DistributedError(
                f"--role {role} needs the environment variable(s) {', '.join(missing)} "
                "(see docs/guide/scaling-out.md, 'Several machines')"
            )
        try:
            port = int(os.environ[PORT_VAR])
        except ValueError:
            raise DistributedError(
                f"{PORT_VAR} must be a port number, got {os.environ[PORT_VAR]!r}"
            ) from None
        if not 0 < port < 65536:
            raise DistributedError(f"{PORT_VAR} must be a port number, got {port}")
        cluster = cls(os.environ[ID_VAR], os.environ[IP_VAR], port, timeout)
        if cluster.is_chief != (role == "chief"):
            wanted = "contain" if role == "chief" else "not contain"
            raise DistributedError(
                f"{ID_VAR}={cluster.tuner_id!r} does not fit --role {role}: a chief's id must "
                f"contain 'chief', a worker's must not (the id must {wanted} 'chief')"
            )
        return cluster

    @contextlib.contextmanager
    def serving(self, index: int) -> Iterator[None]:
        """Point Keras Tuner at the oracle of architecture ``index`` while in the block."""
        values = {ID_VAR: self.tuner_id, IP_VAR: self.ip, PORT_VAR: str(self.port + index)}
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def free_port_range(count: int, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A first port ``p`` such that ``p .. p + count - 1`` can all be bound on ``host``."""
    for _ in range(attempts):
        first = random.randint(20000, 60000 - count)
        sockets = []
        try:
            for port in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind((host, port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise DistributedError(f"found no {count} consecutive free ports on {host}")


class _SearchOver:
    """An oracle whose search is over: every worker that asks is told to stop."""

    ongoing_trials: dict = {}

    def create_trial(self, tuner_id):
        import keras_tuner as kt

        return kt.engine.trial.Trial(kt.HyperParameters(), trial_id="stopped", status="STOPPED")


def _servicer_class():
    # Keras Tuner imports its gRPC protos lazily, to avoid protobuf version clashes.
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    stopped = protos.get_proto().TrialStatus.STOPPED

    class Servicer(oracle_chief.OracleServicer):
        """Keras Tuner's servicer, noting when a worker last spoke and which trials ended."""

        def __init__(self, oracle, on_trial_end: Callable | None, asked: set[str]) -> None:
            super().__init__(oracle)
            self.on_trial_end = on_trial_end
            self.last_heard = time.monotonic()
            self.asked = asked  # every worker that asked any of the chief's servers
            self.told_to_stop: set[str] = set()

        def _heard(self) -> None:
            self.last_heard = time.monotonic()

        def _hearing(name: str):
            def method(self, request, context):
                self._heard()
                return getattr(oracle_chief.OracleServicer, name)(self, request, context)

            method.__name__ = name
            return method

        GetSpace, UpdateSpace, UpdateTrial, GetTrial, GetBestTrials = map(  # noqa: N815 - gRPC's names
            _hearing, ["GetSpace", "UpdateSpace", "UpdateTrial", "GetTrial", "GetBestTrials"],
        )

        def CreateTrial(self, request, context):  # noqa: N802
            self._heard()
            self.asked.add(request.tuner_id)
            response = super().CreateTrial(request, context)
            if response.trial.status == stopped:
                self.told_to_stop.add(request.tuner_id)
            return response

        def EndTrial(self, request, context):  # noqa: N802
            self._heard()
            response = super().EndTrial(request, context)
            if self.on_trial_end is not None:
                self.on_trial_end(self.oracle.get_trial(request.trial.trial_id))
            return response

    return Servicer


class ChiefServer:
    """The chief's gRPC servers, one per architecture, up until ``close``."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._servers: dict[int, tuple] = {}
        self.asked: set[str] = set()

    def _start(self, index: int, oracle, on_trial_end=None):
        import grpc
        from keras_tuner.src import protos

        servicer = _servicer_class()(oracle, on_trial_end, self.asked)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
        address = f"{self.cluster.ip}:{self.cluster.port + index}"
        if not server.add_insecure_port(address):
            raise DistributedError(f"the chief cannot listen on {address}: port in use?")
        server.start()
        self._servers[index] = (server, servicer)
        return servicer

    def skip(self, index: int) -> None:
        """Serve architecture ``index`` as finished: its workers move on at once."""
        if index in self._servers:  # already serving (its search failed): just stop it
            self._servers[index][1].oracle = _SearchOver()
        else:
            self._start(index, _SearchOver())

    def serve(
        self,
        index: int,
        oracle,
        on_trial_end: Callable | None = None,
        poll: Callable[[], None] | None = None,
    ) -> None:
        """Serve ``oracle`` until its search is over, then answer "stopped" from then on.

        Args:
            on_trial_end: called with each trial the workers end, as the oracle holds it.
            poll: called several times a second (supervision of local workers).

        Raises:
            DistributedError: no worker spoke for ``timeout`` seconds while the search
                was not over.
        """
        servicer = self._start(index, oracle, on_trial_end)
        try:
            while not (servicer.stop_triggered and not oracle.ongoing_trials):
                time.sleep(POLL_SECONDS)
                interrupt.check()  # before poll() could take stopping workers for dead ones
                if poll is not None:
                    poll()
                silent = time.monotonic() - servicer.last_heard
                if silent > self.cluster.timeout:
                    running = ", ".join(
                        f"trial {t.trial_id} on {w}" for w, t in oracle.ongoing_trials.items()
                    )
                    raise DistributedError(
                        f"no worker reported for {silent:.0f} s (timeout "
                        f"{self.cluster.timeout:.0f} s); still running: {running or 'none'}"
                    )
        finally:
            servicer.oracle = _SearchOver()

    def waiting_for(self) -> set[str]:
        """The workers that asked for trials but were not yet told that every search is over
        (by the last architecture's server, the last one they ask)."""
        if not self._servers:
            return set()
        return self.asked - self._servers[max(self._servers)][1].told_to_stop

    def close(self, linger: bool = False) -> None:
        """Stop serving. With ``linger``, first wait until every worker that asked was told
        that the search is over, or until none spoke for the timeout: a worker still ending
        its last trial would otherwise ask a closed port and wait for its deadline."""
        if linger and self.waiting_for():
            print(f"archbench: waiting for {', '.join(sorted(self.waiting_for()))} to hear that "
                  f"every search is over", flush=True)
            while self.waiting_for() and self._silence() < self.cluster.timeout:
                time.sleep(POLL_SECONDS)
        for server, _ in self._servers.values():
            server.stop(grace=1)
        self._servers.clear()

    def _silence(self) -> float:
        return time.monotonic() - max(s.last_heard for _, s in self._servers.values())


class LocalWorkers:
    """Worker processes on this machine, restarted with the same tuner id when they die.

    Args:
        argv: the worker's command line.
        count: number of workers.
        cluster: the chief's cluster (address and first port).
        log_dir: each worker writes ``worker<i>.log`` here.
        threads: TensorFlow threads per worker on CPU (None: TensorFlow's default).
        gpus: GPUs on this machine; worker ``i`` sees GPU ``i % gpus`` only.
        max_restarts: restarts per worker before the run gives up.
    """

    def __init__(
        self, argv: list[str], count: int, cluster: Cluster, log_dir: Path,
        threads: int | None = None, gpus: int = 0, max_restarts: int = 3,
    ) -> None:
        self.argv = argv
        self.cluster = cluster
        self.log_dir = log_dir
        self.threads = threads
        self.gpus = gpus
        self.max_restarts = max_restarts
        self.ids = [f"worker{i}" for i in range(count)]
        self.processes: dict[str, subprocess.Popen] = {}
        self.restarts = {w: 0 for w in self.ids}

    def env(self, worker: str) -> dict[str, str]:
        env = {
            **os.environ,
            ID_VAR: worker,
            IP_VAR: self.cluster.ip,
            PORT_VAR: str(self.cluster.port),
            WORKER_SLOT: str(self.ids.index(worker)),  # its own cores on jax (--threads)
        }
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.ids.index(worker) % self.gpus)
        else:
            env["CUDA_VISIBLE_DEVICES"] = "-1"  # CPU: keep workers off any GPU
        return env

    def log_path(self, worker: str) -> Path:
        return self.log_dir / f"{worker}.log"

    def _spawn(self, worker: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv + (["--threads", str(self.threads)] if self.threads else [])
        with self.log_path(worker).open("a") as log:
            self.processes[worker] = subprocess.Popen(
                argv, env=self.env(worker), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def start(self) -> None:
        for worker in self.ids:
            self._spawn(worker)

    def poll(self) -> None:
        """Restart any worker that died.

        Raises:
            DistributedError: a worker died more than ``max_restarts`` times.
        """
        for worker, process in self.processes.items():
            code = process.poll()
            if code is None or code == 0:
                continue
            if code == EXIT_RECYCLE:  # planned: memory back to the start
                self._spawn(worker)
                continue
            if self.restarts[worker] >= self.max_restarts:
                raise WorkersLost(
                    f"{worker} died {self.restarts[worker] + 1} times (last exit code {code}); "
                    f"see {self.log_path(worker)}"
                )
            self.restarts[worker] += 1
            print(f"archbench: {worker} died (exit code {code}); restarting it "
                  f"({self.restarts[worker]}/{self.max_restarts})", file=sys.stderr, flush=True)
            self._spawn(worker)

    def stop(self, grace: float = 30.0) -> None:
        """Wait up to ``grace`` seconds for the workers to exit, then kill the rest."""
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
