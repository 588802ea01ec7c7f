"""Spatial autocorrelation of feature maps (Moran's I), through squidpy."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY


def morans_i(
    adata: ad.AnnData,
    features: list[str] | None = None,
    *,
    layer: str | None = None,
    n_neighbors: int = 6,
    spatial_key: str = SPATIAL_KEY,
) -> pd.Series:
    """Moran's I of each feature over a k-nearest-neighbour graph of the spots.

    Parameters
    ----------
    adata
        Spots (or pixels) x features, coordinates in ``obsm[spatial_key]``. Not modified.
    features
        Features to score; all by default.
    layer
        Read values from this layer instead of ``X``.
    n_neighbors
        Neighbours per spot (6 is the Visium hexagonal ring).

    Returns
    -------
    Moran's I per feature (index = feature names): near 1 for smooth maps, near 0 for noise.
    A map that is constant gets NaN.
    """
    import squidpy as sq  # heavy; imported on use

    if spatial_key not in adata.obsm:
        raise KeyError(f"No obsm['{spatial_key}'] with coordinates; Moran's I needs spot positions.")
    features = list(adata.var_names if features is None else features)
    missing = [f for f in features if f not in adata.var_names]
    if missing:
        raise KeyError(f"Features not in the data: {missing[:5]}.")
    values = adata[:, features].layers[layer] if layer else adata[:, features].X
    values = np.asarray(values.toarray() if hasattr(values, "toarray") else values, dtype=np.float64)
    work = ad.AnnData(X=values, obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=features))
    work.obsm[spatial_key] = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    sq.gr.spatial_neighbors_knn(work, spatial_key=spatial_key, n_neighs=n_neighbors)
    table = sq.gr.spatial_autocorr(work, mode="moran", n_perms=None, copy=True, show_progress_bar=False)
    out = table["I"].reindex(features).astype(float)
    out[np.ptp(values, axis=0) == 0] = np.nan  # squidpy warns and returns NaN too; make it explicit
    out.name = "morans_i"
    return out
