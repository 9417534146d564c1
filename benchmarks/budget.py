"""The budget: one frozen value object that every architecture of a run shares."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from benchmarks.runtime.backends import JAX, BackendError, check_name

TUNERS = ("random", "bayesian", "hyperband")
STRATEGIES = ("none", "mirrored")  # tf.distribute strategy of one trial
SWITCHES = ("auto", "on", "off")
PRECISIONS = ("auto", "on", "off", "bfloat16")  # on: float16
SCHEDULES = ("cosine", "constant")
BUDGET_KINDS = ("epochs", "time")  # what is equal between architectures
# Fields the hash leaves out at these values: a budget at them hashes as one without the
# fields, so run directories hashed without them keep their hash and can be resumed.
_LATER_FIELDS = {"distribute": "none", "mixed_precision": "auto", "xla": "auto",
                 # these recipe values: Adam at a constant rate, no decay, no smoothing
                 "schedule": "constant", "warmup": 0.1, "weight_decay_min": 1e-4,
                 "weight_decay_max": 0.0, "label_smoothing": 0.0,
                 "budget_by": "epochs", "trial_seconds": 0, "final_seconds": 0, "max_params": 0,
                 "max_macs": 0, "backend": "tensorflow"}


# What a time budget's seconds count (``recipe.TrainingClock``); part of a time budget's
# hash, so that a run directory hashed without it, whose seconds counted a training's
# first step too, is not resumed as if they meant this.
TIME_COUNTS = "training steps after the first"
# Where each random or Bayesian search's first trial comes from (``tuning.defaults_first``):
# part of those budgets' hashes, so that a run directory hashed without it, whose searches
# began at random draws, is not resumed with its remaining architectures starting from
# their defaults.
FIRST_TRIAL = "the defaults"
# The fields a kind of budget does not use: not hashed for epochs, refused as changes.
UNUSED_BY = {"time": ("epochs", "final_epochs"), "epochs": ("trial_seconds", "final_seconds")}


class BudgetError(ValueError):
    """A budget name or field value is invalid."""


@dataclass(frozen=True)
class Budget:
    """Everything that must be identical across architectures for a fair comparison.

    Sizes of ``0`` mean "all of the split". The learning rate is searched log-uniformly in
    ``[lr_min, lr_max]`` by the suite, for every architecture alike.
    """

    name: str = "custom"
    tuner: str = "random"
    trials: int = 3
    epochs: int = 2
    # Small batches give batch-norm nets enough steps to settle their moving statistics
    # in short budgets (larger ones leave them near chance; see docs/results/).
    batch_size: int = 32
    train_size: int = 2000
    val_size: int = 1000
    final_train_size: int = 4000
    final_epochs: int = 2
    final_seeds: int = 1
    patience: int = 0
    augment: bool = False
    lr_min: float = 1e-4
    lr_max: float = 1e-2
    # The shared recipe, the same for every architecture: AdamW, its decoupled weight
    # decay searched log-uniformly in [weight_decay_min, weight_decay_max] (max 0: Adam);
    # the learning rate (the searched peak) rises linearly over the first ``warmup`` share
    # of a training's steps, then follows a cosine to zero at its last step ("cosine"), or
    # stays constant without warm-up ("constant"); optional label smoothing.
    schedule: str = "cosine"
    warmup: float = 0.1
    weight_decay_min: float = 1e-4
    weight_decay_max: float = 1e-1
    label_smoothing: float = 0.0
    # "epochs": every training gets the same epochs (epochs, final_epochs). "time": every
    # trial the same training seconds (trial_seconds), every final training the same
    # (final_seconds); training stops at the first step after them, the schedule runs over
    # them, and the budget is only equal on the machine it ran on.
    budget_by: str = "epochs"
    trial_seconds: int = 0
    final_seconds: int = 0
    # The search samples no configuration with more parameters, or more multiply-
    # accumulates per image, than these (0 = no cap): one cap for every architecture, so
    # that a space reaching very large networks (WRN-28-10) fits a short budget.
    max_params: int = 0
    max_macs: int = 0
    seed: int = 0
    trial_timeout: int = 0  # seconds of training after which a trial fails (0 = no limit)
    # Accelerators. distribute: "mirrored" trains each model on every visible GPU
    # (batch_size is then the global batch). mixed_precision "auto": on with a GPU of
    # compute capability 7.0 or more, off otherwise. xla "auto": Keras' rule, XLA on with
    # a GPU, off on CPU and under tf.distribute.
    distribute: str = "none"
    mixed_precision: str = "auto"
    xla: str = "auto"
    # Keras' backend (benchmarks.runtime.backends): which architecture is fastest depends on it.
    backend: str = "tensorflow"

    def __post_init__(self) -> None:
        if self.tuner not in TUNERS:
            raise BudgetError(f"unknown tuner {self.tuner!r}; choose one of {', '.join(TUNERS)}")
        for name in ("trials", "epochs", "batch_size", "final_epochs", "final_seeds", "val_size"):
            _require(name, getattr(self, name), minimum=1)
        for name in ("train_size", "final_train_size", "patience", "seed", "trial_timeout"):
            _require(name, getattr(self, name), minimum=0)
        if self.distribute not in STRATEGIES:
            raise BudgetError(
                f"unknown distribute strategy {self.distribute!r}; choose one of {', '.join(STRATEGIES)}"
            )
        for name, allowed in (("mixed_precision", PRECISIONS), ("xla", SWITCHES)):
            if getattr(self, name) not in allowed:
                raise BudgetError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        try:
            check_name(self.backend)
        except BackendError as exc:
            raise BudgetError(str(exc)) from None
        if self.backend == JAX and self.xla == "off":
            raise BudgetError("xla off is for tensorflow: jax always compiles with XLA")
        if not isinstance(self.augment, bool):
            raise BudgetError(f"augment must be true or false, got {self.augment!r}")
        for name in ("lr_min", "lr_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise BudgetError(f"{name} must be a positive number, got {value!r}")
        if self.lr_min > self.lr_max:
            raise BudgetError(f"lr_min ({self.lr_min}) is larger than lr_max ({self.lr_max})")
        self._check_time_and_caps()
        self._check_recipe()

    def _check_time_and_caps(self) -> None:
        """The budget's kind and its seconds, and the caps on a network's size."""
        if self.budget_by not in BUDGET_KINDS:
            raise BudgetError(f"unknown budget_by {self.budget_by!r}; choose one of "
                              f"{', '.join(BUDGET_KINDS)}")
        for name in ("trial_seconds", "final_seconds", "max_params", "max_macs"):
            _require(name, getattr(self, name), minimum=0)
        if self.budget_by == "time" and not (self.trial_seconds and self.final_seconds):
            raise BudgetError("budget_by time needs trial_seconds and final_seconds (training "
                              f"seconds of each trial and each final training), got "
                              f"{self.trial_seconds} and {self.final_seconds}")
        if self.budget_by == "time" and self.tuner == "hyperband":
            raise BudgetError("budget_by time cannot go with the hyperband tuner, which "
                              "hands out epochs; choose random or bayesian, or budget_by epochs")

    def _check_recipe(self) -> None:
        """The shared training recipe: schedule, warm-up, label smoothing, weight decay."""
        if self.schedule not in SCHEDULES:
            raise BudgetError(f"unknown schedule {self.schedule!r}; choose one of "
                              f"{', '.join(SCHEDULES)}")
        for name in ("warmup", "weight_decay_min", "weight_decay_max", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BudgetError(f"{name} must be a number, got {value!r}")
        if not 0 <= self.warmup < 1:
            raise BudgetError(f"warmup is a share of the steps, from 0 to below 1; got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise BudgetError(f"label_smoothing must be from 0 to below 1, got {self.label_smoothing}")
        if self.weight_decay_max < 0 or not self.weight_decay_min > 0:
            raise BudgetError("weight_decay_min must be positive and weight_decay_max 0 (Adam) "
                              f"or more, got {self.weight_decay_min} and {self.weight_decay_max}")
        if 0 < self.weight_decay_max < self.weight_decay_min:
            raise BudgetError(f"weight_decay_min ({self.weight_decay_min}) is larger than "
                              f"weight_decay_max ({self.weight_decay_max})")

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-ready values."""
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """A stable 12-hex-digit hash of every field that changes the results.

        The preset's ``name`` is left out: two budgets with the same values are the same
        budget whatever they are called.
        """
        fields = {
            k: v for k, v in self.to_dict().items()
            if k != "name" and _LATER_FIELDS.get(k, object()) != v
        }
        if self.tuner != "hyperband":  # Hyperband's brackets are not changed
            fields["first_trial"] = FIRST_TRIAL
        if self.budget_by == "time":  # what its seconds count
            fields["time_counts"] = TIME_COUNTS
        else:  # seconds an epoch budget does not use (a time preset run by epochs)
            for name in UNUSED_BY["epochs"]:
                fields.pop(name, None)
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe_training(self) -> str:
        """How long each trial and each final training trains, in this budget's unit."""
        if self.budget_by == "time":
            return f"{self.trial_seconds} s per trial, {self.final_seconds} s per final training"
        return f"{self.epochs} epoch(s) per trial, {self.final_epochs} per final training"

    def final_seed_values(self) -> list[int]:
        """The seeds of the final trainings: ``seed``, ``seed + 1``, ..."""
        return [self.seed + i for i in range(self.final_seeds)]


