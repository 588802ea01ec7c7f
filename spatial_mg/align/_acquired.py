"""Which raster pixels the MSI acquired at all.

An operator often draws the acquisition region smaller than the tissue, and many exports
fill the raster's bounding rectangle with empty spectra where nothing was acquired. Those
pixels are not background (the MSI did not look there): counted as measured, they would
make the MSI say "no tissue here" where the tissue simply was not measured, and the pose
search would push the tissue away from them. An acquired pixel always has signal in its
whole spectrum (matrix peaks at least), so a pixel whose whole-spectrum TIC
(``obs["tic"]``, as the readers store it) is 0 was not acquired; without ``obs["tic"]``, a
pixel with no signal in any feature.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import RAW_LAYER

TIC_KEY = "tic"


def acquired_pixels(msi: ad.AnnData) -> tuple[np.ndarray, str]:
    """Boolean mask of the pixels the MSI acquired, and the rule in words (module notes).

    Where every pixel would count as empty (a TIC column of zeros, no intensities at
    all), nothing can be told and every pixel counts as acquired.
    """
    n = msi.n_obs
    everything = np.ones(n, dtype=bool)
    if TIC_KEY in msi.obs:
        tic = pd.to_numeric(msi.obs[TIC_KEY], errors="coerce").to_numpy(np.float64)
        empty = tic == 0  # NaN: unknown, counted as acquired
        source = f"obs[{TIC_KEY!r}] = 0"
    else:
        x = msi.layers.get(RAW_LAYER, msi.X)
        if x is None or msi.n_vars == 0:
            return everything, "all pixels (no intensities to tell)"
        empty = (x.getnnz(axis=1) == 0) if sp.issparse(x) else ~np.any(np.asarray(x) != 0, axis=1)
        empty = np.asarray(empty).ravel()
        source = "every feature 0"
    if empty.all() or not empty.any():
        return everything, "all pixels"
    return ~empty, f"{int(empty.sum())} of {n} pixels not acquired ({source}) left out"
