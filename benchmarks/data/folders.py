"""A folder of the user's images: ``DIR/<class>/*.png`` (or ``DIR/train/<class>/`` and
``DIR/test/<class>/``), decoded once into a memory-mapped cache.

Decoding is Pillow's (every format it reads: PNG, JPEG, BMP, GIF); the progress bar is
tqdm's. The cache lives in ``$ARCHBENCH_CACHE`` (default ``~/.cache/archbench``), one
folder per (fingerprint of the image files, image size, channels): a repeated or resumed
run reads it instead of decoding again, and a changed image changes the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.data.dataset import DataError, DataRequest, Dataset, Notice
from benchmarks.data.rows import Rows
from benchmarks.data.splits import carve_test_split
from benchmarks.rundir import atomic_write_text
from benchmarks.runtime.lock import process_alive

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L"}
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L"}  # scaled to 8 bits, not clipped
SPLIT_FOLDERS = {"train", "test", "val", "validation"}
ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def cache_root() -> Path:
    return Path(os.environ.get("ARCHBENCH_CACHE", Path.home() / ".cache" / "archbench")) / "folders"


@dataclass
class FolderListing:
    """The image files of a folder dataset, by split and class."""

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]  # "train" / "test" (if given) -> (file, label)

    def fingerprint(self) -> str:
        """SHA-256 over every image's relative path and content."""
        digest = hashlib.sha256()
        for split in sorted(self.files):
            for path, label in self.files[split]:
                digest.update(f"{split}/{label}/{path.relative_to(self.root)}\0".encode())
                try:
                    digest.update(path.read_bytes())
                except OSError as exc:
                    raise DataError(f"cannot read image {path}: {exc.strerror}") from exc
        return digest.hexdigest()


