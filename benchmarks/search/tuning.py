"""The Keras Tuner search every architecture goes through, and what each trial leaves.

Per-trial work lives in the tuner's own hooks: ``on_trial_begin`` seeds the trial,
``run_trial`` trains it inside its W&B run, ``on_trial_end`` writes its ``trials.csv``
row through the ``TrialWriter`` the tuner was given. The HyperModel is only the recipe.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from benchmarks import rundir, timing
from benchmarks.budget import Budget
from benchmarks.runtime import backends, interrupt, workarounds
from benchmarks.tracking.runs import Tracker
from benchmarks.training.accelerator import distribution_strategy
from benchmarks.training.callbacks import TrialTimeLimit, harness_callbacks, live_progress
from benchmarks.training.recipe import OBJECTIVE, SuiteHyperModel, best_epoch_score, check_finite


def tuner_seed(seed: int) -> int:
    """The seed of the tuner's oracle: Keras Tuner treats 0 as "no seed" and then draws one
    from Python's global random state, so the budget's seed is shifted by one."""
    return seed + 1


def trial_seed(seed: int, trial_id: str) -> int:
    """The seed of one trial, derived from the budget's seed and the trial id."""
    digest = hashlib.sha256(f"{seed}:{trial_id}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


@dataclass
class TrialRecord:
    """What the suite learns about one trial while it runs."""

    wandb_run_id: str = ""
    worker: str = ""  # Keras Tuner's tuner id of the process that trained it, if distributed
    epochs_run: int = 0
    steps_run: int = 0  # optimizer steps (a time budget may end an epoch early)
    train_seconds: float = 0.0
    val_accuracy_history: list[float] = field(default_factory=list)
    origin: str = ""  # rundir.ORIGIN_DEFAULTS or rundir.ORIGIN_TUNER


class TrialWriter:
    """Writes the ``trials.csv`` row of each ended trial of one architecture."""

    def __init__(self, path: Path, architecture: str, budget_hash: str) -> None:
        self.path = path
        self.architecture = architecture
        self.budget_hash = budget_hash

    def write(self, trial: kt.engine.trial.Trial, record: TrialRecord | None) -> None:
        """``record`` is None on the chief of a distributed search, which knows a trial
        only from its oracle; the worker that trained it writes the full row."""
        completed = trial.status == "COMPLETED"
        error = "" if completed else _last_line(trial.message)
        score = trial.score
        if completed and record is not None and record.val_accuracy_history:
            score = max(record.val_accuracy_history)  # a worker's trial carries no score
        detail = record is not None
        record = record or TrialRecord()
        row = {
            "architecture": self.architecture,
            "trial_id": trial.trial_id,
            "status": trial.status,
            "score": score if completed else None,
            "epochs_run": record.epochs_run if detail else None,
            "steps_run": record.steps_run if detail else None,
            "train_seconds": round(record.train_seconds, 3) if detail else None,
            "hyperparameters": dict(trial.hyperparameters.values),
            "val_accuracy_history": [round(v, 6) for v in record.val_accuracy_history],
            "error": error,
            "wandb_run_id": record.wandb_run_id,
            "worker": record.worker,
            "origin": record.origin,
            "budget_hash": self.budget_hash,
        }
        rundir.upsert_row(self.path, rundir.TRIAL_COLUMNS, row, rundir.TRIAL_KEY)
        outcome = f"val_accuracy {score:.4f}" if row["score"] is not None else error
        seconds = f" ({record.train_seconds:.1f} s)" if detail else ""
        print(f"  [{self.architecture}] trial {trial.trial_id} {trial.status.lower()}: "
              f"{outcome}{seconds}", flush=True)


def _last_line(message: str | None) -> str:
    lines = [ln.strip() for ln in (message or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


class Recycle(Exception):  # noqa: N818 - a request, not an error
    """This worker process has run its share of trials; it exits and is started afresh."""


@dataclass
class TrialQuota:
    """Trials one process may run before it is replaced (0 = no limit).

    Whatever TensorFlow still keeps per trained model after ``release_graphs`` and
    ``clear_session`` goes with the process: a worker replaced every few trials keeps
    memory flat.
    """

    limit: int = 0
    done: int = 0

    def count(self) -> None:
        self.done += 1
        if self.limit and self.done >= self.limit:
            raise Recycle(f"ran {self.done} trial(s)")


@dataclass
class TrialSetup:
    """What every trial of one architecture's search shares, besides the recipe."""

    budget: Budget
    tracker: Tracker
    writer: TrialWriter
    base_config: dict[str, Any]  # W&B config of every trial
    gradients: bool = False  # log per-layer gradient norms of every trial to W&B
    quota: TrialQuota = field(default_factory=TrialQuota)  # shared by a process's searches


MAX_DRAWS = 100  # proposals over a cap redrawn before the search stops


def capped(populate_space, within_cap):
    """An oracle's ``populate_space`` that redraws proposals over the budget's caps
    (``within_cap`` is false; up to ``MAX_DRAWS`` times, then ends the search): the tuner
    never trains them."""

    def populate(trial_id):
        for _ in range(MAX_DRAWS):
            proposal = populate_space(trial_id)
            if proposal["status"] != kt.engine.trial.TrialStatus.RUNNING or within_cap(
                    proposal["values"]):
                return proposal
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    return populate


def default_values(space: kt.HyperParameters) -> dict[str, Any]:
    """Every active hyperparameter of ``space`` at its default (conditional ones as their
    parents' defaults make them active), as Keras Tuner's random draw fills them."""
    values = kt.HyperParameters()
    for hp in space.space:
        values.merge([hp])
        if values.is_active(hp):
            values.values[hp.name] = hp.default
    return dict(values.values)


def defaults_first(oracle: kt.Oracle, populate_space, within_cap):
    """An oracle's ``populate_space`` whose search starts from the defaults: the first trial
    is the architecture's default configuration with the recipe's default learning rate
    and weight decay (unless it is over the budget's caps: ``within_cap`` false), every
    later one is the oracle's own proposal. With two or three trials, random draws alone
    often leave a network only learning rates far from any that suit a short training."""

    def populate(trial_id):
        if not oracle.trials:  # the search's first trial (a resumed search has trials)
            values = default_values(oracle.hyperparameters)
            if within_cap(values):
                return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
        return populate_space(trial_id)

    return populate


def forget_unrecorded_trials(oracle: kt.Oracle) -> None:
    """Drop the reloaded trials that the oracle's own state never recorded.

    Keras Tuner's ``create_trial`` writes the new trial's ``trial_<id>/trial.json``, then
    ``oracle.json``. A kill between the two leaves a trial file the oracle does not know
    about; reloaded as it is, it counts against ``max_trials`` though it never ran (nor
    is it retried), and the search ends a trial short. Forgotten, the trial is created
    again from the saved oracle state: the same id and the same hyperparameters.
    """
    recorded = set(oracle.start_order)
    for trial_id in [t for t in oracle.trials if t not in recorded]:
        del oracle.trials[trial_id]


class _SuiteTunerMixin:
    """Adds per-trial seeding, W&B runs, NaN failure and ``trials.csv`` rows to a tuner."""

    def __init__(self, *args, setup: TrialSetup, **kwargs):
        self.setup = setup
        self._record = TrialRecord()
        self._trial_callbacks: dict[str, Any] = {}  # harness_callbacks' of this trial
        super().__init__(*args, **kwargs)
        self._defaults = default_values(self.oracle.get_space())  # the space's, at defaults
        if isinstance(self.oracle, kt.Oracle):  # the search's own (not a worker's client)
            oracle, within_cap = self.oracle, self.hypermodel.within_cap
            if setup.budget.max_params or setup.budget.max_macs:
                oracle.populate_space = capped(oracle.populate_space, within_cap)
            if setup.budget.tuner != "hyperband":  # which hands out brackets, not points
                oracle.populate_space = defaults_first(oracle, oracle.populate_space, within_cap)

    def reload(self):
        super().reload()
        if isinstance(self.oracle, kt.Oracle):  # not a distributed worker's client
            forget_unrecorded_trials(self.oracle)

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        keras.utils.set_random_seed(trial_seed(self.setup.budget.seed, trial.trial_id))
        worker = self.tuner_id if os.environ.get("KERASTUNER_ORACLE_IP") else ""
        origin = (rundir.ORIGIN_DEFAULTS if trial.hyperparameters.values == self._defaults
                  else rundir.ORIGIN_TUNER)
        self._record = TrialRecord(worker=worker, origin=origin)

    def run_trial(self, trial, *args, **kwargs):
        setup, record = self.setup, self._record
        name = self.hypermodel.name
        config = {
            **setup.base_config,
            "trial_id": trial.trial_id,
            "trial_seed": trial_seed(setup.budget.seed, trial.trial_id),
            "hyperparameters": dict(trial.hyperparameters.values),
        }
        timeout = setup.budget.trial_timeout
        limit = TrialTimeLimit(timeout) if timeout else None
        start = time.perf_counter()
        with setup.tracker.run(f"{name}-t{trial.trial_id}", "trial", config,
                               [name, setup.budget.name]) as run:
            record.wandb_run_id = run.id if run else ""
            wandb = setup.tracker.training_callbacks(run, *args[:2], gradients=setup.gradients)
            self._trial_callbacks = {
                "wandb": wandb, "time_limit": limit,
                "progress": live_progress(f"[{name}] trial {trial.trial_id}", setup.budget.batch_size)}
            try:
                histories = super().run_trial(trial, *args, **kwargs)
            except Exception as exc:
                if not backends.is_out_of_memory(exc):
                    raise
                raise kt.errors.FailedTrialError(f"out of memory: {exc}") from exc
            finally:
                record.train_seconds = time.perf_counter() - start
                record.wandb_run_id = run.id if run else ""  # started by now
            history = histories[0]
            record.epochs_run = len(history.history.get("loss", []))
            record.steps_run = getattr(history, "steps_run", 0)
            record.val_accuracy_history = list(history.history.get(OBJECTIVE, []))
            if limit and limit.exceeded:
                raise kt.errors.FailedTrialError(f"exceeded the trial time limit of {timeout} s")
            check_finite(history)
            if run is not None:
                run.summary.update({
                    "status": "COMPLETED",
                    "score": best_epoch_score(history),
                    "epochs_run": record.epochs_run,
                    "steps_run": record.steps_run,
                    "train_seconds": record.train_seconds,
                    "total_params": history.model.count_params(),
                })
        return histories

    def _build_and_fit_model(self, trial, *args, callbacks=(), **kwargs):
        # Keras Tuner's callbacks (its checkpoint of each trial's best epoch is dropped
        # unless Hyperband continues trials from it), then the harness's of this trial.
        if self.setup.budget.tuner != "hyperband":
            callbacks = [c for c in callbacks if not workarounds.is_best_epoch_checkpoint(c)]
        callbacks = harness_callbacks(tuner=callbacks, **self._trial_callbacks)
        # Clearing the session and building the model are part of training a model.
        with timing.phase(timing.TRAINING):
            workarounds.release_graphs()  # the previous trial's model is gone
            return super()._build_and_fit_model(trial, *args, callbacks=callbacks, **kwargs)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.setup.writer.write(trial, self._record)
        self.setup.quota.count()  # after the trial is ended and recorded
        interrupt.check()  # a stop asked for during the trial, once its row is written


class RandomSearchTuner(_SuiteTunerMixin, kt.RandomSearch):
    pass


class BayesianTuner(_SuiteTunerMixin, kt.BayesianOptimization):
    pass


class HyperbandTuner(_SuiteTunerMixin, kt.Hyperband):
    pass


def make_tuner(
    hypermodel: SuiteHyperModel, setup: TrialSetup, directory: str, project_name: str
) -> kt.Tuner:
    """The budget's tuner for one architecture, resuming from ``directory`` if it exists.

    Raises:
        Exception: whatever the architecture's ``build`` raises at its default
            hyperparameters (Keras Tuner builds it once here).
    """
    workarounds.install()  # Keras Tuner's state is written atomically
    budget = setup.budget
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(OBJECTIVE, direction="max"),
        seed=tuner_seed(budget.seed),
        directory=directory,
        project_name=project_name,
        overwrite=False,  # never: it would delete the project under other workers
        setup=setup,
        distribution_strategy=distribution_strategy(budget),
    )
    if budget.tuner == "hyperband":
        return HyperbandTuner(max_epochs=budget.epochs, factor=3, hyperband_iterations=1, **common)
    tuner_class = BayesianTuner if budget.tuner == "bayesian" else RandomSearchTuner
    return tuner_class(max_trials=budget.trials, **common)
