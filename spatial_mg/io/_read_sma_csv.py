"""Read the SMA protocol's MSI csv export: ``x``, ``y``, then one column per m/z."""

from __future__ import annotations

from csv import Error as CsvError
from os import PathLike

import anndata as ad
import numpy as np
import pandas as pd

from .._validation import existing_file
from ._msi_anndata import first_non_finite, msi_anndata

# Columns that may carry a pixel name rather than an m/z.
_ID_COLUMNS = ("spot_id", "pixel_id", "id", "barcode")


def read_sma_csv(
    path: str | PathLike,
    pixel_size_um: float | tuple[float, float] | None = None,
    *,
    normalize: str | None = None,
    sep: str | None = None,
) -> ad.AnnData:
    """Read an SMA MSI csv export.

    Parameters
    ----------
    path
        The csv (or tsv) file: integer grid columns ``x`` and ``y``, optionally a pixel id
        column (``spot_id``), and one column per m/z named by its value.
    pixel_size_um
        The raster step in micrometres (a csv records none); required.
    normalize
        ``None``, ``"tic"`` or ``"rms"`` over the exported features (raw kept in ``layers["raw"]``).
    sep
        Field separator; sniffed from the file when ``None``.

    Returns
    -------
    AnnData laid out as :func:`spatial_mg.io.read_imzml` returns it.
    """
    csv = existing_file(path, "SMA MSI csv export")
    if pixel_size_um is None:
        raise ValueError(
            f"'{csv}' records no pixel size: pass pixel_size_um=<micrometres> (the MALDI raster step; "
            "about 100 um for the SMA sections of Vicari et al. 2024)."
        )
    size = (float(pixel_size_um),) * 2 if np.isscalar(pixel_size_um) else tuple(float(v) for v in pixel_size_um)
    if not all(np.isfinite(s) and s > 0 for s in size):
        raise ValueError(f"pixel_size_um must be positive micrometres, got {pixel_size_um}.")

    try:
        table = pd.read_csv(csv, sep=sep, engine="python" if sep is None else "c")
    except (ValueError, CsvError) as err:  # pandas' parser errors and UnicodeDecodeError are ValueErrors
        raise ValueError(
            f"Could not read '{csv}' as a csv table ({type(err).__name__}: {err}). An SMA export is a text table "
            "with columns x, y and one per m/z: check that this is the export and that it was copied completely."
        ) from err
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise ValueError(f"'{csv}' has a header but no pixels (rows); export the section's pixels too.")
    missing = [c for c in ("x", "y") if c not in table.columns]
    if missing:
        raise ValueError(f"'{csv}' has no column(s) {missing}; an SMA export starts with the grid columns x and y.")

    id_col = next((c for c in table.columns if c.lower() in _ID_COLUMNS), None)
    feature_cols = [c for c in table.columns if c not in ("x", "y", id_col)]
    mz = []
    for col in feature_cols:
        try:
            mz.append(float(col))
        except ValueError:
            raise ValueError(
                f"Column '{col}' of '{csv}' is not an m/z value; every column after x and y must be named by its m/z."
            ) from None
    if not feature_cols:
        raise ValueError(f"'{csv}' has no m/z columns.")

    xy = table[["x", "y"]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    # beyond the int32 range a grid position is corrupt (and beyond 2**53 not even an exact integer)
    if not (np.isfinite(xy).all() and np.array_equal(xy, np.round(xy)) and (np.abs(xy) < 2**31).all()):
        raise ValueError(
            f"Columns x and y of '{csv}' must be integer grid positions without gaps (whole numbers below 2**31)."
        )
    values = table[feature_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    found = first_non_finite(values)
    if found is not None:
        n, (row, col) = found
        raise ValueError(
            f"'{csv}' has {n} missing, non-numeric or infinite intensities "
            f"(first at row {row + 2}, column '{feature_cols[col]}'). Fill them (0 for no signal) or drop those pixels."
        )

    mz = np.asarray(mz)
    var = pd.DataFrame({"mz": mz, "mz_min": mz, "mz_max": mz}, index=[f"mz_{v:.4f}" for v in mz])
    if not var.index.is_unique:
        raise ValueError(f"'{csv}' has duplicate m/z columns.")
    names = pd.Index(table[id_col].astype(str)) if id_col else None
    return msi_anndata(
        values,
        x=xy[:, 0].astype(np.int64),
        y=xy[:, 1].astype(np.int64),
        pixel_size_um=size,
        var=var,
        normalize=normalize,
        obs_names=names,
        provenance={"reader": "read_sma_csv", "source": str(csv.resolve())},
    )
