"""Small checks shared by the stages; each raises an error that says what to do."""

from __future__ import annotations

from os import PathLike
from pathlib import Path


def existing_file(path: str | PathLike, what: str) -> Path:
    """Return ``path`` as a Path, or raise a FileNotFoundError naming ``what`` it should be."""
    p = Path(path)
    if not p.is_file():
        hint = " (it is a folder)" if p.is_dir() else ""
        raise FileNotFoundError(f"{what} not found: '{p}'{hint}. Check the path and that the file was copied completely.")
    return p


def existing_dir(path: str | PathLike, what: str) -> Path:
    """Return ``path`` as a Path, or raise a FileNotFoundError naming ``what`` it should be."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} not found: '{p}' is not a folder. Check the path.")
    return p
