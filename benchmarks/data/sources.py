"""Where datasets come from: the built-in ones, an ``.npz`` of arrays, a folder of images.

Built-in files are found in order: ``--data-dir``, the Keras cache, Debian's dataset
packages (``/usr/share/datasets``), then Keras' download. ``load_dataset`` returns a
checked ``Dataset`` whatever the source.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.data.cifar import CIFAR10, CIFAR100, load_cifar
from benchmarks.data.dataset import DataError, DataRequest, Dataset, Notice, check_dataset
from benchmarks.data.files import download, existing_dir, keras_cache_dir, sha256_file
from benchmarks.data.splits import carve_test_split

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Built-in datasets whose classes survive a left-right mirror (clothes, objects): flips may
# augment them. Digits do not (a mirrored 2 is no digit); a folder or an array file is
# declared so with --mirror-invariant.
MIRROR_INVARIANT = {"fashion_mnist", "cifar10", "cifar100"}


@dataclass(frozen=True)
class IdxSpec:
    """A dataset shipped as four IDX files (the MNIST format)."""

    name: str
    class_names: tuple[str, ...]
    files: dict[str, str]  # role (train_images, ...) -> file name
    counts: dict[str, int]  # "train" / "test" -> number of images
    keras_cache_subdir: str  # below ~/.keras/datasets
    system_subdir: str | None  # below /usr/share/datasets, where Debian packages it
    keras_dataset: str  # module of keras.datasets that can download it
    image_shape: tuple[int, int, int] = (28, 28, 1)
    keras_npz: str | None = None  # what Keras' download leaves instead of IDX files, if anything


def _idx_files(prefix: str = "") -> dict[str, str]:
    return {"train_images": f"{prefix}train-images-idx3-ubyte.gz",
            "train_labels": f"{prefix}train-labels-idx1-ubyte.gz",
            "test_images": f"{prefix}t10k-images-idx3-ubyte.gz",
            "test_labels": f"{prefix}t10k-labels-idx1-ubyte.gz"}


FASHION_MNIST = IdxSpec(
    name="fashion_mnist",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    files=_idx_files(), counts={"train": 60000, "test": 10000},
    keras_cache_subdir="fashion-mnist", system_subdir="fashion-mnist", keras_dataset="fashion_mnist",
)
MNIST = IdxSpec(
    name="mnist", class_names=tuple(str(d) for d in range(10)), files=_idx_files(),
    counts={"train": 60000, "test": 10000}, keras_cache_subdir="mnist", system_subdir="mnist",
    keras_dataset="mnist", keras_npz="mnist.npz",
)


def find_idx_dir(spec: IdxSpec, data_dir: str | Path | None = None) -> Path | None:
    """The first directory holding every file of ``spec``, or None to download.

    Raises:
        DataError: ``data_dir`` was given but does not hold the files.
    """
    if data_dir is not None:
        path = existing_dir(data_dir)
        missing = [n for n in spec.files.values() if _locate(path, n) is None]
        if missing:
            raise DataError(f"data directory {path} lacks {', '.join(missing)}")
        return path
    candidates = [keras_cache_dir(spec.keras_cache_subdir)]
    if spec.system_subdir:
        candidates.append(SYSTEM_DATA_ROOT / spec.system_subdir)
    for candidate in candidates:
        if all(_locate(candidate, n) is not None for n in spec.files.values()):
            return candidate
    return None


def _locate(directory: Path, file_name: str) -> Path | None:
    """The file, gzipped as named or already uncompressed."""
    for name in (file_name, file_name.removesuffix(".gz")):
        if (directory / name).is_file():
            return directory / name
    return None


def load_idx(spec: IdxSpec, data_dir: str | Path | None = None) -> Dataset:
    """Load and check every file of an IDX dataset, downloading as a last resort."""
    directory = find_idx_dir(spec, data_dir)
    if directory is None and spec.keras_npz:  # Keras keeps MNIST as one .npz
        cached = keras_cache_dir("") / spec.keras_npz
        if not cached.is_file():
            download(spec.name, spec.keras_dataset, [keras_cache_dir(spec.keras_cache_subdir), cached])
        dataset = load_npz(DataRequest("npz", cached))
        dataset.name, dataset.class_names = spec.name, spec.class_names
        return dataset
    if directory is None:
        looked = [keras_cache_dir(spec.keras_cache_subdir)]
        download(spec.name, spec.keras_dataset, looked)
        directory = keras_cache_dir(spec.keras_cache_subdir)
    arrays, checksums = {}, {}
    for role, file_name in spec.files.items():
        path = _locate(directory, file_name)
        if path is None:
            raise DataError(f"{directory / file_name} is missing")
        raw = path.read_bytes()
        checksums[path.name] = hashlib.sha256(raw).hexdigest()
        expected = IMAGES_MAGIC if role.endswith("images") else LABELS_MAGIC
        arrays[role] = parse_idx(raw, path, expected)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != spec.counts[split] or len(labels) != spec.counts[split]:
            raise DataError(f"{spec.name} {split} files hold {len(images):,} images and "
                            f"{len(labels):,} labels, expected {spec.counts[split]:,} of each")
        if images.shape[1:] != spec.image_shape[:2]:
            raise DataError(f"{spec.name} {split} images are {images.shape[1:]}, expected "
                            f"{spec.image_shape[:2]}")
    return Dataset(spec.name, spec.class_names, arrays["train_images"][..., None],
                   arrays["train_labels"], arrays["test_images"][..., None],
                   arrays["test_labels"], source=str(directory), checksums=checksums)


def parse_idx(raw: bytes, path: Path | str, expected_magic: int | None = None) -> np.ndarray:
    """Decode one IDX file (gzipped or not) of unsigned bytes, checking its header and size.

    Raises:
        DataError: naming the file: wrong magic number, truncated data, corrupt gzip.
    """
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    wanted = (expected_magic,) if expected_magic else (IMAGES_MAGIC, LABELS_MAGIC)
    if magic not in wanted:
        kinds = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
        expected = " or ".join(f"0x{m:08x} for {kinds[m]}" for m in wanted)
        raise DataError(f"{path}: wrong magic number 0x{magic:08x} (expected {expected})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected_size = header + int(np.prod(shape))
    if len(raw) != expected_size:
        raise DataError(
            f"{path}: holds {len(raw)} bytes but its header {shape} needs {expected_size} "
            "(truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_digits(request: DataRequest, seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 0-16 grey levels): real data that
    needs no download. It has no test split: one is carved with ``request.test_fraction``."""
    import sklearn
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., None]
    labels = bunch.target.astype(np.int64)
    train, test = carve_test_split(labels, request.test_fraction, seed)
    bundled = Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"
    checksums = {bundled.name: sha256_file(bundled),
                 "test split": f"carved {request.test_fraction} with seed {seed}"}
    return Dataset("digits", tuple(str(d) for d in range(10)), images[train], labels[train],
                   images[test], labels[test], source=f"scikit-learn {sklearn.__version__}",
                   checksums=checksums)


