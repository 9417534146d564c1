"""One architecture's life in a benchmark: search, final trainings, evaluation, measurement."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from benchmarks import rundir, timing
from benchmarks.data import streaming
from benchmarks.data.splits import Splits
from benchmarks.run.manifest import git_state
from benchmarks.run.options import Shared
from benchmarks.runtime import workarounds
from benchmarks.search.tuning import TrialQuota, TrialSetup, TrialWriter, make_tuner
from benchmarks.tracking.runs import Tracker
from benchmarks.training.accelerator import distribution_strategy
from benchmarks.training.callbacks import harness_callbacks, live_progress
from benchmarks.training.measure import Measurements, PeakMemory, TrainingSpeed, sizes
from benchmarks.training.recipe import SuiteHyperModel, space_size
from models.registry import NotApplicable, get_architecture

PREDICT_BATCH = 512


class ArchitectureBenchmark:
    """Tune, retrain, evaluate and measure one architecture.

    Args:
        trials_path: where its trial rows go (a distributed worker writes its own file).
        quota: the trials this process may still run (shared by a worker's searches).
    """

    def __init__(
        self, name: str, shared: Shared, splits: Splits, tracker: Tracker,
        trials_path: Path | None = None, quota: TrialQuota | None = None, machine: str = "",
    ):
        self.name = name
        self.machine = machine  # the hash of what measurements depend on (manifest.machine)
        self.budget = shared.budget
        self.splits = splits
        self.tracker = tracker
        self.run_dir = shared.run_dir
        self.search_seconds: float | None = None  # wall time of this invocation's search
        self.architecture = get_architecture(name)
        self.hypermodel = SuiteHyperModel(
            self.architecture, splits.image_shape, splits.num_classes, self.budget,
            flips=splits.mirror_invariant,
        )
        self.base_config = {
            "architecture": name,
            "family": self.architecture.family,
            "budget": self.budget.to_dict(),
            "budget_hash": self.budget.hash,
            "dataset": shared.dataset,
            "benchmark": shared.benchmark,
            "git_commit": git_state()["commit"],
            "git_dirty": git_state()["dirty"],
        }
        self.writer = TrialWriter(trials_path or self.run_dir / rundir.TRIALS, name, self.budget.hash)
        self.trial_setup = TrialSetup(
            self.budget, tracker, self.writer, self.base_config,
            gradients=shared.trial_gradients, quota=quota or TrialQuota(),
        )

    def make_tuner(self) -> kt.Tuner:
        """This architecture's tuner, resumed from the run directory when it exists.

        Raises:
            RunDirError: Keras Tuner's saved state is unreadable.
            Exception: whatever the architecture's ``build`` raises at its defaults.
        """
        project = self.run_dir / rundir.TUNER_DIR / rundir.safe_name(self.name)
        try:
            return make_tuner(self.hypermodel, self.trial_setup, str(project.parent), project.name)
        except json.JSONDecodeError as exc:
            # Keras Tuner writes its JSON state in place; a kill mid-write can cut it short.
            raise rundir.RunDirError(
                f"the Keras Tuner state in {project} is unreadable ({exc}); delete that "
                "directory to restart this architecture's search (its trials.csv rows stay)"
            ) from exc

    def search(self, tuner: kt.Tuner) -> None:
        """Run the search (as a worker of a distributed search: the chief's trials)."""
        splits = self.splits
        with settled_heap():
            tuner.search(splits.x_tune, splits.y_tune,
                         validation_data=(splits.x_val, splits.y_val), verbose=0)

    def failed_row(self, error: str | BaseException) -> dict[str, Any]:
        """The row of an architecture without result: its search failed (``error`` is the
        exception), or a later stage (``error`` says which); an input the architecture is
        not made for makes it "not applicable"."""
        status = "failed"
        if isinstance(error, BaseException):
            cause = _cause(error, NotApplicable)
            status = rundir.NOT_APPLICABLE if cause else "failed"
            error = str(cause) if cause else f"search failed: {rundir.one_line(error)}"
        return {"architecture": self.name, "status": status, "error": error,
                "budget_hash": self.budget.hash, "machine": self.machine}

    def result_row(self, tuner: kt.Tuner) -> dict[str, Any]:
        """The ``results.csv`` row once the search is over: best trial, final, measurements."""
        mine = [t for t in rundir.read_rows(self.run_dir / rundir.TRIALS)
                if t["architecture"] == self.name]
        completed = sum(t["status"] == "COMPLETED" for t in mine)
        counts = {"trials_completed": completed, "trials_failed": len(mine) - completed}
        counts["search_space_size"] = space_size(tuner.oracle.get_space())
        best = tuner.oracle.get_best_trials(1)
        if not best or best[0].score is None:
            reason = "; ".join(sorted({t["error"] for t in mine if t["error"]}))
            return {**self.failed_row(f"no successful trial: {reason or 'no trial completed'}"),
                    **counts}
        best_trial = best[0]
        try:
            final = self.final_trainings(best_trial.hyperparameters)
        except Exception as exc:  # noqa: BLE001 - recorded as the architecture's failure
            return {**self.failed_row(f"final training failed: {rundir.one_line(exc)}"), **counts}
        return {
            "architecture": self.name,
            "status": "ok",
            "error": "",
            "best_trial_id": best_trial.trial_id,
            "best_hyperparameters": rundir.public_hyperparameters(best_trial.hyperparameters.values),
            "val_accuracy": best_trial.score,
            **final,
            **counts,
            "search_seconds": round(self.search_seconds, 1) if self.search_seconds else None,
            "budget_hash": self.budget.hash,
            "machine": self.machine,
        }

    def final_trainings(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """Retrain the best configuration per final seed; evaluate once on the test set."""
        with settled_heap():
            return self._final_trainings(hp)

    def _final_trainings(self, hp: kt.HyperParameters) -> dict[str, Any]:
        accuracies, losses, prediction_rows, run_ids, reached = [], [], [], [], []
        measurements = None
        for seed in self.budget.final_seed_values():
            model = self._build(hp, seed)
            config = {**self.base_config, "seed": seed, "hyperparameters": dict(hp.values)}
            with self.tracker.run(f"{self.name}-final-s{seed}", "final", config,
                                  [self.name, self.budget.name]) as run:
                accuracy, loss, rows, measured, history = self._fit_and_evaluate(
                    model, hp, seed, run, with_measurements=measurements is None)
                reached.append((len(history.history.get("loss", [])), history.steps_run))
                measurements = measurements or measured
                if run is not None:
                    known = {k: v for k, v in measurements.to_dict().items() if v == v}
                    run.summary.update({"test_accuracy": accuracy, "test_loss": loss, **known})
                    run_ids.append(run.id)
            accuracies.append(accuracy)
            losses.append(loss)
            prediction_rows.extend(rows)
        rundir.write_rows(rundir.predictions_path(self.run_dir, self.name),
                          rundir.PREDICTION_COLUMNS, prediction_rows)
        return {
            **rundir.seed_summary(accuracies, losses),
            **measurements.to_dict(),
            "wandb_run_id": " ".join(run_ids),
            "final_epochs_run": " ".join(str(epochs) for epochs, _ in reached),
            "final_steps_run": " ".join(str(steps) for _, steps in reached),
        }

    def _build(self, hp: kt.HyperParameters, seed: int) -> keras.Model:
        """A fresh model of the best configuration, seeded for one final training."""
        strategy = distribution_strategy(self.budget)
        with timing.phase(timing.TRAINING):
            workarounds.release_graphs()
            keras.backend.clear_session()
            keras.utils.set_random_seed(seed)
            with strategy.scope() if strategy else contextlib.nullcontext():
                return self.hypermodel.build(hp)

    def _fit_and_evaluate(
        self, model: keras.Model, hp: kt.HyperParameters, seed: int, run, with_measurements: bool
    ) -> tuple[float, float, list[dict[str, Any]], Measurements | None, keras.callbacks.History]:
        """One final training, its test predictions and, if asked, the measurements of the
        trained model (its training speed timed in this training), and the training's
        history."""
        splits = self.splits
        wandb = self.tracker.training_callbacks(run, splits.x_final, splits.y_final, gradients=True)
        memory = PeakMemory() if with_measurements else contextlib.nullcontext()
        speed = [TrainingSpeed(self.budget.batch_size)] if with_measurements else []
        streaming.prepare(splits.x_final, splits.y_final)  # before, not in, the memory block
        with timing.phase(timing.TRAINING), memory:
            history = self.hypermodel.fit(
                hp, model, splits.x_final, splits.y_final,
                validation_data=(splits.x_val, splits.y_val), final=True,
                callbacks=harness_callbacks(
                    wandb=wandb, progress=live_progress(f"[{self.name}] final, seed {seed}",
                                                        self.budget.batch_size)) + speed,
            )
        with timing.phase(timing.EVALUATION):
            probabilities = streaming.predict(model, splits.x_test, PREDICT_BATCH)
            accuracy, loss, rows = evaluate(probabilities, splits.y_test, seed,
                                            splits.class_names)
        self.tracker.log_test_predictions(run, splits.x_test, splits.y_test, probabilities,
                                          splits.class_names)
        measurements = None
        if with_measurements:  # its inference speeds are timed later, from the saved model
            with timing.phase(timing.MEASUREMENT):
                measurements = dataclasses.replace(sizes(model, memory.megabytes),
                                                   **speed[0].speeds(len(splits.y_final)))
                save_model(model, rundir.model_path(self.run_dir, self.name))
        return accuracy, loss, rows, measurements, history


@contextlib.contextmanager
def settled_heap():
    """Leave what is alive now out of the garbage collector's full passes until the block
    ends: the hundreds of thousands of objects TensorFlow, Keras and W&B made at import,
    which every full pass scans again, and Keras Tuner asks for one before every trial; a
    trial's tracing triggers more. Garbage made inside the block is collected as before."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def save_model(model: keras.Model, path: Path) -> None:
    """``model`` as a ``.keras`` file at ``path``, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    partial.replace(path)


def _cause(exc: BaseException | None, kind: type) -> BaseException | None:
    """``exc`` or the first exception it was raised ``from`` that is a ``kind`` (not one it
    merely happened while handling: that is a bug of its own)."""
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__
    return exc


def evaluate(probabilities: np.ndarray, labels: np.ndarray, seed: int,
             class_names: tuple[str, ...]):
    """Test accuracy, test loss and per-sample prediction rows from class probabilities."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    accuracy = float(np.mean(predicted == labels))
    true_prob = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    loss = float(-np.mean(np.log(true_prob)))
    rows = [
        {"seed": seed, "sample": i, "label": int(t), "predicted": int(p), "confidence": f"{c:.5f}",
         "label_name": class_names[t], "predicted_name": class_names[p]}
        for i, (t, p, c) in enumerate(zip(labels, predicted, confidence, strict=True))
    ]
    return accuracy, loss, rows


def summary_line(row: dict[str, Any]) -> str:
    """One line of progress for a finished architecture."""
    if row["status"] == rundir.NOT_APPLICABLE:
        return f"not applicable: {row['error']}"
    if row["status"] != "ok":
        return f"FAILED: {row['error']}"
    return (f"test accuracy {row['test_accuracy']:.4f}, val {row['val_accuracy']:.4f}, "
            f"{row['total_params']:,} params, {row['macs_per_image'] / 1e6:.1f} M "
            "multiply-accumulates per image")  # speeds: timed after the last training
