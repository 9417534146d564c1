"""The run directory's preparation and its ``manifest.json``: what a run was made under."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import rundir, timing
from benchmarks.data.dataset import Dataset
from benchmarks.data.splits import Splits
from benchmarks.run.options import RunOptions
from benchmarks.runtime.lock import RunLock


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def check_run_dir(options: RunOptions) -> dict[str, Any] | None:
    """What :func:`prepare_run_dir` would refuse, found without writing anything.

    Returns:
        The manifest of the run to resume, else None (a new run, or ``--overwrite``).

    Raises:
        RunDirError: the path is a file or another program's directory, cannot be
            written, or holds a run with another budget.
    """
    path = options.run_dir
    if path.exists() and not path.is_dir():
        raise rundir.RunDirError(f"{path} is a file, not a run directory; choose another --name")
    if path.exists() and not rundir.is_run_dir(path) and _foreign_files(path):
        raise rundir.RunDirError(
            f"{path} exists and is not an archbench run directory; choose another --name"
        )
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = errno.EACCES if existing.is_dir() else errno.ENOTDIR
        where = options.output if existing != path else path
        raise rundir.RunDirError(f"cannot write to {where}: {os.strerror(why)}")
    if options.overwrite or not rundir.is_run_dir(path):
        return None
    manifest = rundir.read_json(path / rundir.MANIFEST)
    check_same_budget(manifest, options, path)
    return manifest


@contextlib.contextmanager
def claim_run_dir(options: RunOptions) -> Iterator[dict[str, Any] | None]:
    """Hold the run directory's lock and check the directory, once, for the whole run;
    yields what :func:`check_run_dir` returns (the manifest to resume, or None).

    Raises:
        RunDirError: another run holds the lock, or as :func:`check_run_dir`.
    """
    with RunLock(options.lock_path, options.run_dir):
        yield check_run_dir(options)


def prepare_run_dir(options: RunOptions) -> None:
    """Create the run directory that :func:`check_run_dir` checked, emptied first by
    ``--overwrite``, and make sure it can be written.

    Raises:
        RunDirError: it cannot be written.
    """
    path = options.run_dir
    if options.overwrite and rundir.is_run_dir(path):
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise rundir.RunDirError(f"cannot write to run directory {path}: {exc.strerror}") from exc


def check_same_budget(manifest: dict[str, Any], options: RunOptions, path: Path) -> None:
    """Raises RunDirError naming each budget field that differs from the run's."""
    if manifest["budget"]["hash"] == options.budget.hash:
        return
    from benchmarks.budget import budget_from_dict

    old = budget_from_dict(manifest["budget"]["fields"]).to_dict()  # fields it predates filled
    new = options.budget.to_dict()
    changed = [k for k in new if k != "name" and old.get(k) != new[k]]
    what = (", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in changed) if changed else
            "(the same fields, which meant something else in the archbench that made it: "
            f"budget hash {manifest['budget']['hash']} -> {options.budget.hash})")
    raise rundir.RunDirError(
        f"{path} holds a run with a different budget {what}; resume it with its own "
        "settings, or start a new run with --name NAME (or --overwrite)"
    )


def _foreign_files(path: Path) -> list[Path]:
    """What a directory holds besides what archbench's workers may write before the chief."""
    own = {rundir.TUNER_DIR, rundir.WORKERS_DIR, rundir.WANDB_DIR}
    return [p for p in path.iterdir() if p.name not in own and not p.name.startswith(".")]


