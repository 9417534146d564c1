"""Finding and reading a dataset's files: checksums, Keras' cache, Keras' download."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from benchmarks.data.dataset import DataError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keras_cache_dir(subdir: str) -> Path:
    """Where ``keras.datasets`` keeps a dataset's files."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / subdir


def download(name: str, keras_dataset: str, looked_in: list[Path]) -> None:
    import keras  # deferred: only needed when no local copy exists

    try:
        getattr(keras.datasets, keras_dataset).load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one message
        raise DataError(
            f"no local copy of {name} (looked in {', '.join(map(str, looked_in))}) and the "
            f"download failed: {' '.join(str(exc).split())}; pass --data-dir"
        ) from exc


def existing_dir(data_dir: str | Path) -> Path:
    path = Path(data_dir)
    if not path.is_dir():
        raise DataError(f"data directory {path} does not exist")
    return path
