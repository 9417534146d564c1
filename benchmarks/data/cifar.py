"""CIFAR-10 and CIFAR-100 from the upstream "python version" batch files.

The batches are pickles; they are read with an unpickler that accepts only what a batch
holds (dicts, lists, bytes, numbers, NumPy arrays), never a general one on a user's path.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.data.dataset import DataError, Dataset
from benchmarks.data.files import download, existing_dir, keras_cache_dir, sha256_file


@dataclass(frozen=True)
class CifarSpec:
    """CIFAR-10 or CIFAR-100 as the upstream "python version" batches."""

    name: str
    folder: str  # the archive's top folder
    train_files: tuple[str, ...]
    test_file: str
    label_key: bytes
    names_key: bytes  # in the ``meta`` / ``batches.meta`` file
    meta_file: str
    keras_cache_subdir: str  # Keras 3 extracts into this folder of ~/.keras/datasets
    keras_dataset: str


CIFAR10 = CifarSpec("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                    "test_batch", b"labels", b"label_names", "batches.meta",
                    "cifar-10-batches-py-target", "cifar10")
CIFAR100 = CifarSpec("cifar100", "cifar-100-python", ("train",), "test", b"fine_labels",
                     b"fine_label_names", "meta", "cifar-100-python-target", "cifar100")


class _ArraysOnly(pickle.Unpickler):
    """Unpickles what a CIFAR batch holds (dicts, lists, bytes, numbers, NumPy arrays) and
    nothing else: a pickle naming any other class or function is refused, never run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, keys: tuple[bytes, ...]) -> dict[bytes, object]:
    """One CIFAR batch file, checked to be a dict holding ``keys``.

    Raises:
        DataError: naming the file: not a CIFAR batch, or one that names other code.
    """
    try:
        with path.open("rb") as handle:
            batch = _ArraysOnly(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            LookupError, MemoryError) as exc:
        raise DataError(f"{path}: not a CIFAR batch file ({exc})") from exc
    missing = [k.decode() for k in keys if not isinstance(batch, dict) or k not in batch]
    if missing:
        raise DataError(f"{path}: not a CIFAR batch file (no {', '.join(missing)})")
    return batch


def find_cifar_dir(spec: CifarSpec, data_dir: str | Path | None) -> Path | None:
    """The folder holding the batches: ``--data-dir`` (or its ``cifar-...`` folder), then
    the Keras cache; None to download."""
    needed = [*spec.train_files, spec.test_file, spec.meta_file]
    if data_dir is not None:
        path = existing_dir(data_dir)
        for candidate in (path, path / spec.folder):
            if all((candidate / n).is_file() for n in needed):
                return candidate
        raise DataError(f"data directory {path} lacks the {spec.name} batches ({', '.join(needed)})")
    cache = keras_cache_dir(spec.keras_cache_subdir) / spec.folder
    older = keras_cache_dir(spec.folder)
    return next((c for c in (cache, older) if all((c / n).is_file() for n in needed)), None)


def load_cifar(spec: CifarSpec, data_dir: str | Path | None = None) -> Dataset:
    directory = find_cifar_dir(spec, data_dir)
    if directory is None:
        download(spec.name, spec.keras_dataset, [keras_cache_dir(spec.keras_cache_subdir)])
        directory = keras_cache_dir(spec.keras_cache_subdir) / spec.folder
    meta = read_cifar_batch(directory / spec.meta_file, (spec.names_key,))
    class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[spec.names_key])
    arrays = {}
    for split, files in (("train", spec.train_files), ("test", (spec.test_file,))):
        images, labels = [], []
        for file_name in files:
            batch = read_cifar_batch(directory / file_name, (b"data", spec.label_key))
            data = np.asarray(batch[b"data"])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DataError(f"{directory / file_name}: data is {data.dtype} {data.shape}, "
                                "expected uint8 (images, 3072)")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            try:
                labels.append(np.asarray(batch[spec.label_key], dtype=np.int64).reshape(len(data)))
            except (TypeError, ValueError) as exc:
                raise DataError(f"{directory / file_name}: labels are not {len(data)} integers "
                                f"({exc})") from exc
        arrays[split] = (np.concatenate(images), np.concatenate(labels))
    checksums = {n: sha256_file(directory / n)
                 for n in (*spec.train_files, spec.test_file, spec.meta_file)}
    return Dataset(spec.name, class_names, *arrays["train"], *arrays["test"],
                   source=str(directory), checksums=checksums)
