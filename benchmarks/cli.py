"""The ``archbench`` command: run, models, check and report."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import interrupt

EXIT_BAD_INPUT = 2
EXIT_WORKERS_LOST = 3  # a distributed search lost its workers; finished results are kept

# Budget fields that get a command-line override, with their help text.
BUDGET_OPTIONS = {
    "tuner": "tuner algorithm: random, bayesian or hyperband",
    "trials": "tuner trials per architecture",
    "epochs": "epochs per trial (Hyperband: the most epochs of a trial)",
    "batch_size": "batch size for every training",
    "train_size": "training images used in each trial (0 = the whole training split)",
    "val_size": "validation images carved from the training set",
    "final_train_size": "training images of the final training (0 = the whole training split)",
    "final_epochs": "epochs of the final training",
    "final_seeds": "final trainings per architecture, one seed each",
    "patience": "early-stopping patience in epochs (0 = off)",
    "lr_min": "lower end of the shared learning-rate range",
    "lr_max": "upper end of the shared learning-rate range",
    "seed": "seed of the split, the tuner and every training",
    "trial_timeout": "seconds of training after which a trial fails (0 = no limit)",
    "distribute": "tf.distribute strategy of each training: none or mirrored (every GPU)",
    "mixed_precision": "float16 compute: auto (on with a GPU of compute capability >= 7), on, off",
    "xla": "XLA compilation: auto (Keras' rule: on with a GPU, off on CPU), on, off",
}


class UserError(Exception):
    """Bad input: reported as one line with exit code 2."""


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _add_budget_options(parser: argparse.ArgumentParser) -> None:
    from benchmarks.budget import PRESETS, Budget

    group = parser.add_argument_group("budget (overrides of the preset's fields)")
    group.add_argument(
        "--budget", default="quick", help=f"preset: {', '.join(PRESETS)} (default: quick)"
    )
    for field in dataclasses.fields(Budget):
        if field.name not in BUDGET_OPTIONS:
            continue
        kind = {int: _whole_number, float: _number}.get(type(field.default), str)
        group.add_argument(
            f"--{field.name.replace('_', '-')}", type=kind, default=None,
            help=BUDGET_OPTIONS[field.name],
        )
    group.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=None,
        help="random shifts and flips while training",
    )


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get the same one-line error and exit code as every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="archbench",
        description="Which CNN architecture should we use? Tune every registered architecture "
        "under one identical budget, log every trial to W&B, and rank them.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="benchmark architectures under one budget")
    run.add_argument(
        "--architectures", "-a", nargs="+", default=["*"], metavar="NAME",
        help="names or wildcards, space- or comma-separated (default: every architecture)",
    )
    _add_data_options(run, several=True)
    run.add_argument(
        "--image-size", type=_image_size, metavar="HxW",
        help="--dataset folder: resize every image to HxW (default: the most common size)",
    )
    run.add_argument(
        "--test-fraction", type=_number, default=0.2, metavar="F",
        help="share of a dataset without a test split carved off as its test set (default 0.2)",
    )
    run.add_argument("--output", "-o", type=Path, default=Path("runs"), help="parent of run directories (default: runs)")
    run.add_argument("--name", help="run directory name and W&B group (default: DATASET-BUDGET)")
    run.add_argument("--overwrite", action="store_true", help="delete an existing run directory of that name first")
    run.add_argument("--wandb-mode", default="auto", help="auto (online when logged in, else offline), online, offline or disabled")
    run.add_argument("--wandb-project", default="archbench", help="W&B project (default: archbench)")
    run.add_argument("--wandb-entity", help="W&B entity (user or team)")
    run.add_argument(
        "--trial-gradients", action="store_true",
        help="log per-layer gradient norms of every trial to W&B (always on for final runs)",
    )
    _add_scale_options(run)
    _add_budget_options(run)

    models = commands.add_parser("models", help="list registered architectures")
    models.add_argument("pattern", nargs="*", default=["*"], help="wildcards (default: all)")
    _add_data_options(models)

    check = commands.add_parser(
        "check", help="validate one architecture in seconds, before any budget is spent"
    )
    check.add_argument("name", help="registered architecture name")
    _add_data_options(check)

    report = commands.add_parser(
        "report", help="write the leaderboard of a run directory, or of a W&B group"
    )
    report.add_argument("run_dir", type=Path, nargs="*", help="a run directory; several (one "
                        "per dataset, one budget) add a cross-dataset report")
    report.add_argument("-o", "--output", type=Path, help="markdown file (default: RUN_DIR/"
                        "leaderboard.md; with several: across-datasets/across-datasets.md beside them)")
    report.add_argument("--allow-mixed-budgets", action="store_true", help="rank results made under different budgets")
    report.add_argument("--wandb", metavar="ENTITY/PROJECT", help="build it from the runs of a W&B project instead")
    report.add_argument("--group", help="with --wandb: the benchmark run's name (its W&B group)")
    return parser


def _add_data_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    from benchmarks.datasets import NAMES

    if several:
        parser.add_argument(
            "--dataset", nargs="+", default=["fashion_mnist"], metavar="NAME",
            help=f"{', '.join(NAMES)} (default: fashion_mnist); several run one after the "
            "other, each in its own run directory, followed by a cross-dataset report")
        parser.add_argument(
            "--data-dir", nargs="+", type=_data_path, metavar="PATH",
            help="the dataset's files: a directory (built-in datasets, --dataset folder) or "
            "FILE.npz (--dataset npz); with several datasets one per dataset, '-' for none")
        return
    parser.add_argument("--dataset", default="fashion_mnist",
                        help=f"{', '.join(NAMES)} (default: fashion_mnist)")
    parser.add_argument("--data-dir", type=Path, help="the dataset's files: a directory (built-in "
                        "datasets, --dataset folder) or FILE.npz (--dataset npz)")


def _data_path(text: str) -> Path | None:
    return None if text == "-" else Path(text)


def _image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 64x64, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return height, width


def _add_scale_options(run: argparse.ArgumentParser) -> None:
    scale = run.add_argument_group("scale out (Keras Tuner's distributed mode)")
    scale.add_argument(
        "--workers", type=_whole_number, default=0, metavar="N",
        help="start N worker processes on this machine, this process being the chief "
        "(one GPU per worker where GPUs exist, the CPU cores split between them otherwise)",
    )
    scale.add_argument(
        "--role", choices=None, metavar="chief|worker",
        help="this process's part in a search over several machines, configured by "
        "KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT",
    )
    scale.add_argument(
        "--threads", type=_whole_number, default=None, metavar="N",
        help="TensorFlow threads of this process (default: TensorFlow's choice)",
    )
    scale.add_argument(
        "--recycle-after", type=_whole_number, default=0, metavar="TRIALS",
        help="replace each worker process after this many trials, so that whatever "
        "TensorFlow keeps per trained model goes with the process (default 0: never)",
    )
    scale.add_argument(
        "--chief-timeout", type=_number, default=None, metavar="SECONDS",
        help="the chief fails an architecture's search when no worker reports for this "
        "long (default: 3600)",
    )


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
    names = [o.name for o in every]
    if len(set(names)) < len(names):
        raise UserError(f"two datasets would share a run directory ({', '.join(names)}); "
                        "give each dataset once")
    return every


def options_from_args(args: argparse.Namespace, dataset: str | None = None,
                      data_dir: Path | None = None, several: bool = False):
    """The ``RunOptions`` of a parsed ``archbench run`` command line for one dataset
    (default: its first), checked.

    Raises:
        UserError, BudgetError, DataError, TrackingError, RegistryError: bad input.
    """
    if dataset is None:
        dataset, data_dir = args.dataset[0], (args.data_dir or [None])[0]
    from benchmarks.budget import make_budget
    from benchmarks.data import DataRequest
    from benchmarks.datasets import check_request, dataset_label
    from benchmarks.distributed import DEFAULT_TIMEOUT, ROLES
    from benchmarks.options import RunOptions
    from benchmarks.tracking import resolve_mode
    from models.registry import resolve

    overrides = {name: getattr(args, name) for name in [*BUDGET_OPTIONS, "augment"]}
    budget = make_budget(args.budget, **overrides)
    request = DataRequest(dataset, data_dir, args.image_size, args.test_fraction)
    check_request(request)
    resolve_mode(args.wandb_mode)  # refuse a bad mode before any work
    names = resolve(_split_names(args.architectures))
    if args.role is not None and args.role not in ROLES:
        raise UserError(f"unknown --role {args.role!r}; choose chief or worker")
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
    timeout = DEFAULT_TIMEOUT if args.chief_timeout is None else args.chief_timeout
    if not timeout > 0:
        raise UserError(f"--chief-timeout must be a positive number of seconds, got {timeout}")
    return RunOptions(
        architectures=names, budget=budget, dataset=dataset, output=args.output,
        name=_run_name(args.name, dataset_label(request), budget.name, several), data_dir=data_dir,
        image_size=args.image_size, test_fraction=args.test_fraction,
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
    from models.registry import broken_modules

    every = run_options(args)
    for module, error in broken_modules().items():
        print(f"archbench: warning: {module} failed to import and is skipped: {error}",
              file=sys.stderr)

    from benchmarks.rundir import safe_name
    from benchmarks.runner import run_benchmark
    from reports.across import ACROSS_MD, write_across
    from reports.leaderboard import write_leaderboard

    codes = []
    with interrupt.stop_on_signals():
        for index, options in enumerate(every, start=1):
            if len(every) > 1:
                print(f"archbench: dataset {index}/{len(every)}: {options.dataset}", flush=True)
            codes.append(run_benchmark(options, write_leaderboard))
    if len(every) > 1:
        folder = every[0].output / f"across-datasets-{safe_name(every[0].budget.name)}"
        path = write_across([o.run_dir for o in every], folder / ACROSS_MD)
        print(f"archbench: cross-dataset report written to {path}")
    return max(codes)


def cmd_models(args: argparse.Namespace) -> int:
    import keras_tuner as kt
    from tabulate import tabulate

    from benchmarks.data import DataRequest
    from benchmarks.datasets import input_shape
    from models.registry import broken_modules, get_architecture, list_architectures

    names = list_architectures(args.pattern)
    shape, classes = input_shape(DataRequest(args.dataset, args.data_dir))
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
    from benchmarks.check import CheckFailed, check_architecture
    from benchmarks.data import DataRequest
    from benchmarks.datasets import input_shape
    from models.registry import get_architecture

    architecture = get_architecture(args.name)
    shape, classes = input_shape(DataRequest(args.dataset, args.data_dir))
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

        if not args.group or args.run_dir:
            raise UserError("--wandb ENTITY/PROJECT needs --group NAME and no RUN_DIR")
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
    else:
        from benchmarks.rundir import is_run_dir, merge_worker_trials

        several = len(args.run_dir) > 1
        for run_dir in args.run_dir:
            if is_run_dir(run_dir):  # trial rows of workers copied in from other machines
                merge_worker_trials(run_dir)
            path = write_leaderboard(run_dir, None if several else args.output,
                                     args.allow_mixed_budgets)
            print(path)
        if several:
            from reports.across import ACROSS_MD, write_across

            output = args.output or args.run_dir[0].parent / "across-datasets" / ACROSS_MD
            print(write_across(args.run_dir, output, args.allow_mixed_budgets))
    return 0


def _user_errors() -> tuple[type[BaseException], ...]:
    from benchmarks.budget import BudgetError
    from benchmarks.data import DataError
    from benchmarks.distributed import DistributedError, WorkersLost
    from benchmarks.rundir import RunDirError
    from benchmarks.tracking import TrackingError
    from models.registry import RegistryError
    from reports.leaderboard import ReportError

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
