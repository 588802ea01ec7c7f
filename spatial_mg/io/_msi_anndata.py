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
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    raw = np.asarray(intensities, dtype=np.float32)
    if tic is None:
        tic = raw.sum(axis=1, dtype=np.float64)
    if rms is None:
        rms = np.sqrt(np.mean(raw.astype(np.float64) ** 2, axis=1)) if raw.shape[1] else np.zeros(len(raw))

    if obs_names is None:
        obs_names = pd.Index([f"px_{a}_{b}" for a, b in zip(x, y, strict=True)])
    if not obs_names.is_unique:
        raise ValueError(f"Duplicate pixel positions in {provenance.get('source')}; each (x, y) must appear once.")
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
        matrix = (raw * per_pixel[:, None]).astype(np.float32)
        layers[RAW_LAYER] = raw
        uns["normalization_scale"] = scale
        uns["n_empty_pixels"] = int((~positive).sum())

    adata = ad.AnnData(X=matrix, obs=obs, var=var.copy(), layers=layers)
    adata.obsm[SPATIAL_KEY] = np.column_stack([x * pixel_size_um[0], y * pixel_size_um[1]]).astype(np.float64)
    adata.uns[UNS_KEY] = uns
    return adata
