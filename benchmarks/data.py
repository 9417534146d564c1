"""Datasets: where the files come from, how they are checked, and how they are split."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
FINITE_CHECK_CHUNK = 4096  # images per np.isfinite pass: memory-mapped arrays stay on disk


class DataError(ValueError):
    """A dataset is missing, truncated or not what it claims to be."""


@dataclass(frozen=True)
class DatasetSpec:
    """What archbench needs to know to find, check and use one image dataset."""

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    # role ("train_images", "train_labels", "test_images", "test_labels") -> file name
    files: dict[str, str]
    counts: dict[str, int]  # "train" / "test" -> number of images
    keras_cache_subdir: str  # below ~/.keras/datasets
    system_subdir: str  # below /usr/share/datasets (Debian's dataset packages)
    keras_dataset: str  # module of keras.datasets that can download it

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    image_shape=(28, 28, 1),
    files={
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    },
    counts={"train": 60000, "test": 10000},
    keras_cache_subdir="fashion-mnist",
    system_subdir="fashion-mnist",
    keras_dataset="fashion_mnist",
)

DATASETS: dict[str, DatasetSpec] = {FASHION_MNIST.name: FASHION_MNIST}


@dataclass
class Dataset:
    """The checked arrays of one dataset and where they came from."""

    spec: DatasetSpec
    x_train: np.ndarray  # uint8, (n, height, width)
    y_train: np.ndarray  # uint8, (n,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256


def get_spec(name: str) -> DatasetSpec:
    """The dataset called ``name``; raises DataError naming the known ones otherwise."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def keras_cache_dir(spec: DatasetSpec) -> Path:
    """Where ``keras.datasets`` keeps the files of ``spec``."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / spec.keras_cache_subdir


def find_data_dir(spec: DatasetSpec, data_dir: str | Path | None = None) -> Path | None:
    """The first directory holding every file of ``spec``, or None to download.

    Order: an explicit ``data_dir`` (which must hold the files), the Keras cache, then
    Debian's dataset package under /usr/share/datasets.

    Raises:
        DataError: ``data_dir`` was given but does not hold the files.
    """
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise DataError(f"data directory {path} does not exist")
        missing = [n for n in spec.files.values() if _locate(path, n) is None]
        if missing:
            raise DataError(f"data directory {path} lacks {', '.join(missing)}")
        return path
    for candidate in (keras_cache_dir(spec), SYSTEM_DATA_ROOT / spec.system_subdir):
        if all(_locate(candidate, n) is not None for n in spec.files.values()):
            return candidate
    return None


def _locate(directory: Path, file_name: str) -> Path | None:
    """The file, gzipped as named or already uncompressed."""
    for name in (file_name, file_name.removesuffix(".gz")):
        if (directory / name).is_file():
            return directory / name
    return None


def load_dataset(spec: DatasetSpec, data_dir: str | Path | None = None) -> Dataset:
    """Load and check every file of ``spec``, downloading through Keras as a last resort.

    Raises:
        DataError: a file is missing, truncated, corrupt or of the wrong shape.
    """
    directory = find_data_dir(spec, data_dir)
    if directory is None:
        directory = _download(spec)
    arrays, checksums = {}, {}
    for role, file_name in spec.files.items():
        path = _locate(directory, file_name)
        if path is None:
            raise DataError(f"{directory / file_name} is missing")
        raw = path.read_bytes()
        checksums[path.name] = hashlib.sha256(raw).hexdigest()
        arrays[role] = parse_idx(raw, path)
    dataset = Dataset(
        spec=spec,
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
        source=str(directory),
        checksums=checksums,
    )
    check_dataset(dataset)
    return dataset


def _download(spec: DatasetSpec) -> Path:
    import keras  # deferred: only needed when no local copy exists

    try:
        getattr(keras.datasets, spec.keras_dataset).load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one message
        raise DataError(
            f"no local copy of {spec.name} (looked in {keras_cache_dir(spec)} and "
            f"{SYSTEM_DATA_ROOT / spec.system_subdir}) and the download failed: {exc}; "
            "pass --data-dir or install Debian's dataset package"
        ) from exc
    return keras_cache_dir(spec)


def parse_idx(raw: bytes, path: Path | str) -> np.ndarray:
    """Decode one IDX file (gzipped or not) of unsigned bytes, checking its header and size.

    Raises:
        DataError: wrong magic number, truncated data or a corrupt gzip stream.
    """
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x} (expected 0x{IMAGES_MAGIC:08x} for "
            f"images or 0x{LABELS_MAGIC:08x} for labels)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: holds {len(raw)} bytes but its header {shape} needs {expected} "
            "(truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def check_dataset(dataset: Dataset) -> None:
    """Check counts, image shapes, label range and finite values against the spec.

    Raises:
        DataError: naming the first mismatch.
    """
    spec = dataset.spec
    height, width, _ = spec.image_shape
    for split, x, y in (
        ("train", dataset.x_train, dataset.y_train),
        ("test", dataset.x_test, dataset.y_test),
    ):
        if x.shape != (spec.counts[split], height, width):
            raise DataError(
                f"{spec.name} {split} images have shape {x.shape}, expected "
                f"{(spec.counts[split], height, width)}"
            )
        if y.shape != (spec.counts[split],):
            raise DataError(f"{spec.name} {split} labels have shape {y.shape}")
        if y.size and int(y.max()) >= spec.num_classes:
            raise DataError(
                f"{spec.name} {split} labels reach {int(y.max())}, beyond the "
                f"{spec.num_classes} classes"
            )
    for role in ("x_train", "y_train", "x_test", "y_test"):
        check_finite_array(getattr(dataset, role), f"{spec.name} {role}")


def check_finite_array(array: np.ndarray, name: str) -> None:
    """Refuse an array holding NaN or infinite values, before any training sees them.

    A model fed such values may train to a finite, meaningless loss: some CPU kernels
    (oneDNN's fused ones) turn the NaN of ``inf - inf`` into zeros. Integer arrays (the
    IDX files' unsigned bytes) cannot hold NaN or infinity, so only
    floating-point arrays are scanned, in chunks so that a memory-mapped array is never
    read into memory whole.

    Raises:
        DataError: naming the array and how many of its values are not finite.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = sum(
        int(np.count_nonzero(~np.isfinite(array[start:start + FINITE_CHECK_CHUNK])))
        for start in range(0, len(array), FINITE_CHECK_CHUNK)
    )
    if bad:
        raise DataError(f"{name} holds {bad:,} non-finite values (NaN or infinity)")


@dataclass
class Splits:
    """The arrays of one benchmark run, as float32 images in [0, 1] with a channel axis."""

    x_tune: np.ndarray
    y_tune: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_final: np.ndarray
    y_final: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {
            "tune": len(self.y_tune),
            "validation": len(self.y_val),
            "final_train": len(self.y_final),
            "test": len(self.y_test),
        }


def stratified_take(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` samples whose class proportions match ``labels``'s.

    Each class gets its proportional share, rounded down, and the samples left over go to
    the classes with the largest remainders, so class counts differ from exact
    proportions by less than one.
    """
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(int)
    leftover = size - quota.sum()
    quota[np.argsort(-(exact - quota), kind="stable")[:leftover]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def make_splits(
    dataset: Dataset, val_size: int, train_size: int, final_train_size: int, seed: int
) -> Splits:
    """Carve a stratified validation split from the training set with a fixed seed.

    The rest of the training set is the training split; ``train_size`` and
    ``final_train_size`` take stratified subsets of it for tuning and for the final
    training (0 = all of it). The test set is left whole and untouched.

    Raises:
        DataError: the sizes ask for more images than there are.
    """
    total = len(dataset.y_train)
    if val_size >= total:
        raise DataError(f"val_size {val_size} leaves no training images (the set has {total})")
    rest = total - val_size
    for name, size in (("train_size", train_size), ("final_train_size", final_train_size)):
        if size > rest:
            raise DataError(
                f"{name} {size} is larger than the {rest} training images left after the "
                f"validation split of {val_size}"
            )
    rng = np.random.default_rng(seed)
    val_idx = stratified_take(dataset.y_train, val_size, rng)
    train_idx = np.setdiff1d(np.arange(total), val_idx)
    y_rest = dataset.y_train[train_idx]
    tune_idx = train_idx[stratified_take(y_rest, train_size or rest, rng)]
    final_idx = train_idx[stratified_take(y_rest, final_train_size or rest, rng)]
    return Splits(
        *_images(dataset, tune_idx),
        *_images(dataset, val_idx),
        *_images(dataset, final_idx),
        to_float(dataset.x_test),
        dataset.y_test.astype(np.int64),
    )


def _images(dataset: Dataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return to_float(dataset.x_train[idx]), dataset.y_train[idx].astype(np.int64)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (n, h, w) -> float32 (n, h, w, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]
