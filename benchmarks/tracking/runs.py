"""Weights & Biases: one run per trial and per final training, mirroring the results files."""

from __future__ import annotations

import contextlib
import os
import secrets
import string
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import timing
from benchmarks.rundir import safe_name

MODES = ("auto", "online", "offline", "disabled")
DEFAULT_HOST = "https://api.wandb.ai"


class TrackingError(ValueError):
    """An invalid W&B option."""


def check_mode(mode: str) -> None:
    """Refuse an unknown ``--wandb-mode`` (without importing W&B).

    Raises:
        TrackingError: naming the mode and the choices.
    """
    if mode not in MODES:
        raise TrackingError(f"unknown --wandb-mode {mode!r}; choose one of {', '.join(MODES)}")


def resolve_mode(mode: str) -> str:
    """Turn ``auto`` into ``online`` (credentials found) or ``offline``.

    ``auto`` honours ``WANDB_MODE`` when it is set. Credentials are looked for in
    ``WANDB_API_KEY`` and in the netrc file that ``wandb login`` writes; they are never
    read further, printed or stored.
    """
    check_mode(mode)
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode in ("online", "offline", "disabled"):
        return env_mode
    if env_mode == "dryrun":
        return "offline"
    return "online" if _has_credentials() else "offline"


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        from wandb.sdk.lib.wbauth import wbnetrc

        host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
        return bool(wbnetrc.read_netrc_auth(host=host))
    except Exception:  # noqa: BLE001 - an unreadable netrc means "not logged in"
        return False


