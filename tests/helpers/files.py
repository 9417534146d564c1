"""Datasets written in their real formats: IDX files and image folders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
from PIL import Image


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_dataset(directory, train_labels=None):
    directory.mkdir(parents=True, exist_ok=True)
    specs = {
        "train-images-idx3-ubyte.gz": idx_bytes(np.zeros((60000, 28, 28)), 0x803),
        "train-labels-idx1-ubyte.gz": idx_bytes(
            np.arange(60000) % 10 if train_labels is None else train_labels, 0x801
        ),
        "t10k-images-idx3-ubyte.gz": idx_bytes(np.zeros((10000, 28, 28)), 0x803),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.arange(10000) % 10, 0x801),
    }
    for name, raw in specs.items():
        (directory / name).write_bytes(gzip.compress(raw, compresslevel=1))


def write_folder(root, fashion, per_class=6, classes=(0, 1, 2), size=(28, 28), rgb=False,
                 fmt="png", split=None):
    for c in classes:
        directory = root / (split or "") / fashion.class_names[c].replace("/", "-")
        directory.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(fashion.y_train == c)[:per_class]):
            image = Image.fromarray(fashion.x_train[index, ..., 0])
            image = image.convert("RGB") if rgb else image
            image = image.resize(size[::-1]) if size != (28, 28) else image
            image.save(directory / f"img{i}.{fmt}")
