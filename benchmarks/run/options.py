"""What ``archbench run`` was asked to do, and the command line that asks it again.

``RunOptions`` is built once by the CLI; a local worker's command line is derived from it
(``to_argv``), never re-spelled flag by flag, and a test checks that parsing it gives the
same options back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import rundir
from benchmarks.budget import PRESETS, UNUSED_BY, Budget
from benchmarks.data.dataset import TEST_FRACTION, DataRequest
from benchmarks.data.sources import dataset_label
from benchmarks.search.distributed import DEFAULT_TIMEOUT

WANDB_PROJECT = "archbench"  # the W&B project of a run not given --wandb-project


def _flag(name: str, **kwargs: Any) -> Any:
    return field(metadata={"flag": name}, **kwargs)


@dataclass
class RunOptions:
    """Everything ``archbench run`` was asked to do; each field's ``flag`` is its option."""

    architectures: list[str] = _flag("--architectures")
    budget: Budget = _flag("--budget")
    dataset: str = _flag("--dataset")
    output: Path = _flag("--output")
    name: str = _flag("--name")
    data_dir: Path | None = _flag("--data-dir", default=None)
    image_size: tuple[int, int] | None = _flag("--image-size", default=None)  # (height, width)
    test_fraction: float = _flag("--test-fraction", default=TEST_FRACTION)
    input_mode: str = _flag("--input", default="auto")  # splits in memory, streamed, or auto
    mirror_invariant: bool = _flag("--mirror-invariant", default=False)  # folders, arrays
    overwrite: bool = _flag("--overwrite", default=False)
    wandb_mode: str = _flag("--wandb-mode", default="auto")
    wandb_project: str = _flag("--wandb-project", default=WANDB_PROJECT)
    wandb_entity: str | None = _flag("--wandb-entity", default=None)
    trial_gradients: bool = _flag("--trial-gradients", default=False)
    # None: one process; "chief" or "worker" of a distributed search
    role: str | None = _flag("--role", default=None)
    workers: int = _flag("--workers", default=0)  # worker processes started on this machine
    threads: int | None = _flag("--threads", default=None)  # TensorFlow threads (None: its own)
    chief_timeout: float = _flag("--chief-timeout", default=DEFAULT_TIMEOUT)
    # a worker process is replaced after this many trials (0 = never)
    recycle_after: int = _flag("--recycle-after", default=0)

    @property
    def run_dir(self) -> Path:
        return self.output / rundir.safe_name(self.name)

    @property
    def data_request(self) -> DataRequest:
        return DataRequest(self.dataset, self.data_dir, self.image_size, self.test_fraction,
                           self.mirror_invariant)

    @property
    def lock_path(self) -> Path:
        """The lock file that keeps a second ``archbench run`` out of the run directory."""
        return self.output / f".{rundir.safe_name(self.name)}.lock"

    @property
    def distributed(self) -> bool:
        return self.workers > 0 or self.role is not None

    @property
    def shared(self) -> Shared:
        """What every architecture of the run shares (all ``ArchitectureBenchmark`` reads)."""
        return Shared(self.budget, self.run_dir, self.name, dataset_label(self.data_request),
                      self.trial_gradients)


@dataclass(frozen=True)
class Shared:
    """What every architecture of a run shares: its budget, its run directory, the run's
    name (W&B's group), the dataset's label and whether trials log gradients."""

    budget: Budget
    run_dir: Path
    benchmark: str
    dataset: str
    trial_gradients: bool = False


def to_argv(options: RunOptions) -> list[str]:
    """The ``archbench run`` arguments that ask for ``options`` again."""
    argv: list[str] = []
    for item in dataclasses.fields(options):
        value, flag = getattr(options, item.name), item.metadata["flag"]
        if isinstance(value, Budget):
            argv += budget_argv(value)
        elif isinstance(value, tuple):
            argv += [flag, "x".join(map(str, value))]
        elif isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def budget_argv(budget: Budget) -> list[str]:
    """``--budget PRESET`` and every field as its override."""
    argv = ["--budget", budget.name if budget.name in PRESETS else "quick"]
    for name, value in budget.to_dict().items():
        if name == "name" or (budget.budget_by == "epochs" and name in UNUSED_BY["epochs"]):
            continue  # seconds an epoch budget neither uses nor hashes
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv
