"""Write MSI intensities as the SMA protocol's csv export: ``x``, ``y``, then one column per m/z."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._atomic import atomic_file


def write_sma_csv(
    path: str | PathLike,
    coords: np.ndarray,
    intensities: np.ndarray | sp.spmatrix,
    mzs: np.ndarray,
    *,
    mz_labels: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a pixels x m/z table that :func:`spatial_mg.io.read_sma_csv` reads back.

    Parameters
    ----------
    path
        The csv file to create (written atomically).
    coords
        Integer grid positions ``(n, 2)`` as ``(x, y)``; the same numbers as the imzML
        pixels, so one pixel size maps both to micrometres.
    intensities
        Pixels x m/z matrix.
    mzs
        The m/z of each column.
    mz_labels
        Column names; default ``f"{mz:.4f}"``, as SCiLS-style exports name them.
    overwrite
        Replace an existing file.

    Returns
    -------
    The csv path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' already exists; pass overwrite=True to replace it.")
    coords = np.asarray(coords)
    mzs = np.asarray(mzs, dtype=np.float64).ravel()
    values = intensities.toarray() if sp.issparse(intensities) else np.asarray(intensities)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.integer):
        raise ValueError("coords must be an (n, 2) integer array of (x, y) grid positions.")
    if values.shape != (len(coords), mzs.size):
        raise ValueError(f"intensities must be (n_pixels, n_mz) = ({len(coords)}, {mzs.size}), got {values.shape}.")
    labels = [f"{mz:.4f}" for mz in mzs] if mz_labels is None else [str(v) for v in mz_labels]
    if len(set(labels)) != len(labels) or len(labels) != mzs.size:
        raise ValueError("m/z column labels must be unique, one per m/z; pass more precise mz_labels.")
    table = pd.DataFrame(values, columns=labels)
    table.insert(0, "y", coords[:, 1])
    table.insert(0, "x", coords[:, 0])
    # 9 significant digits round-trip float32 exactly
    fmt = "%.9g" if values.dtype == np.float32 else "%.17g"
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, float_format=fmt)
    return path
