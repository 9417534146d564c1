"""Shared fixtures: a clean registry per test, the real dataset, small synthetic data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.ci_policy import in_ci, pytest_configure  # noqa: F401 (a hook: CI fails on skips)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_SILENT", "true")

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def clean_registry():
    """Every test sees the registry as discovery left it; throw-away entries vanish."""
    from models import registry

    registry.discover()
    state = registry.snapshot()
    yield
    registry.restore(state)


def require_fashion_dir(path: Path) -> Path:
    """``path`` if it is a directory; else skip the test, or fail it in CI (a skip there
    would hide a failure)."""
    if path.is_dir():
        return path
    message = (f"{path} is missing: install Debian's dataset-fashion-mnist "
               "(apt-get install dataset-fashion-mnist; .ci/run does)")
    if in_ci():
        pytest.fail(f"{message}; ARCHBENCH_CI/CI is set, where a missing dataset is a failure")
    pytest.skip(message)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The real Fashion-MNIST files (Debian's dataset-fashion-mnist); skip if absent
    (fail in CI)."""
    return require_fashion_dir(FASHION_DIR)


@pytest.fixture(scope="session")
def fashion(fashion_dir):
    from benchmarks.data.dataset import DataRequest
    from benchmarks.data.sources import load_dataset

    return load_dataset(DataRequest("fashion_mnist", fashion_dir))


def synthetic_images(n: int, seed: int = 0, num_classes: int = 10):
    """Random float images (n, 28, 28, 1) and labels cycling through every class."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = np.arange(n) % num_classes
    return x, y


def table_rows(markdown: str, heading: str = "## Architectures, ranked") -> list[list[str]]:
    """The body rows of the first markdown table after ``heading``, as stripped cells."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[1:]]


def wandb_inspect(run_path: Path, summary: bool) -> dict | list[dict]:
    """What W&B's own CLI reads back from an offline run's files (no network)."""
    cli = Path(sys.executable).parent / "wandb"
    argv = [str(cli), "leet", "inspect", "--json", *(["--summary"] if summary else []), str(run_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "WANDB_MODE": "offline"})
    assert result.returncode == 0, f"`wandb leet inspect` failed (is wandb >= 0.31 installed?): {result.stderr}"
    if summary:
        return json.loads(result.stdout)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