def new_run_id() -> str:
    """A run id made here, so that a run's id is known before W&B has started it: eight
    characters of lowercase letters and digits, like W&B's own."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class PendingRun:
    """A W&B run that a background thread is starting. Its ``id`` is known at once; any
    other attribute waits for the start (the wait is charged to W&B's phase), then is the
    run's own."""

    def __init__(self, future: Future, run_id: str) -> None:
        self._future, self._id = future, run_id

    @property
    def id(self) -> str:
        """The run's id, known before it starts; another one only where an online start
        failed and the run was started offline instead."""
        if self._future.done() and self._future.exception() is None:
            return self._future.result().id
        return self._id

    def get(self):
        """The started run (waiting for it); raises what ``wandb.init`` raised."""
        if not self._future.done():
            with timing.phase(timing.WANDB):
                return self._future.result()
        return self._future.result()

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_future", "_id"):
            raise AttributeError(name)
        return getattr(self.get(), name)


class Tracker:
    """Starts and finishes the W&B runs of one benchmark, one at a time.

    Args:
        mode: ``auto``, ``online``, ``offline`` or ``disabled``.
        project: W&B project.
        group: the benchmark run's name; every run of the benchmark is in this group.
        directory: where W&B writes its local files (inside the run directory).
        entity: W&B entity (user or team); None for the default.
    """

    def __init__(
        self, mode: str, project: str, group: str, directory: Path, entity: str | None = None
    ) -> None:
        self.mode = resolve_mode(mode)
        self.project = project
        self.group = group
        self.directory = directory
        self.entity = entity
        self.fell_back = False
        self._starter: ThreadPoolExecutor | None = None  # one thread starts the runs in turn

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    def start(self, name: str, job_type: str, config: dict[str, Any], tags: list[str]
              ) -> PendingRun | None:
        """Start a run in the background and return it at once (None when W&B is disabled):
        the training goes on while W&B starts; the run's first use waits for it.

        An online run that cannot start switches the rest of the benchmark to offline
        with one warning: a trial is never lost because of W&B.
        """
        if not self.enabled:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        run_id = new_run_id()
        kwargs = dict(project=self.project, entity=self.entity, group=self.group,
                      job_type=job_type, name=name, tags=tags, config=config, id=run_id,
                      dir=str(self.directory))
        if self._starter is None:
            self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wandb-start")
        return PendingRun(self._starter.submit(self._init, kwargs), run_id)

    def _init(self, kwargs: dict[str, Any]):
        import wandb

        # Several runs may be alive at once: each is logged to through its own object.
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True)
        try:
            return wandb.init(mode=self.mode, reinit="create_new", settings=settings, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any W&B failure falls back to offline
            if self.mode != "online":
                raise
            reason = " ".join(str(exc).split())
            print(
                f"archbench: warning: W&B online run could not start ({reason}); "
                "logging offline for the rest of this benchmark",
                file=sys.stderr,
            )
            self.mode, self.fell_back = "offline", True
            kwargs["id"] = new_run_id()  # W&B holds the failed run's id
            return wandb.init(mode="offline", reinit="create_new", settings=settings, **kwargs)

    @staticmethod
    @timing.timed(timing.WANDB)
    def finish(run, exit_code: int = 0) -> None:
        """Finish ``run`` (a no-op for None). W&B writes the run's last records before it
        returns: a trial's row is written after its run is complete on disk."""
        if run is not None:
            run.get().finish(exit_code=exit_code)

    @contextlib.contextmanager
    def run(self, name: str, job_type: str, config: dict[str, Any], tags: list[str]) -> Iterator[Any]:
        """A W&B run for the block (None when disabled), finished when the block ends; a
        block that raises finishes it with ``finish_failed`` and the error goes on."""
        run = self.start(name, job_type, config, tags)
        try:
            yield run
        except BaseException as exc:
            self.finish_failed(run, exc)
            raise
        self.finish(run)

    def finish_failed(self, run, exc: BaseException) -> None:
        """Finish ``run`` with exit code 1 and ``status``/``error`` in its summary: STOPPED
        for a Ctrl-C or SIGTERM (the training is run again on resume), FAILED otherwise."""
        if run is not None:
            status = "STOPPED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            run.summary.update({"status": status, "error": f"{type(exc).__name__}: {exc}"})
        self.finish(run, exit_code=1)

    def training_callbacks(self, run, x=None, y=None, gradients: bool = False) -> list[Any]:
        """Keras callbacks that log to ``run`` (created after init): per-epoch metrics, and
        per-layer gradient norms computed on ``x[:64], y[:64]`` when ``gradients``."""
        if run is None:
            return []
        from benchmarks.tracking.loggers import EpochLogger, EpochTimer

        # The timer comes first: it adds `epoch_seconds` to the logs the W&B logger sends.
        callbacks = [EpochTimer(), EpochLogger(run)]
        if gradients:
            from benchmarks.tracking.loggers import GradientLogger

            callbacks.append(GradientLogger(run, x, y))
        return callbacks

    @staticmethod
    @timing.timed(timing.WANDB)
    def log_test_predictions(run, images, labels, probabilities, class_names, samples: int = 20) -> None:
        """A confusion matrix and a table of test images: random ones and the most
        confident mistakes, with true and predicted class and confidence."""
        if run is None:
            return
        import numpy as np
        import wandb

        predicted = probabilities.argmax(axis=1)
        confidence = probabilities.max(axis=1)
        names = list(class_names)
        run.log({"test/confusion_matrix": wandb.plot.confusion_matrix(
            y_true=labels.tolist(), preds=predicted.tolist(), class_names=names)})
        rng = np.random.default_rng(0)
        random_ids = rng.choice(len(labels), size=min(samples, len(labels)), replace=False)
        wrong = np.flatnonzero(predicted != labels)
        mistakes = wrong[np.argsort(-confidence[wrong])][:samples]
        table = wandb.Table(columns=["kind", "index", "image", "true", "predicted", "confidence"])
        for kind, ids in (("random", random_ids), ("confident mistake", mistakes)):
            for i in ids:
                pixels = (np.squeeze(images[i]) * 255).astype("uint8")
                table.add_data(kind, int(i), wandb.Image(pixels), names[labels[i]],
                               names[predicted[i]], float(confidence[i]))
        run.log({"test/predictions": table})

    @timing.timed(timing.WANDB)
    def log_report(self, config: dict[str, Any], leaderboard: Path, csv_file: Path,
                   measurements: dict[str, dict[str, float]] | None = None) -> str | None:
        """The benchmark's own run (``job_type=report``): the leaderboard as a table, the
        plots as images, the markdown, CSV and plots as an artifact, and in its summary
        ``measurements`` (architecture -> the measurement columns, timed after the final
        runs ended). Returns its id."""
        with self.run(f"{self.group}-report", "report", config, ["report"]) as run:
            if run is None:
                return None
            import pandas as pd
            import wandb

            run.summary["measurements"] = measurements or {}

            images = sorted(leaderboard.parent.glob("*.png"))
            run.log({
                "leaderboard": wandb.Table(dataframe=pd.read_csv(csv_file)),
                **{f"plots/{path.stem}": wandb.Image(str(path)) for path in images},
            })
            artifact = wandb.Artifact(f"leaderboard-{safe_name(self.group)}", type="leaderboard")
            for path in [leaderboard, csv_file, *images]:
                artifact.add_file(str(path))
            run.log_artifact(artifact)
        return run.id

    def sync_command(self) -> str | None:
        """The one command that uploads this benchmark's offline runs, if any were made."""
        if self.mode != "offline":
            return None
        return f"wandb sync {self.directory / 'wandb'}/offline-run-*"
