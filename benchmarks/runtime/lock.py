"""One ``archbench run`` at a time per run directory: a lock file naming its owner."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from benchmarks.rundir import RunDirError


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Holds ``path`` (created atomically) for the life of a ``with`` block.

    A lock left by a dead process on this host is stale and taken over; a live owner, or
    an owner on another host (whose liveness cannot be checked), makes ``acquire`` fail.
    """

    def __init__(self, path: Path, guarded: Path) -> None:
        self.path = path
        self.guarded = guarded  # what the lock protects, named in messages
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            RunDirError: another live process holds it.
        """
        for _ in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_owner()
                continue
            except OSError as exc:
                raise RunDirError(f"cannot write to {self.path.parent}: {exc.strerror}") from exc
            with os.fdopen(fd, "w") as handle:
                json.dump(self.owner, handle)
            return
        raise RunDirError(f"could not take the lock {self.path}; another run keeps taking it")

    def _check_owner(self) -> None:
        """Remove a stale lock, or raise RunDirError naming the live owner."""
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            owner = {}
        pid, host = owner.get("pid"), owner.get("host")
        if isinstance(pid, int) and host == self.owner["host"] and not process_alive(pid):
            self.path.unlink(missing_ok=True)  # its owner died: stale
            return
        if not isinstance(pid, int):
            raise RunDirError(f"{self.path} exists but names no owner; delete it if no run is active")
        where = "" if host == self.owner["host"] else f" on host {host}"
        raise RunDirError(
            f"{self.guarded} is in use by another archbench run (pid {pid}{where}); "
            f"wait for it to finish, or delete {self.path} if that run is gone"
        )

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