def _require(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BudgetError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise BudgetError(f"{name} must be at least {minimum}, got {value}")


PRESETS: dict[str, Budget] = {
    # Seconds: for tests and CI.
    "smoke": Budget(
        name="smoke", trials=1, epochs=1, train_size=512, val_size=256,
        final_train_size=512, final_epochs=1,
    ),
    # The default: minutes for the whole registry on a laptop CPU. Equal training time,
    # like standard. Each architecture at its defaults: one trial (the defaults, every
    # search's first) on 5,000 images, then a final training on the whole split (under a
    # time budget more images cost nothing and overfit less). One trial only: a random
    # draw scored after seconds of training costs a compilation and a validation per
    # architecture and tells little (see docs/results/quick-and-standard.md).
    # With --budget-by epochs: EPOCH_PLANS' trials and sizes. The caps admit every
    # architecture's defaults and configurations of their size.
    "quick": Budget(
        name="quick", trials=1, epochs=1, batch_size=64, train_size=5000, val_size=2000,
        final_train_size=0, final_epochs=2, max_params=2_000_000, max_macs=20_000_000,
        budget_by="time", trial_seconds=5, final_seconds=40,
    ),
    # About an hour for the whole registry on a small CPU, and no more on a faster
    # machine: equal training time, so that no sampled configuration stretches the run
    # (training speeds differ by orders of magnitude between architectures, and the cap
    # on multiply-accumulates does not bound time). Three trials on 5,000 images, then a
    # longer final training on the whole split (its length chosen from the runs in
    # docs/results/quick-and-standard.md); the epoch fields apply with --budget-by epochs.
    "standard": Budget(
        name="standard", trials=3, epochs=2, batch_size=64, train_size=5000, val_size=5000,
        final_train_size=0, final_epochs=3, max_params=5_000_000, max_macs=40_000_000,
        budget_by="time", trial_seconds=30, final_seconds=200,
    ),
    # For a GPU: the budget a paper would use.
    "full": Budget(
        name="full", tuner="bayesian", trials=20, epochs=20, batch_size=128, train_size=0, val_size=5000,
        final_train_size=0, final_epochs=40, final_seeds=3, patience=5, augment=True,
    ),
}


# What a preset of time changes when run by epochs (--budget-by epochs): under a time
# budget more images cost nothing but overfit less; by epochs each one costs its training,
# so the epoch plan has its own sizes and trials (its hash is pinned in the tests).
EPOCH_PLANS: dict[str, dict[str, Any]] = {
    "quick": {"trials": 2, "train_size": 3000, "final_train_size": 12000},
}


def make_budget(preset: str = "quick", **overrides: Any) -> Budget:
    """A preset with some fields replaced (run by epochs, a preset of time first takes its
    ``EPOCH_PLANS`` sizes and trials); ``None`` values are ignored.

    Raises:
        BudgetError: unknown preset, unknown field or invalid value.
    """
    if preset not in PRESETS:
        raise BudgetError(f"unknown budget {preset!r}; choose one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(Budget)}
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise BudgetError(f"unknown budget field(s): {', '.join(unknown)}")
    base = PRESETS[preset]
    if changes.get("budget_by", base.budget_by) == "epochs":
        base = dataclasses.replace(base, **EPOCH_PLANS.get(preset, {}))
    budget = dataclasses.replace(base, **changes)
    unused = UNUSED_BY[budget.budget_by]
    ignored = [k for k in unused if k in changes and changes[k] != getattr(base, k)]
    if ignored:  # a change that would do nothing: say so rather than run without it
        other = "epochs" if budget.budget_by == "time" else "time"
        flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
        raise BudgetError(
            f"{flags} would change nothing: budget {preset} is a budget of {budget.budget_by} "
            f"({budget.describe_training()}); add --budget-by {other} to train by {other}")
    return budget



def budget_from_dict(data: dict[str, Any]) -> Budget:
    """Rebuild a budget read back from a manifest; a field it predates takes the value that
    meant what the budget did then (``_LATER_FIELDS``), so its hash is unchanged."""
    fields = {f.name for f in dataclasses.fields(Budget)}
    return Budget(**{**_LATER_FIELDS, **{k: v for k, v in data.items() if k in fields}})