def _class_folders(directory: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for each subfolder of ``directory``."""
    classes = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in sub.rglob("*") if p.suffix.lower() in EXTENSIONS
                        and not p.name.startswith(".") and p.is_file())  # no ._ files of macOS
        if not images:
            raise DataError(f"class folder {sub} holds no images "
                            f"({', '.join(sorted(EXTENSIONS))})")
        classes[sub.name] = images
    return classes


def list_folder(root: Path) -> FolderListing:
    """The classes and image files of ``root``.

    Raises:
        DataError: naming the folder: not a folder, empty, one class, an empty class,
            train/ and test/ with different classes.
    """
    if not root.is_dir():
        raise DataError(f"image folder {root} is not a directory")
    split_dirs = {s: root / s for s in ("train", "test")}
    present = {p.name for p in root.iterdir() if p.is_dir()} & SPLIT_FOLDERS
    if present and present != {"train", "test"}:
        raise DataError(f"image folder {root} holds {', '.join(sorted(present))}/: give exactly "
                        f"train/ and test/ (each with class folders), or the class folders "
                        f"directly in {root}; a validation split is carved from train/")
    if present:
        by_split = {s: _class_folders(d) for s, d in split_dirs.items()}
        if set(by_split["train"]) != set(by_split["test"]):
            raise DataError(f"{root}/train and {root}/test hold different classes: "
                            f"{sorted(set(by_split['train']) ^ set(by_split['test']))}")
    else:
        by_split = {"train": _class_folders(root)}
    names = tuple(sorted(by_split["train"]))
    if not names:
        raise DataError(f"image folder {root} holds no class folders; expected "
                        f"{root}/<class>/<image> (or train/ and test/ with class folders)")
    if len(names) < 2:
        raise DataError(f"image folder {root} holds one class ({names[0]}); a classifier "
                        "needs 2 or more")
    files = {split: [(f, names.index(c)) for c in names for f in classes[c]]
             for split, classes in by_split.items()}
    return FolderListing(root, names, files)


def _probe(files: list[Path]) -> tuple[Counter, bool, list[tuple[Path, str]]]:
    """Sizes (height, width) and whether every image is grey, from the headers; plus the
    files that cannot be opened."""
    from PIL import Image

    sizes, grey, bad = Counter(), True, []
    for path in files:
        try:
            with Image.open(path) as image:
                turned = image.getexif().get(0x0112) in ROTATED  # shown rotated by 90 degrees
                sizes[(image.width, image.height) if turned else (image.height, image.width)] += 1
                grey = grey and image.mode in GREY_MODES
                if image.mode == "F":
                    raise ValueError("32-bit float images are not supported; save 8 or 16 bits")
        except (OSError, ValueError) as exc:
            bad.append((path, " ".join(str(exc).split())))
    return sizes, grey, bad


def _refuse_unreadable(bad: list[tuple[Path, str]]) -> None:
    if bad:
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more unreadable image(s))" if len(bad) > 1 else ""
        raise DataError(f"cannot read image {path}: {why}{more}")


def _decode_into(files: list[tuple[Path, int]], shape: tuple[int, int, int], out: Path,
                 progress: str) -> list[tuple[Path, str]]:
    """Decode, convert and resize every file into ``out/x.npy`` (memory-mapped) and
    ``out/y.npy``; returns the files that failed to decode."""
    from PIL import Image, ImageOps
    from tqdm import tqdm

    height, width, channels = shape
    x = np.lib.format.open_memmap(out / "x.npy", mode="w+", dtype=np.uint8,
                                  shape=(len(files), *shape))
    bad = []
    bar = tqdm(files, desc=progress, unit="image", leave=False, disable=None)  # terminals only
    for i, (path, _) in enumerate(bar):
        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)  # as a viewer shows it
                if image.mode in SIXTEEN_BIT_MODES:
                    pixels = np.asarray(image, dtype=np.float64).clip(0, 65535) / 257.0
                    image = Image.fromarray(pixels.round().astype(np.uint8))
                image = image.convert("L" if channels == 1 else "RGB")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                x[i] = np.asarray(image).reshape(shape)
        except (OSError, ValueError) as exc:
            bad.append((path, " ".join(str(exc).split())))
    x.flush()
    np.save(out / "y.npy", np.array([label for _, label in files], dtype=np.int64))
    return bad


def _image_shape(listing: FolderListing, fingerprint: str, request: DataRequest,
                 notice: Notice) -> tuple[int, int, int]:
    """The shape every image is decoded to. The headers of every image are read once per
    fingerprint (their sizes and modes are kept in the cache beside the arrays)."""
    probe_file = cache_root() / f"{fingerprint[:20]}.probe.json"
    try:
        probe = json.loads(probe_file.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: read the headers again
        everything = [f for split in listing.files.values() for f, _ in split]
        sizes, grey, bad = _probe(everything)
        _refuse_unreadable(bad)
        (height, width), count = sizes.most_common(1)[0]
        probe = {"size": [height, width], "count": count, "sizes": len(sizes),
                 "images": len(everything), "grey": grey}
        atomic_write_text(probe_file, json.dumps(probe))
    height, width = probe["size"]
    if request.image_size is not None:
        height, width = request.image_size
    elif probe["sizes"] > 1:
        notice(f"archbench: images in {listing.root} have {probe['sizes']} sizes; "
               f"{probe['count']:,} of {probe['images']:,} are {height}x{width}, and every "
               "image is resized to that (choose with --image-size HxW)")
    return height, width, 1 if probe["grey"] else 3


def load_folder(request: DataRequest, seed: int, notice: Notice = print) -> Dataset:
    """The images of ``request.data_dir``, from the cache or decoded into it.

    Raises:
        DataError: naming the folder or the first unreadable image.
    """
    listing = list_folder(Path(request.data_dir))
    fingerprint = listing.fingerprint()
    shape = _image_shape(listing, fingerprint, request, notice)
    key = f"{fingerprint[:20]}-{shape[0]}x{shape[1]}x{shape[2]}"
    cache = cache_root() / key
    complete = (cache / "done.json").is_file() and all(
        (cache / split / name).is_file() for split in listing.files for name in ("x.npy", "y.npy"))
    if not complete:
        count = sum(len(files) for files in listing.files.values())
        notice(f"archbench: decoding {count:,} images of {listing.root} into {cache} "
               "(once: later runs read the cache)")
        _fill_cache(listing, shape, cache)
    arrays = {split: (np.load(cache / split / "x.npy", mmap_mode="r"),
                      np.load(cache / split / "y.npy")) for split in listing.files}
    checksums = {"images": fingerprint, "image shape": "x".join(map(str, shape))}
    if "test" not in arrays:
        x, y = arrays.pop("train")
        train, test = carve_test_split(y, request.test_fraction, seed)
        arrays = {"train": (Rows(x, train), y[train]), "test": (Rows(x, test), y[test])}
        checksums["test split"] = f"carved {request.test_fraction} with seed {seed}"
    return Dataset(listing.root.resolve().name, listing.class_names, *arrays["train"], *arrays["test"],
                   source=f"{listing.root} (cache {cache})", checksums=checksums)


def _fill_cache(listing: FolderListing, shape: tuple[int, int, int], cache: Path) -> None:
    """Decode into a temporary folder beside the cache, then rename: a cache folder is
    complete or absent, never half-written."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache)
    owner = f"{socket.gethostname()}.{os.getpid()}"
    work = Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".{cache.name}.{owner}."))
    try:
        for split, files in listing.files.items():
            (work / split).mkdir()
            bad = _decode_into(files, shape, work / split, f"decoding {listing.root.name}/{split}")
            _refuse_unreadable(bad)
        (work / "done.json").write_text(json.dumps({"root": str(listing.root), "shape": shape}))
        if (cache / "done.json").is_file():
            return  # another process filled it meanwhile: keep its copy, drop ours
        shutil.rmtree(cache, ignore_errors=True)  # a broken copy
        try:
            work.rename(cache)
        except OSError:
            if not (cache / "done.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_abandoned(cache: Path) -> None:
    """Delete the half-decoded copies of ``cache`` left by processes of this host that died
    (killed while decoding); a live process's copy, or another host's, is left alone."""
    host = socket.gethostname()
    for work in cache.parent.glob(f".{cache.name}.*"):
        owner_host, _, rest = work.name[len(cache.name) + 2:].rpartition(".")[0].rpartition(".")
        if owner_host == host and rest.isdigit() and not process_alive(int(rest)):
            shutil.rmtree(work, ignore_errors=True)
