"""How well each feature is predicted against how spatially structured its measured map is."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def correlation_vs_morans_i(correlation, morans_i: pd.Series, *, label: str = "prediction", ax=None):
    """Scatter of each feature's prediction correlation against the Moran's I of its measured map.

    Parameters
    ----------
    correlation
        Per feature: a Series, or the table of :func:`spatial_mg.metrics.feature_correlation`
        (its ``"pearson"`` column is used).
    morans_i
        Per feature Moran's I of the measured map (:func:`spatial_mg.metrics.morans_i`).
    label
        Name of the prediction, for the axis label.
    ax
        Axes to draw on (a new figure when None).

    Returns
    -------
    The matplotlib Axes; the title gives Spearman's rho over the features both share.
    """
    import matplotlib.pyplot as plt

    r = correlation["pearson"] if isinstance(correlation, pd.DataFrame) else pd.Series(correlation)
    both = pd.concat({"r": r, "i": pd.Series(morans_i)}, axis=1, join="inner").dropna()
    if both.empty:
        raise ValueError("the correlations and Moran's I share no feature: are they of the same metabolites?")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(both["i"], both["r"], s=14)
    ax.set_xlabel("Moran's I of the measured map")
    ax.set_ylabel(f"Pearson, {label}")
    rho = spearmanr(both["i"], both["r"])[0] if len(both) > 2 else np.nan
    ax.set_title(f"predictability vs spatial structure (rho {rho:.2f}, {len(both)} features)")
    return ax