def load_npz(request: DataRequest) -> Dataset:
    """``x_train, y_train, x_test, y_test`` (and optionally ``class_names``) from one file,
    loaded without pickle. Images ``(n, h, w)`` or ``(n, h, w, c)``, uint8 or floats in [0, 1]."""
    path = request.data_dir
    if path is None or not path.is_file():
        raise DataError(f"--dataset npz needs --data-dir FILE.npz; {path} is not a file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())})") from exc
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (it holds {', '.join(arrays) or 'nothing'})")
    for split in ("train", "test"):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _npz_split(path, split, arrays)
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]])
    if "class_names" in arrays:
        class_names = tuple(str(n) for n in np.atleast_1d(arrays["class_names"]))
    else:
        class_names = tuple(str(c) for c in range(int(labels.max()) + 1 if labels.size else 0))
    return Dataset(path.stem, class_names, arrays["x_train"], arrays["y_train"],
                   arrays["x_test"], arrays["y_test"], source=str(path),
                   checksums={path.name: sha256_file(path)})


def _npz_split(path: Path, split: str, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """One split's images as (n, h, w, c) and its labels as integers, or a DataError."""
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.ndim not in (3, 4) or y.ndim != 1:
        raise DataError(f"{path}: x_{split} has shape {x.shape} and y_{split} {y.shape}; expected "
                        "images (n, h, w) or (n, h, w, c) and labels (n,)")
    if len(x) != len(y):
        raise DataError(f"{path}: x_{split} has {len(x):,} images but y_{split} {len(y):,} labels")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3, 4):
        raise DataError(f"{path}: x_{split} {x.shape} looks channels-first; store images as "
                        "(n, height, width, channels)")
    if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path}: x_{split} holds {x.dtype}; store uint8 images or floats in [0, 1]")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: y_{split} holds {y.dtype} values; labels must be integers "
                        "0 .. classes-1 (class names go in an array 'class_names')")
    return (x[..., None] if x.ndim == 3 else x), y


