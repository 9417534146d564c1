"""The ``archbench`` command: run, models, check and report."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.cli.arguments import BUDGET_OPTIONS, EXIT_BAD_INPUT, build_parser
from benchmarks.runtime import interrupt

EXIT_WORKERS_LOST = 3  # a distributed search lost its workers; finished results are kept
__all__ = ["EXIT_BAD_INPUT", "EXIT_WORKERS_LOST", "build_parser", "main"]


class UserError(Exception):
    """Bad input: reported as one line with exit code 2."""


def _split_names(items: Sequence[str]) -> list[str]:
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def run_options(args: argparse.Namespace) -> list:
    """The ``RunOptions`` of each dataset of a parsed ``archbench run``, all checked before
    any runs.

    Raises:
        UserError, BudgetError, DataError, TrackingError, RegistryError: bad input.
    """
    datasets = args.dataset
    data_dirs = args.data_dir or [None] * len(datasets)
    if len(data_dirs) != len(datasets):
        raise UserError(f"--data-dir gives {len(data_dirs)} path(s) for {len(datasets)} "
                        "dataset(s); give one per dataset, '-' where there is none")
    if len(datasets) > 1 and args.role:
        raise UserError("--role takes part in one dataset's search; give one --dataset")
    every = [options_from_args(args, name, path, several=len(datasets) > 1)
             for name, path in zip(datasets, data_dirs, strict=True)]
    run_dirs = [o.run_dir for o in every]
    if len(set(run_dirs)) < len(run_dirs):
        raise UserError(f"two datasets would share a run directory ({', '.join(map(str, run_dirs))}); "
                        "give each dataset once, or files of other names")
    return every


def options_from_args(args: argparse.Namespace, dataset: str, data_dir: Path | None,
                      several: bool = False):
    """The ``RunOptions`` of a parsed ``archbench run`` command line for one of its
    datasets, checked.

    Raises:
        UserError, BudgetError, DataError, TrackingError, RegistryError: bad input.
    """
    from benchmarks.budget import make_budget
    from benchmarks.data.dataset import DataRequest
    from benchmarks.data.sources import check_request, dataset_label
    from benchmarks.run.options import RunOptions
    from benchmarks.runtime.backends import requested
    from benchmarks.search.distributed import Cluster
    from benchmarks.tracking.runs import check_mode
    from models.registry import declared_names, resolve

    overrides = {name: getattr(args, name) for name in [*BUDGET_OPTIONS, "augment"]}
    overrides["backend"] = requested(args.backend)  # --backend, else $KERAS_BACKEND
    budget = make_budget(args.budget, **overrides)
    request = DataRequest(dataset, data_dir, args.image_size, args.test_fraction,
                          args.mirror_invariant)
    check_request(request)
    check_mode(args.wandb_mode)  # refuse a bad mode before any work
    names = resolve(_split_names(args.architectures), declared_names())  # no import yet
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    if args.workers and args.role == "worker":
        raise UserError("--workers starts workers from a chief; it cannot go with --role worker")
    if args.recycle_after < 0:
        raise UserError(f"--recycle-after must be 0 or more, got {args.recycle_after}")
    if args.recycle_after and not (args.workers or args.role == "worker"):
        raise UserError("--recycle-after replaces worker processes: use it with --workers N")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    timeout = args.chief_timeout
    if not timeout > 0:
        raise UserError(f"--chief-timeout must be a positive number of seconds, got {timeout}")
    if args.role is not None:
        Cluster.from_environment(args.role, timeout)  # its KERASTUNER_* variables, checked
    return RunOptions(
        architectures=names, budget=budget, dataset=dataset, output=args.output,
        name=_run_name(args.name, dataset_label(request), budget.name, several), data_dir=data_dir,
        image_size=args.image_size, test_fraction=args.test_fraction, input_mode=args.input,
        mirror_invariant=args.mirror_invariant,
        overwrite=args.overwrite, wandb_mode=args.wandb_mode,
        wandb_project=args.wandb_project, wandb_entity=args.wandb_entity,
        trial_gradients=args.trial_gradients, role=args.role, workers=args.workers,
        threads=args.threads, chief_timeout=timeout, recycle_after=args.recycle_after,
    )


def _run_name(name: str | None, dataset: str, budget: str, several: bool) -> str:
    if name is None:
        return f"{dataset}-{budget}"
    return f"{name}-{dataset}" if several else name


def cmd_run(args: argparse.Namespace) -> int:
    every = run_options(args)
    # from the first lock on, Ctrl-C and SIGTERM stop the command cleanly (the locks released)
    with interrupt.stop_on_signals(), contextlib.ExitStack() as claims:
        # data files and run directories, checked before the backend loads
        inputs = claim_inputs(every, claims)
        backend = every[0].budget.backend
        print(f"archbench: input checked, starting Keras on {backend}", flush=True)
        _start_backend(args, backend, args.threads)
        _resolve_imported(args, every)
        return _run_every(every, inputs)


def claim_inputs(every: Sequence, claims: contextlib.ExitStack) -> list[tuple]:
    """Load every dataset (NumPy only) and claim and check every run directory (its lock
    held in ``claims``), so that a bad file or directory is refused before TensorFlow loads.

    Returns:
        Each run's dataset and the manifest it resumes (None for a new run or a worker).

    Raises:
        DataError, RunDirError: naming the file or directory.
    """
    from benchmarks.data.sources import load_dataset
    from benchmarks.run.manifest import claim_run_dir

    datasets = [load_dataset(o.data_request, o.budget.seed) for o in every]  # all, then claims
    # a worker writes no run directory of its own
    return [(dataset, claims.enter_context(claim_run_dir(o)) if o.role != "worker" else None)
            for o, dataset in zip(every, datasets, strict=True)]


def _resolve_imported(args: argparse.Namespace, every: Sequence) -> None:
    """The architectures' names again, now that their files are imported (a wildcard
    skips a file that failed to import, with a warning)."""
    from models.registry import broken_modules, resolve

    for module, error in broken_modules().items():
        print(f"archbench: warning: {module} failed to import and is skipped: {error}",
              file=sys.stderr)
    for options in every:
        options.architectures = resolve(_split_names(args.architectures))


def _run_every(every: Sequence, inputs: list[tuple]) -> int:
    """Each dataset's run in turn, then the cross-dataset report when there are several."""
    from benchmarks.run.runner import run_benchmark
    from benchmarks.rundir import safe_name
    from reports.across import ACROSS_MD, write_across
    from reports.leaderboard import write_leaderboard

    codes = []
    for index, options in enumerate(every, 1):
        if len(every) > 1:
            print(f"archbench: dataset {index}/{len(every)}: {options.dataset}", flush=True)
        dataset, resumed = inputs[index - 1]
        inputs[index - 1] = None  # a finished dataset's memory is free for the next
        codes.append(run_benchmark(options, dataset, write_leaderboard, resumed))
        del dataset
    if len(every) > 1:
        folder = every[0].output / f"across-datasets-{safe_name(every[0].budget.name)}"
        path = write_across([o.run_dir for o in every], folder / ACROSS_MD)
        print(f"archbench: cross-dataset report written to {path}")
    return max(codes)


