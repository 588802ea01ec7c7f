"""Atomic writes: a file or folder appears complete under its final name, or not at all.

A result is written into a uniquely named hidden sibling (same folder, so the final rename
never crosses file systems), flushed to disk, then renamed once; on any error the
temporary is removed and an existing target is left untouched. A folder that replaces
another is exchanged with it in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so the
name always holds the old or the new folder, never none; where the OS cannot, two renames
are used and the next writer of the path repairs a crash between them (:func:`recover`).
Writers of one folder take turns through a :class:`~spatial_mg._claim.Claim`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from os import PathLike
from pathlib import Path

from ._claim import Claim

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def say(message: str) -> None:
    """A note for the user about their files (a replaced claim, kept results): one line on stderr."""
    print(f"spatial_mg: {message}", file=sys.stderr, flush=True)


def _sibling(path: Path, tag: str) -> Path:
    """A hidden, unique name beside ``path`` that keeps its suffix (writers such as
    anndata's and mudata's choose their format by it)."""
    return path.with_name(f".{path.stem}.{tag}-{uuid.uuid4().hex}{path.suffix}")


def _siblings(path: Path, tag: str) -> list[Path]:
    """The existing :func:`_sibling` names of ``path`` with ``tag``."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.{tag}-[0-9a-f]{{32}}{re.escape(path.suffix)}")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def is_sibling(candidate: Path, path: Path, tag: str) -> bool:
    """Whether ``candidate`` is a :func:`_sibling` name of ``path`` with ``tag`` (checked before deleting it)."""
    return candidate.parent == path.parent and candidate in _siblings(path, tag)


def real_path(path: str | PathLike) -> Path:
    """``path`` with symlinks resolved: a folder that is a link to elsewhere is replaced there."""
    return Path(os.path.realpath(path))


def remove(path: Path) -> None:
    """Delete a file, link or folder tree if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


# --- flushing to disk -----------------------------------------------------------------------
def fsync_file(path: Path) -> None:
    """Flush a finished file's data to disk (its writer has closed it; the pages are the inode's)."""
    fd = os.open(path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the OS allows."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems cannot sync a folder; their renames are not made durable
        if err.errno not in _UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, deepest first."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                fsync_file(path)
        fsync_dir(Path(root))


# --- putting a finished folder in place -------------------------------------------------------
@cache
def _renameat2():
    """glibc's ``renameat2`` (2.28 and later), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False (and nothing changed) where the OS or file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def publish(new: Path, target: Path, *, overwrite: bool) -> None:
    """Put the finished folder ``new`` under ``target``'s name; a folder it displaces is deleted last.

    ``target`` must not hold files unless ``overwrite``; an empty folder there is kept and
    filled (it may be a mount point, or someone's working folder).
    """
    fsync_tree(new)
    displaced = _put_in_place(new, target, overwrite)
    fsync_dir(target.parent)
    if displaced is not None:
        _discard(displaced, target)


def _put_in_place(new: Path, target: Path, overwrite: bool) -> Path | None:
    """Move ``new`` to ``target``; return where the displaced old folder now is, if any."""
    if not os.path.lexists(target):
        try:
            os.rename(new, target)
            return None
        except OSError as err:  # the name was taken meanwhile
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if target.is_dir() and not any(target.iterdir()):
        for entry in new.iterdir():
            os.rename(entry, target / entry.name)
        return new
    if not overwrite:
        raise FileExistsError(f"'{target}' was filled by someone else meanwhile; the new result stays in '{new}'.")
    if exchange(new, target):
        return new
    # No one-step exchange here: two renames. A crash between them leaves the old folder at
    # `aside` and none at `target`; recover() puts it back.
    aside = _sibling(target, "old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    return aside


def _discard(displaced: Path, target: Path) -> None:
    """Delete a displaced folder under a name that says it is garbage, so a crash midway misleads no one."""
    trash = _sibling(target, "trash")
    os.rename(displaced, trash)
    remove(trash)


def recover(target: Path) -> None:
    """Repair what a writer of ``target`` that died while replacing it left (call while holding its claim).

    An old folder set aside is put back if the name holds nothing (the new one never
    arrived) and deleted otherwise (the new one did); half-deleted garbage is removed.
    """
    olds = _siblings(target, "old")
    if olds and not os.path.lexists(target):
        os.rename(olds[-1], target)
        say(f"'{target}' was missing after a run stopped while replacing it; the previous version is back in place.")
        olds = olds[:-1]
    for path in olds + _siblings(target, "trash"):
        remove(path)


# --- the context managers ---------------------------------------------------------------------
@contextmanager
def atomic_file(path: str | PathLike) -> Iterator[Path]:
    """Yield a unique temporary path to write; it replaces ``path`` when the block ends without error.

    Concurrent writers of one path each write their own temporary; the last to finish wins,
    and no reader ever sees a partly written file under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"Nothing was written for '{path}': the writer made no file at '{tmp}'.")
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        remove(tmp)


@contextmanager
def atomic_dir(path: str | PathLike, overwrite: bool = False, *, create: bool = True) -> Iterator[Path]:
    """Yield a temporary folder to fill; it becomes ``path`` when the block ends without error.

    The path is claimed for the block: a second writer at the same time gets
    :class:`~spatial_mg._claim.PathInUseError` naming the first. An existing ``path``
    raises ``FileExistsError`` unless ``overwrite``; then the new folder takes its place in
    one step, after it is complete, and the old one is deleted last. ``create=False`` yields
    the temporary name without making the folder, for writers that insist on making it
    themselves (``SpatialData.write``).
    """
    target = real_path(path)
    tmp = _sibling(target, "tmp")
    with Claim(target, staging=tmp) as claim:
        _drop_unfinished(claim, target)
        recover(target)
        if os.path.lexists(target) and not overwrite:
            raise FileExistsError(
                f"'{path}' already exists; pass overwrite=True to replace it, or choose another path."
            )
        if create:
            tmp.mkdir()
        try:
            yield tmp
            if not tmp.is_dir():
                raise FileNotFoundError(f"Nothing was written for '{path}': the writer made no folder at '{tmp}'.")
            publish(tmp, target, overwrite=overwrite)
        finally:
            remove(tmp)


def _drop_unfinished(claim: Claim, target: Path) -> None:
    """Delete the half-written temporary of a writer of ``target`` that died (its claim was stale)."""
    if claim.previous is None:
        return
    staging = Path(claim.previous.get("staging", ""))
    if is_sibling(staging, target, "tmp"):
        remove(staging)
