"""Score predicted metabolite maps against measured ones: per feature, flattened, per method."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr


def summarise(pred: ad.AnnData, truth: ad.AnnData) -> tuple[dict[str, float], pd.DataFrame]:
    """Median per-feature Pearson/Spearman and the flattened (all values) ones, plus the table.

    A feature predicted as one constant value (the per-metabolite mean baseline) has no
    defined correlation; it scores 0 here, what a map without any pattern is worth, so that
    medians compare methods instead of turning NaN.
    """
    from ..metrics import feature_correlation

    table = feature_correlation(pred, truth)
    values = pred[:, list(table.index)].X
    values = np.asarray(values.toarray() if hasattr(values, "toarray") else values, dtype=float)
    flat = np.ptp(values, axis=0) == 0
    table.loc[flat, ["pearson", "spearman"]] = table.loc[flat, ["pearson", "spearman"]].fillna(0.0)
    truth = truth[pred.obs_names, list(table.index)]
    p = values.ravel()
    t = np.asarray(truth.X.toarray() if hasattr(truth.X, "toarray") else truth.X, dtype=float).ravel()
    figures = {
        "median_pearson": float(np.nanmedian(table["pearson"])),
        "median_spearman": float(np.nanmedian(table["spearman"])),
        "flat_pearson": float(pearsonr(p, t)[0]),
        "flat_spearman": float(spearmanr(p, t)[0]),
    }
    return figures, table


def score_methods(predictions: dict[str, ad.AnnData], truth: ad.AnnData) -> tuple[dict, pd.DataFrame]:
    """``summarise`` each method; returns figures by method and a per-feature table of all."""
    figures, columns = {}, {}
    for method, pred in predictions.items():
        figures[method], table = summarise(pred, truth)
        columns[f"{method}_pearson"] = table["pearson"]
        columns[f"{method}_spearman"] = table["spearman"]
    return figures, pd.DataFrame(columns)
