"""Per-feature agreement of a prediction with the truth: Pearson and Spearman correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata


def _matrix(x, layer: str | None) -> np.ndarray:
    if hasattr(x, "X"):
        x = x.layers[layer] if layer is not None else x.X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a cells x features matrix, got shape {x.shape}")
    return x.astype(np.float64)


def _aligned(pred, truth, layer):
    if hasattr(pred, "var_names") and hasattr(truth, "var_names"):
        missing = pred.var_names.difference(truth.var_names)
        if len(missing):
            raise KeyError(f"{len(missing)} predicted feature(s) are not in the truth, e.g. {list(missing[:5])}")
        missing = pred.obs_names.difference(truth.obs_names)
        if len(missing):
            raise KeyError(f"{len(missing)} predicted cell(s) are not in the truth, e.g. {list(missing[:5])}")
        truth = truth[pred.obs_names, pred.var_names]
        names = list(pred.var_names)
    else:
        names = list(pred.var_names) if hasattr(pred, "var_names") else None
    p, t = _matrix(pred, None), _matrix(truth, layer)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    return p, t, names if names is not None else [str(i) for i in range(p.shape[1])]


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    denom = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / denom
    # a constant column has no correlation: NaN, not a division artefact
    return np.where(denom > 0, r, np.nan)


def feature_correlation(pred, truth, layer: str | None = None) -> pd.DataFrame:
    """Pearson and Spearman correlation between predicted and true values, per feature.

    Parameters
    ----------
    pred
        Prediction: AnnData (e.g. from ``PoEVAE.predict``) or array, cells x features.
    truth
        Truth, AnnData or array. With two AnnData, truth is aligned to the prediction's
        cells and features by name (missing ones are an error).
    layer
        Layer of ``truth`` to compare with (default ``X``).

    Returns
    -------
    DataFrame indexed by feature with columns ``pearson`` and ``spearman``; NaN for a
    feature that is constant in either input. Cells where either value is NaN are left
    out of that feature's correlations.
    """
    p, t, names = _aligned(pred, truth, layer)
    ok = np.isfinite(p) & np.isfinite(t)
    if ok.all():
        pearson = _columnwise_pearson(p, t)
        spearman = _columnwise_pearson(rankdata(p, axis=0), rankdata(t, axis=0))
    else:
        pearson, spearman = np.full(p.shape[1], np.nan), np.full(p.shape[1], np.nan)
        for j in range(p.shape[1]):
            a, b = p[ok[:, j], j : j + 1], t[ok[:, j], j : j + 1]
            if a.shape[0] > 1:
                pearson[j] = _columnwise_pearson(a, b)[0]
                spearman[j] = _columnwise_pearson(rankdata(a, axis=0), rankdata(b, axis=0))[0]
    return pd.DataFrame({"pearson": pearson, "spearman": spearman}, index=pd.Index(names, name="feature"))