BUILT_IN = ("fashion_mnist", "mnist", "cifar10", "cifar100", "digits")
USER_SOURCES = ("folder", "npz")
NAMES = (*BUILT_IN, *USER_SOURCES)


SHAPES = {  # the built-ins' image shape and number of classes, known without loading
    "fashion_mnist": ((28, 28, 1), 10), "mnist": ((28, 28, 1), 10), "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100), "digits": ((8, 8, 1), 10),
}


def input_shape(request: DataRequest) -> tuple[tuple[int, int, int], int]:
    """The image shape and number of classes of a dataset (a user's is loaded to see)."""
    check_request(request)
    if request.name in SHAPES:
        return SHAPES[request.name]
    dataset = load_dataset(request, notice=lambda line: None)
    return dataset.image_shape, dataset.num_classes


def dataset_label(request: DataRequest) -> str:
    """The dataset's name: a built-in's own, a folder's or a file's name otherwise."""
    if request.name == "folder" and request.data_dir is not None:
        return request.data_dir.resolve().name
    if request.name == "npz" and request.data_dir is not None:
        return request.data_dir.stem
    return request.name


def check_request(request: DataRequest) -> None:
    """Refuse a request that cannot work, before anything heavy loads.

    Raises:
        DataError: unknown dataset, a missing ``--data-dir``, a bad test fraction.
    """
    if request.name not in NAMES:
        raise DataError(f"unknown dataset {request.name!r}; known: {', '.join(NAMES)}")
    if request.name in USER_SOURCES and request.data_dir is None:
        what = "FOLDER" if request.name == "folder" else "FILE.npz"
        raise DataError(f"--dataset {request.name} needs --data-dir {what}")
    if request.data_dir is not None and not request.data_dir.exists():
        kind = "file" if request.name == "npz" else "directory"
        raise DataError(f"data {kind} {request.data_dir} does not exist")
    if not 0 < request.test_fraction < 1:
        raise DataError(f"--test-fraction must be between 0 and 1, got {request.test_fraction}")


def load_dataset(request: DataRequest, seed: int = 0, notice: Notice = print) -> Dataset:
    """The checked dataset ``request`` names; ``seed`` carves a test split where the
    source has none.

    Raises:
        DataError: naming the file or folder and what is wrong with it.
    """
    check_request(request)
    loaders: dict[str, Callable[[], Dataset]] = {
        "fashion_mnist": lambda: load_idx(FASHION_MNIST, request.data_dir),
        "mnist": lambda: load_idx(MNIST, request.data_dir),
        "cifar10": lambda: load_cifar(CIFAR10, request.data_dir),
        "cifar100": lambda: load_cifar(CIFAR100, request.data_dir),
        "digits": lambda: load_digits(request, seed),
        "npz": lambda: load_npz(request),
    }
    if request.name == "folder":
        from benchmarks.data.folders import load_folder

        dataset = load_folder(request, seed, notice)
    else:
        dataset = loaders[request.name]()
    dataset.mirror_invariant = request.name in MIRROR_INVARIANT or request.mirror_invariant
    check_dataset(dataset)
    return dataset
