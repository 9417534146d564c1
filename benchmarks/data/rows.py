"""Rows of an image array read when they are used: how a dataset larger than memory runs.

NumPy's fancy indexing copies (``memmap[idx]`` reads every chosen image into memory), and
the float32 splits of a run are four bytes per pixel where the cache holds one. ``Rows``
keeps an index into the array instead, composes further indexing lazily, and reads (and,
with ``as_float``, scales to [0, 1]) only the rows a batch asks for. NumPy only: the
decision to stream is made before TensorFlow loads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

STREAM_SHARE = 0.5  # of the memory available: float32 splits larger than this are streamed
INPUT_MODES = ("auto", "memory", "stream")


class Rows:
    """Rows ``index`` of ``source`` (an array, memory-mapped or not), read on indexing.

    Indexing with an integer, a slice or an index array returns a NumPy array (float32 in
    [0, 1] when ``as_float``: unsigned bytes are divided by 255); ``take`` returns another
    lazy ``Rows``. ``np.asarray(rows)`` reads everything.
    """

    def __init__(self, source: np.ndarray, index: np.ndarray | None = None,
                 as_float: bool = False) -> None:
        self.source = source.source if isinstance(source, Rows) else source
        base = source.index if isinstance(source, Rows) else np.arange(len(source))
        self.index = base if index is None else base[np.asarray(index)]
        self.as_float = as_float

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.as_float else self.source.dtype

    @property
    def ndim(self) -> int:
        return self.source.ndim

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        chosen = self.index[key]
        if np.ndim(chosen) == 0:
            rows = np.asarray(self.source[int(chosen)])
        else:
            order = np.argsort(chosen, kind="stable")  # read the file front to back
            rows = np.empty((len(chosen), *self.source.shape[1:]), self.source.dtype)
            rows[order] = self.source[chosen[order]]
        return to_float(rows) if self.as_float else rows

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)

    def take(self, index: np.ndarray) -> Rows:
        return Rows(self, index, self.as_float)

    def floats(self) -> Rows:
        return Rows(self, None, as_float=True)


def to_float(images: np.ndarray) -> np.ndarray:
    """Images as float32 in [0, 1]: unsigned bytes are divided by 255, floats kept."""
    if np.issubdtype(images.dtype, np.integer):
        return np.asarray(images).astype(np.float32) / np.float32(255.0)
    return np.asarray(images, dtype=np.float32)


def available_memory(proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")
                     ) -> int | None:
    """Bytes a new allocation can take: the kernel's MemAvailable (else free pages), or less
    when this process's cgroup (a container's memory limit, v1 or v2) leaves less; None
    where nothing is known."""
    known = []
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                known.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not known:
        try:
            known.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    left = _cgroup_memory_left(proc, cgroups)
    if left is not None:
        known.append(left)
    return min(known) if known else None


def _cgroup_memory_left(proc: Path, cgroups: Path) -> int | None:
    """Limit minus usage of this process's memory cgroup; None without a limit."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy
            files = ("memory.max", "memory.current")
            places = [cgroups / path.lstrip("/"), cgroups]
        elif "memory" in controllers.split(","):  # v1: the memory controller's hierarchy
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes")
            places = [cgroups / "memory" / path.lstrip("/"), cgroups / "memory"]
        else:
            continue
        for place in places:  # the own cgroup, or (inside a namespace) the mount's root
            try:
                limit, usage = ((place / name).read_text().strip() for name in files)
                if limit != "max" and int(limit) < 2**60:  # v1's "no limit" is near 2**63
                    return max(0, int(limit) - int(usage))
                break
            except (OSError, ValueError):
                continue
    return None


def should_stream(mode: str, split_bytes: int, available: int | None) -> bool:
    """Whether a run's splits are streamed from their source rather than held in memory:
    ``memory`` and ``stream`` say so; ``auto`` streams when the float32 splits would take
    more than ``STREAM_SHARE`` of the memory available (never when that is unknown)."""
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown input mode {mode!r}; choose {', '.join(INPUT_MODES)}")
    if mode != "auto":
        return mode == "stream"
    return available is not None and split_bytes > STREAM_SHARE * available
