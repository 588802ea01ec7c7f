"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Write into a temporary sibling (same folder, so the final rename never crosses file
systems), then ``os.replace``; on any error the temporary is removed and an existing
target is left untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path


def _sibling(path: Path, tag: str) -> Path:
    """A hidden, unique name beside ``path`` that keeps its suffix (writers such as
    anndata's and mudata's choose their format by it)."""
    return path.with_name(f".{path.stem}.{tag}-{uuid.uuid4().hex}{path.suffix}")


@contextmanager
def atomic_file(path: str | PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | PathLike, overwrite: bool = False, *, create: bool = True) -> Iterator[Path]:
    """Yield a temporary folder to fill; it becomes ``path`` when the block ends without error.

    An existing ``path`` raises ``FileExistsError`` unless ``overwrite``; then it is swapped
    out only after the new folder is complete, and deleted last. ``create=False`` yields
    the temporary name without making the folder, for writers that insist on making it
    themselves (``SpatialData.write``).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' already exists; pass overwrite=True to replace it, or choose another path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    if create:
        tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():
            old = _sibling(path, "old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
