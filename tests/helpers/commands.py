"""The ``archbench`` command run in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def archbench(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
