"""The command line's grammar: every option of ``archbench``, with its help text."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from benchmarks.data.dataset import TEST_FRACTION
from benchmarks.data.rows import INPUT_MODES, STREAM_SHARE
from benchmarks.run.options import WANDB_PROJECT
from benchmarks.search.distributed import DEFAULT_TIMEOUT

EXIT_BAD_INPUT = 2

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
    "schedule": "learning rate over a training: cosine (linear warm-up, cosine to zero) or constant",
    "warmup": "share of a training's steps spent warming the learning rate up (cosine)",
    "weight_decay_min": "lower end of AdamW's searched weight decay",
    "weight_decay_max": "upper end of AdamW's searched weight decay (0 = Adam, no decay)",
    "label_smoothing": "label smoothing of the loss (0 = none)",
    "budget_by": "what is equal between architectures: epochs, or time (training seconds on "
                 "this machine: --trial-seconds, --final-seconds)",
    "trial_seconds": "with --budget-by time: training seconds of every trial",
    "final_seconds": "with --budget-by time: training seconds of every final training",
    "max_params": "the search samples no configuration with more parameters (0 = no cap)",
    "max_macs": "the search samples no configuration with more multiply-accumulates per "
                "image (0 = no cap)",
    "seed": "seed of the split, the tuner and every training",
    "trial_timeout": "seconds of training after which a trial fails (0 = no limit)",
    "distribute": "data parallelism of each training: none or mirrored (every GPU: "
                  "tf.distribute's MirroredStrategy, Keras' DataParallel on jax)",
    "mixed_precision": "half-precision compute: auto (float16 with a GPU of compute capability "
                       ">= 7), on (float16), off, bfloat16 (CPUs, GPUs of capability >= 8)",
    "xla": "XLA compilation on tensorflow: auto (Keras' rule: on with a GPU, off on CPU), on, "
           "off; jax always compiles",
    "backend": "Keras backend: tensorflow or jax (default: $KERAS_BACKEND, else tensorflow)",
}


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
        help="random shifts while training, and flips where the classes are mirror-invariant",
    )


def _version() -> str:
    """The installed archbench's version (pyproject.toml's), or "unknown" when running
    from a checkout that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("archbench")
    except metadata.PackageNotFoundError:
        return "unknown"


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
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks on errors, and TensorFlow's start-up lines")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="benchmark architectures under one budget")
    run.add_argument(
        "--architectures", "-a", nargs="+", default=["*"], metavar="NAME",
        help="names or wildcards, space- or comma-separated (default: every architecture)",
    )
    _add_data_options(run, several=True)
    _add_input_options(run)
    run.add_argument("--output", "-o", type=Path, default=Path("runs"), help="parent of run directories (default: runs)")
    run.add_argument("--name", help="run directory name and W&B group (default: DATASET-BUDGET)")
    run.add_argument("--overwrite", action="store_true", help="delete an existing run directory of that name first")
    run.add_argument("--wandb-mode", default="auto", help="auto (online when logged in, else offline), online, offline or disabled")
    run.add_argument("--wandb-project", default=WANDB_PROJECT,
                     help=f"W&B project (default: {WANDB_PROJECT})")
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
    _add_backend_option(models)

    check = commands.add_parser(
        "check", help="validate one architecture in seconds, before any budget is spent"
    )
    check.add_argument("name", help="registered architecture name")
    _add_data_options(check)
    _add_backend_option(check)

    report = commands.add_parser(
        "report", help="write the leaderboard of a run directory, or of a W&B group"
    )
    report.add_argument("run_dir", type=Path, nargs="*", help="a run directory; several (one "
                        "per dataset, one budget) add a cross-dataset report")
    report.add_argument("-o", "--output", type=Path, help="markdown file (default: RUN_DIR/"
                        "leaderboard.md; with several: across-datasets/across-datasets.md beside them)")
    report.add_argument("--allow-mixed-budgets", action="store_true", help="rank results made under different budgets")
    report.add_argument(
        "--against", type=Path, metavar="OTHER_RUN_DIR",
        help="add a section on whether the cheaper of the two budgets (same dataset) predicts "
        "the other's ranking: Kendall, Spearman, flipped pairs, and a plot")
    report.add_argument("--wandb", metavar="ENTITY/PROJECT", help="build it from the runs of a W&B project instead")
    report.add_argument("--group", help="with --wandb: the benchmark run's name (its W&B group)")
    return parser


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, help=BUDGET_OPTIONS["backend"])


def _add_data_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    from benchmarks.data.sources import NAMES

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


def _add_input_options(run: argparse.ArgumentParser) -> None:
    """How a run's images are prepared: their size, the carved test share, where they live."""
    run.add_argument(
        "--image-size", type=_image_size, metavar="HxW",
        help="--dataset folder: resize every image to HxW (default: the most common size)",
    )
    run.add_argument(
        "--test-fraction", type=_number, default=TEST_FRACTION, metavar="F",
        help="share of a dataset without a test split carved off as its test set "
        f"(default {TEST_FRACTION})",
    )
    run.add_argument(
        "--input", choices=INPUT_MODES, default="auto",
        help="hold the float32 splits in memory, or stream batches from the dataset's arrays "
             "(a folder's memory-mapped cache); auto streams when they would take more than "
             f"{STREAM_SHARE:.0%}% of the memory available (default auto)",  # %% for argparse
    )
    run.add_argument(
        "--mirror-invariant", action="store_true",
        help="--dataset folder or npz: a left-right mirror keeps every image's class, so "
             "--augment may flip (built in for fashion_mnist, cifar10, cifar100; never digits)",
    )


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
        "--chief-timeout", type=_number, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help="the chief fails an architecture's search when no worker reports for this "
        f"long (default: {DEFAULT_TIMEOUT:g})",
    )