def environment() -> dict[str, Any]:
    """Versions and hardware, so that numbers can be compared across machines."""
    import keras
    import keras_tuner as kt
    import numpy as np
    import wandb

    from benchmarks.runtime import backends

    computes = backends.versions()
    return {
        "python": platform.python_version(),
        "backend": computes.pop("backend"),
        "tensorflow": computes.get("tensorflow"),  # None on another backend
        "keras": keras.__version__,
        "keras_tuner": kt.__version__,
        "wandb": wandb.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "gpus": [name for name, _ in backends.gpus()],
        "cuda": ({"cuda": computes["cuda"], "cudnn": computes.get("cudnn")}
                 if computes.get("cuda") else None),
        "backend_versions": computes,
        "threads": {  # TensorFlow's pools (0: its default, one per core), or JAX's cores
            **backends.threads_in_effect(),
            **{name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
        },
        "packages": installed_packages(),
    }


THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                    "TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS")
# What the measurements and the trained numbers depend on besides the code and the budget.
MACHINE_FIELDS = ("cpu", "cpu_count", "gpus", "cuda", "threads", "backend", "backend_versions",
                  "keras")


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found = {(d.metadata["Name"] or "").lower(): d.version for d in importlib.metadata.distributions()}
    found.pop("", None)
    return dict(sorted(found.items()))


def machine(accelerator: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What this process measures under (hardware, the versions that compute, threads and
    the accelerator settings in effect, ``auto`` resolved) and its 12-digit hash, which
    every results row carries: rows of other machines or settings are told apart."""
    env = environment()
    record = {**{k: env[k] for k in MACHINE_FIELDS}, "accelerator": accelerator}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    return digest, record


# The CPU's vector extensions that decide which oneDNN kernels run (and so the speed, and
# how edge cases such as infinities come out).
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni",
                "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "sve")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU's ``VECTOR_FLAGS`` (empty where ``/proc/cpuinfo`` cannot be read)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in VECTOR_FLAGS if flag in present]
    except OSError:
        pass
    return []


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
    from benchmarks.training.measure import SETTINGS

    return {
        "name": options.name,
        "budget": {"fields": options.budget.to_dict(), "hash": options.budget.hash},
        "dataset": {
            "name": dataset.name,
            "source": dataset.source,
            "checksums": dataset.checksums,
            "split_sizes": splits.sizes(),
            "split_index_sha256": splits.index_hash,
            "input": "streamed" if splits.streamed else "memory",
            "mirror_invariant": dataset.mirror_invariant,
            "class_names": list(dataset.class_names),
            "image_shape": list(dataset.image_shape),
        },
        "architectures": options.architectures,
        "seeds": {"budget": options.budget.seed, "final": options.budget.final_seed_values()},
        "environment": environment(),
        "measurement": dict(SETTINGS),
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


def open_manifest(options: RunOptions, dataset: Dataset, splits: Splits,
                  resumed: dict[str, Any] | None) -> dict[str, Any]:
    """A new manifest, or the resumed run's (``resumed``, from :func:`claim_run_dir`),
    checked against this command's dataset."""
    prepare_run_dir(options)
    manifest = resumed
    if manifest is None:
        manifest = new_manifest(options, dataset, splits)
    elif manifest["dataset"]["name"] != dataset.name:
        raise rundir.RunDirError(
            f"{options.run_dir} holds a run with a different dataset "
            f"{manifest['dataset']['name']} -> {dataset.name}; resume it with its own settings, "
            "or start a new run with --name NAME (or --overwrite)"
        )
    elif manifest["dataset"]["checksums"] != dataset.checksums:
        raise rundir.RunDirError(
            f"{options.run_dir} was made from other dataset files than {dataset.source}; "
            "start a new run with --name NAME (or --overwrite)"
        )
    else:
        known = manifest["architectures"]
        manifest["architectures"] = known + [a for a in options.architectures if a not in known]
        manifest["finished_at"] = None
        orphans = rundir.orphan_wandb_runs(options.run_dir, manifest)
        if orphans:
            print(f"archbench: resuming; {len(orphans)} W&B run(s) of interrupted trainings "
                  f"are not counted: {', '.join(orphans)}", flush=True)
    rundir.write_json(options.run_dir / rundir.MANIFEST, manifest)
    return manifest


class TimeBook:
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
