"""An output folder that never overwrites finished results unless told to, and writes atomically."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import pandas as pd

from .._atomic import atomic_file


class OutputFolder:
    """Where a run writes its results.

    A folder that already holds results (any file) is refused unless ``overwrite``; each
    file appears complete under its final name or not at all, so an interrupted run leaves
    every finished file intact and no half-written one.
    """

    def __init__(self, path: str | PathLike, *, overwrite: bool = False, marker: str = "metrics.json"):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"Output path '{self.path}' is a file; give a folder.")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise FileExistsError(
                f"Output folder '{self.path}' already holds results. Choose another folder, or pass "
                "--overwrite (overwrite=True) to replace them."
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.marker = marker

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, payload: dict) -> Path:
        with atomic_file(self.file(name)) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
        return self.file(name)

    def write_text(self, name: str, text: str) -> Path:
        with atomic_file(self.file(name)) as tmp:
            tmp.write_text(text)
        return self.file(name)

    def write_csv(self, name: str, table: pd.DataFrame) -> Path:
        with atomic_file(self.file(name)) as tmp:
            table.to_csv(tmp)
        return self.file(name)

    def save_figure(self, name: str, fig) -> Path:
        import matplotlib.pyplot as plt

        with atomic_file(self.file(name)) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(name).suffix.lstrip(".") or "png")
        plt.close(fig)
        return self.file(name)

    def write_h5ad(self, name: str, adata) -> Path:
        with atomic_file(self.file(name)) as tmp:
            adata.write_h5ad(tmp.with_suffix(".h5ad"))
            tmp.with_suffix(".h5ad").replace(tmp)
        return self.file(name)


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
