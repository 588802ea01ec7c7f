"""An output folder that never overwrites finished results unless told to, and writes atomically."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import pandas as pd

from .._atomic import atomic_dir, atomic_file
from .._json import jsonable


class OutputFolder:
    """Where a run writes its results.

    A folder that already holds results (any file) is refused unless ``overwrite``; each
    result appears complete under its final name or not at all, so an interrupted run
    leaves every finished file intact and no half-written one.
    """

    def __init__(self, path: str | PathLike, *, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"Output path '{self.path}' is a file; give a folder.")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise FileExistsError(
                f"Output folder '{self.path}' already holds results. Choose another folder, or pass "
                "--overwrite (overwrite=True) to replace them."
            )
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, payload: dict) -> Path:
        return self.write_text(name, json.dumps(jsonable(payload), indent=2) + "\n")

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

        fig = getattr(fig, "figure", fig)  # an Axes draws into its figure
        with atomic_file(self.file(name)) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return self.file(name)

    def write_h5ad(self, name: str, adata) -> Path:
        with atomic_file(self.file(name)) as tmp:  # the temporary keeps the .h5ad suffix
            adata.write_h5ad(tmp)
        return self.file(name)

    def write_h5mu(self, name: str, mdata) -> Path:
        with atomic_file(self.file(name)) as tmp:
            mdata.write(tmp)
        return self.file(name)

    def write_spatialdata(self, name: str, sdata) -> Path:
        """``sdata`` as a zarr store at ``name`` itself (``spatialdata.read_zarr`` reads it back)."""
        with atomic_dir(self.file(name), overwrite=True, create=False) as tmp:
            sdata.write(tmp)
        return self.file(name)