def _start_backend(args: argparse.Namespace, backend: str | None = None,
                   threads: int | None = None) -> None:
    """Load Keras on the chosen backend (``--backend``, else ``$KERAS_BACKEND``, else
    TensorFlow) before anything imports it."""
    from benchmarks.runtime import backends

    try:
        backends.start(backend or backends.requested(args.backend), args.debug, threads)
    except backends.BackendError as exc:
        raise UserError(str(exc)) from None


def cmd_models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmarks.data.dataset import DataRequest
    from benchmarks.data.sources import input_shape
    from models.registry import declared_names, resolve

    shape, classes = input_shape(DataRequest(args.dataset, args.data_dir))
    declared = declared_names()
    if declared is not None and args.pattern:
        resolve(args.pattern, declared)  # an unknown name or pattern, refused before Keras
    from benchmarks.runtime.backends import requested

    print(f"archbench: starting Keras on {requested(args.backend)} to build each architecture "
          "and count its parameters", file=sys.stderr, flush=True)
    _start_backend(args)
    import keras_tuner as kt

    from models.registry import broken_modules, get_architecture, list_architectures

    names = list_architectures(args.pattern)
    rows = []
    for name in names:
        arch = get_architecture(name)
        model = arch.build(kt.HyperParameters(), shape, classes)
        rows.append([name, arch.family, f"{model.count_params():,}", arch.description])
    print(tabulate(rows, headers=["architecture", "family", "parameters*", "description"]))
    print(f"* at default hyperparameters, for {args.dataset} "
          f"({'x'.join(map(str, shape))}, {classes} classes)")
    for module, error in broken_modules().items():
        print(f"archbench: warning: {module} failed to import: {error}", file=sys.stderr)
    if not rows:
        raise UserError(f"no architecture matches {' '.join(args.pattern)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from benchmarks.data.dataset import DataRequest
    from benchmarks.data.sources import input_shape
    from models.registry import declared_names, resolve

    shape, classes = input_shape(DataRequest(args.dataset, args.data_dir))
    resolve([args.name], declared_names())
    _start_backend(args)
    from benchmarks.cli.check import CheckFailed, check_architecture
    from models.registry import get_architecture

    architecture = get_architecture(args.name)
    print(f"checking {architecture.name} ({architecture.module}) on {args.dataset} shapes "
          f"({'x'.join(map(str, shape))}, {classes} classes)")
    try:
        check_architecture(architecture, shape, classes)
    except CheckFailed as exc:
        print(f"archbench: check failed: {architecture.name}: {exc}", file=sys.stderr)
        return 1
    print(f"{architecture.name}: ok")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reports.leaderboard import write_leaderboard, write_report

    if args.wandb:
        from benchmarks.rundir import safe_name
        from reports.wandb_source import fetch_runs, runs_to_data

        if not args.group or args.run_dir or args.against:
            raise UserError("--wandb ENTITY/PROJECT needs --group NAME, and no RUN_DIR or --against")
        output = args.output or Path(f"leaderboard-{safe_name(args.group)}") / "leaderboard.md"
        try:
            runs = fetch_runs(args.wandb, args.group)
        except Exception as exc:  # noqa: BLE001 - no login, no network, no such project
            raise UserError(f"cannot read the W&B runs of {args.wandb}: {exc}") from exc
        try:
            data = runs_to_data(runs, args.group, args.wandb)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        print(write_report(data, output, args.allow_mixed_budgets))
    elif not args.run_dir:
        raise UserError("report needs RUN_DIR, or --wandb ENTITY/PROJECT --group NAME")
    elif args.against is not None:
        print(_report_against(args))
    else:
        several = len(args.run_dir) > 1
        for run_dir in args.run_dir:
            _merge_workers(run_dir)
            path = write_leaderboard(run_dir, None if several else args.output,
                                     args.allow_mixed_budgets)
            print(path)
        if several:
            from reports.across import ACROSS_MD, write_across

            output = args.output or args.run_dir[0].parent / "across-datasets" / ACROSS_MD
            print(write_across(args.run_dir, output, args.allow_mixed_budgets))
    return 0


def _merge_workers(run_dir: Path) -> None:
    """Into a run directory's ``trials.csv``, the trial rows of workers copied in from other
    machines (a path that is no run directory is left for the report to refuse)."""
    from benchmarks.rundir import is_run_dir, merge_worker_trials

    if is_run_dir(run_dir):
        merge_worker_trials(run_dir)


def _report_against(args: argparse.Namespace) -> Path:
    """One run's leaderboard with the section comparing it with another budget's run."""
    from reports.agreement import write_leaderboard_against

    if len(args.run_dir) > 1:
        raise UserError("--against compares one RUN_DIR with another run directory; give one RUN_DIR")
    _merge_workers(args.run_dir[0])
    return write_leaderboard_against(args.run_dir[0], args.against, args.output,
                                     args.allow_mixed_budgets)


def _user_errors() -> tuple[type[BaseException], ...]:
    from benchmarks.budget import BudgetError
    from benchmarks.data.dataset import DataError
    from benchmarks.rundir import RunDirError
    from benchmarks.search.distributed import DistributedError, WorkersLost
    from benchmarks.tracking.runs import TrackingError
    from models.registry import RegistryError
    from reports import ReportError

    errors = (UserError, BudgetError, DataError, RunDirError, TrackingError, RegistryError,
              ReportError, DistributedError)
    return errors, WorkersLost


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``archbench`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up noise out
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "models": cmd_models, "check": cmd_check, "report": cmd_report}
    user_errors, workers_lost = _user_errors()
    try:
        return handlers[args.command](args)
    except user_errors as exc:
        if args.debug:
            raise
        print(f"archbench: error: {exc}", file=sys.stderr)
        return EXIT_WORKERS_LOST if isinstance(exc, workers_lost) else EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        how = exc if isinstance(exc, interrupt.Stopped) else "interrupted"
        kept = ("; finished trials and architectures are kept: run the same command again "
                "to resume") if args.command == "run" else ""
        print(f"archbench: {how}{kept}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, interrupt.Stopped) else 130


if __name__ == "__main__":
    sys.exit(main())
