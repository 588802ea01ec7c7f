"""Assemble an MSI AnnData (pixels x m/z) the same way for every MSI reader."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import RAW_LAYER, SPATIAL_KEY, UNS_KEY

NORMALIZATIONS = (None, "tic", "rms")


def msi_anndata(
    intensities: np.ndarray,
    *,
    x: np.ndarray,
    y: np.ndarray,
    pixel_size_um: tuple[float, float],
    var: pd.DataFrame,
    tic: np.ndarray | None = None,
    rms: np.ndarray | None = None,
    normalize: str | None = None,
    provenance: dict,
    obs_names: pd.Index | None = None,
) -> ad.AnnData:
    """Pixels x features AnnData with grid coordinates, micrometres and provenance.

    ``tic`` and ``rms`` are per-pixel totals of the whole spectrum; when not given they
    are taken over the features (all a csv export has).
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
    source = provenance.get("source")
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if len(x) == 0:
        raise ValueError(f"'{source}' holds no pixels; export the section's spectra, not only the header.")
    _check_unique_positions(x, y, obs_names, source)
    with np.errstate(over="ignore"):  # an overflow is reported below, by pixel and feature
        raw = np.asarray(intensities, dtype=np.float32)
    if tic is None:
        tic = raw.sum(axis=1, dtype=np.float64)
    if rms is None:
        rms = np.sqrt(np.mean(raw.astype(np.float64) ** 2, axis=1)) if raw.shape[1] else np.zeros(len(raw))
    _check_finite(raw, x, y, var, source)
    _check_finite_totals({"tic": tic, "rms": rms}, x, y, source)

    if obs_names is None:
        obs_names = pd.Index([f"px_{a}_{b}" for a, b in zip(x, y, strict=True)])
    obs = pd.DataFrame({"x": x, "y": y, "tic": tic, "rms": rms}, index=obs_names)

    uns = {
        **provenance,
        "units": "um",
        "pixel_size_um": [float(pixel_size_um[0]), float(pixel_size_um[1])],
        "normalization": normalize or "none",
    }
    layers = {}
    matrix = raw
    if normalize is not None:
        factor = tic if normalize == "tic" else rms
        positive = factor > 0
        scale = float(np.median(factor[positive])) if positive.any() else 1.0
        # Pixels with an empty spectrum stay zero rather than becoming NaN.
        per_pixel = np.divide(scale, factor, out=np.zeros_like(factor), where=positive)
        with np.errstate(over="ignore"):
            matrix = (raw * per_pixel[:, None]).astype(np.float32)
        _check_finite(matrix, x, y, var, f"{source} ({normalize}-normalised)")
        layers[RAW_LAYER] = raw
        uns["normalization_scale"] = scale
        uns["n_empty_pixels"] = int((~positive).sum())

    adata = ad.AnnData(X=matrix, obs=obs, var=var.copy(), layers=layers)
    adata.obsm[SPATIAL_KEY] = np.column_stack([x * pixel_size_um[0], y * pixel_size_um[1]]).astype(np.float64)
    adata.uns[UNS_KEY] = uns
    return adata


def _check_unique_positions(x: np.ndarray, y: np.ndarray, obs_names: pd.Index | None, source) -> None:
    """Each grid position once, and each pixel name once: two spectra at one position
    (e.g. two acquisitions in one file) would be paired with the same spots."""
    positions = pd.DataFrame({"x": x, "y": y})
    repeated = positions.duplicated(keep=False)
    if repeated.any():
        a, b = positions[repeated].iloc[0]
        n = int(((positions["x"] == a) & (positions["y"] == b)).sum())
        raise ValueError(
            f"Duplicate pixel positions in '{source}': (x={a}, y={b}) appears {n} times "
            f"({int(repeated.sum())} pixels share a position). Each (x, y) must appear once: drop or merge "
            "the repeated pixels (does the file hold several acquisitions?)."
        )
    if obs_names is not None and not obs_names.is_unique:
        dup = obs_names[obs_names.duplicated()].unique()
        raise ValueError(f"Duplicate pixel names in '{source}' (for example {list(dup[:3])}); each pixel id must appear once.")


def first_non_finite(values: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """How many of ``values`` are NaN or infinite, and the index of the first; None if none."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return int(bad.sum()), tuple(int(i) for i in np.argwhere(bad)[0])


def _check_finite(values: np.ndarray, x: np.ndarray, y: np.ndarray, var: pd.DataFrame, source) -> None:
    """Intensities beyond the float32 range (about 3.4e38) become inf when stored; say
    where, rather than hand on a matrix that turns every later sum into inf or NaN."""
    found = first_non_finite(values)
    if found is not None:
        n, (row, col) = found
        raise ValueError(
            f"{n} intensities of '{source}' are infinite or NaN once stored as float32 (first at "
            f"pixel x={x[row]}, y={y[row]}, feature '{var.index[col]}'): values beyond about 3.4e38 overflow. "
            "Rescale the intensities before export (e.g. divide by 1e6), or check the file for corrupt values."
        )


def _check_finite_totals(totals: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, source) -> None:
    """The per-pixel total ion count and root mean square, which normalisation divides by."""
    for name, values in totals.items():
        found = first_non_finite(np.asarray(values, dtype=np.float64))
        if found is not None:
            n, (row,) = found
            raise ValueError(
                f"The {name} of {n} pixels of '{source}' is infinite or NaN (first at pixel x={x[row]}, "
                f"y={y[row]}): their spectra hold intensities too large to sum or square. Rescale the intensities "
                "before export, or check the file for corrupt values."
            )
