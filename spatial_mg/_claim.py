"""Exclusive claims on output paths: one writer at a time per file system path.

A claim on ``<folder>/<name>`` is the lock file ``<folder>/.<name>.lock``. It appears at
its name already filled in and locked (a hard link of a finished temporary, which fails
when the name is taken: ``O_EXCL``'s effect, also on NFS), and its holder keeps it
``flock``-ed while it lives. The kernel drops that lock when the holder dies however it
dies, so a lock file that nobody holds is a stale claim: the next writer takes it over and
says so. Where a file system has no ``flock``, a claim is stale when it names a process of
this host that no longer runs.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import uuid
from datetime import datetime
from os import PathLike
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: claims are judged by their pid alone
    fcntl = None

_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV}
_ATTEMPTS = 20  # rounds lost to another claimant's release or take-over before giving up


class PathInUseError(FileExistsError):
    """Another process, still running, is writing the path."""


def lock_path(path: str | PathLike) -> Path:
    """The lock file of a claim on ``path``: hidden, beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class Claim:
    """An exclusive claim on ``path`` for as long as this process holds it.

    Parameters
    ----------
    path
        The file or folder to claim; it need not exist. Its parent folder is created.
    details
        Recorded in the lock file beside pid, host, start time and command, so that a
        refused or a later writer can say what held the path (e.g. ``staging=...``).

    Attributes
    ----------
    previous
        After :meth:`acquire`: the record of a stale claim that was taken over, else None.
    """

    def __init__(self, path: str | PathLike, **details):
        self.path = Path(path)
        self.lock = lock_path(self.path)
        self.record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv) or sys.executable,
            "token": uuid.uuid4().hex,
            **{k: str(v) for k, v in details.items()},
        }
        self.previous: dict | None = None
        self._fd: int | None = None

    def __enter__(self) -> Claim:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> Claim:
        """Take the claim, or raise :class:`PathInUseError` naming the live process that holds it."""
        text = json.dumps(self.record).encode()
        try:
            self.lock.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(_ATTEMPTS):
                fd = _create_filled(self.lock, text)
                if fd is None:
                    fd, self.previous = self._take_over_stale(text)
                if fd is not None:
                    self._fd = fd
                    return self
        except PermissionError:
            raise PermissionError(
                f"Cannot write '{self.path}': no permission to write in '{self.lock.parent}'. "
                "Choose a place you can write to."
            ) from None
        raise PathInUseError(
            f"Could not claim '{self.path}': other processes keep taking and releasing '{self.lock}'. Try again."
        )

    def release(self) -> None:
        """Give the claim up: remove the lock file (if it is still ours) and drop the lock."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.lock):
                self.lock.unlink()
        finally:
            os.close(self._fd)
            self._fd = None

    def _take_over_stale(self, text: bytes) -> tuple[int | None, dict | None]:
        """Take over the lock file already at the name if its holder is gone; (None, None) to try again."""
        try:
            fd = os.open(self.lock, os.O_RDWR)
        except FileNotFoundError:  # released meanwhile
            return None, None
        try:
            locked = _try_lock(fd)
            holder = _read_record(fd)
            if locked is False or (locked is None and _may_be_alive(holder)):
                raise PathInUseError(self._in_use_message(holder, can_break=locked is None))
            if not _same_file(fd, self.lock):  # released, or taken over by another, before we locked it
                os.close(fd)
                return None, None
            os.ftruncate(fd, 0)
            os.pwrite(fd, text, 0)
            os.fsync(fd)
            return fd, holder
        except BaseException:
            os.close(fd)
            raise

    def _in_use_message(self, holder: dict, can_break: bool) -> str:
        who = describe(holder) if holder else "another process"
        advice = f" If no such run is alive, delete '{self.lock}'." if can_break else ""
        return (
            f"'{self.path}' is being written by {who}. Wait for that run to finish, or choose another "
            f"output path.{advice}"
        )


def describe(holder: dict) -> str:
    """'the run pid 123 on host h, started 2024-..., `spatial-mg train ...`' from a claim's record."""
    command = f": `{holder['command']}`" if holder.get("command") else ""
    return (
        f"the run pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
        f"started {holder.get('started', '?')}{command}"
    )


def _create_filled(lock: Path, text: bytes) -> int | None:
    """Create ``lock`` holding ``text`` and locked, as one step; None if the name is taken."""
    tmp = lock.with_name(f"{lock.name}.new-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _try_lock(fd)
        os.write(fd, text)
        os.fsync(fd)
        try:
            os.link(tmp, lock)
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            # No hard links here (FAT, some network shares): the name is taken by renaming,
            # after checking it is free; two claimants in that instant could both win.
            if os.path.lexists(lock):
                raise FileExistsError(errno.EEXIST, "taken", str(lock)) from None
            os.rename(tmp, lock)
    except FileExistsError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return fd


def _try_lock(fd: int) -> bool | None:
    """Lock ``fd`` exclusively without waiting: True if locked, False if held elsewhere, None if unsupported."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _read_record(fd: int) -> dict:
    try:
        record = json.loads(os.pread(fd, 1 << 16, 0).decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _may_be_alive(holder: dict) -> bool:
    """Without flock: a holder is known dead only if it ran on this host and its pid is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
