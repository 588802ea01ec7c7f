"""Score predicted metabolite maps against measured ones: per feature, flattened, per method."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from .._constants import SECTION_KEY, SPATIAL_KEY


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)


def evaluate_prediction(pred: ad.AnnData, truth: ad.AnnData) -> tuple[dict[str, float], pd.DataFrame]:
    """Median per-metabolite Pearson and Spearman, and the flattened (all values) ones.

    Parameters
    ----------
    pred
        Predicted maps (spots x metabolites), e.g. from :func:`predict_section`.
    truth
        Measured maps on the same scale: the ``"msi"`` modality of the section's pairs.
        Spots are matched by name; only shared spots count.

    Returns
    -------
    The figures (``median_pearson``, ``median_spearman``, ``flat_pearson``,
    ``flat_spearman``, ``n_spots``, ``n_metabolites``) and a per-metabolite table
    (``pearson``, ``spearman``, and the measured map's ``morans_i_measured`` and ``mz``
    where the truth has coordinates and m/z).

    Notes
    -----
    A metabolite predicted as one constant value (the per-metabolite mean baseline) has no
    defined correlation; it scores 0 here, what a map without any pattern is worth, so that
    medians compare methods instead of turning NaN.
    """
    from ..metrics import feature_correlation

    _check_same_section(pred, truth)
    common = pred.obs_names.intersection(truth.obs_names)
    if len(common) == 0:
        raise ValueError("No spot of the prediction is in the measured data: are they the same section?")
    pred, truth = pred[common], truth[common]
    table = feature_correlation(pred, truth)
    values = _dense(pred[:, list(table.index)].X)
    flat = np.ptp(values, axis=0) == 0
    table.loc[flat, ["pearson", "spearman"]] = table.loc[flat, ["pearson", "spearman"]].fillna(0.0)
    measured = _dense(truth[:, list(table.index)].X).ravel()
    figures = {
        "median_pearson": float(np.nanmedian(table["pearson"])),
        "median_spearman": float(np.nanmedian(table["spearman"])),
        "flat_pearson": float(pearsonr(values.ravel(), measured)[0]),
        "flat_spearman": float(spearmanr(values.ravel(), measured)[0]),
        "n_spots": int(len(common)),
        "n_metabolites": int(table.shape[0]),
    }
    return figures, table.join(measured_map_columns(truth, table.index))


def _check_same_section(pred: ad.AnnData, truth: ad.AnnData) -> None:
    """Barcodes repeat between Visium slides, so matching spots by name alone can pair two
    different sections; where both sides name their section, the names must agree."""
    if SECTION_KEY in pred.obs and SECTION_KEY in truth.obs:
        mine, theirs = set(map(str, pred.obs[SECTION_KEY].unique())), set(map(str, truth.obs[SECTION_KEY].unique()))
        if not mine & theirs:
            raise ValueError(
                f"The prediction is of section(s) {sorted(mine)} but the measured data are of {sorted(theirs)}: "
                "score a prediction against the same section's measurements (or name them alike: --name / name=)."
            )


def score_methods(predictions: dict[str, ad.AnnData], truth: ad.AnnData) -> tuple[dict, pd.DataFrame]:
    """:func:`evaluate_prediction` for each method; figures by method and one table of all
    (``<method>_pearson``, ``<method>_spearman``, then the measured maps' columns)."""
    figures, columns = {}, {}
    for method, pred in predictions.items():
        figures[method], table = evaluate_prediction(pred, truth)
        columns[f"{method}_pearson"] = table["pearson"]
        columns[f"{method}_spearman"] = table["spearman"]
    combined = pd.DataFrame(columns)
    return figures, measured_map_columns(truth, combined.index).join(combined)


def measured_map_columns(truth: ad.AnnData, features: pd.Index) -> pd.DataFrame:
    """Per metabolite of the measured maps: spatial structure (Moran's I) and m/z, where known."""
    from ..metrics import morans_i

    out = pd.DataFrame(index=features)
    if SPATIAL_KEY in truth.obsm:
        out["morans_i_measured"] = morans_i(truth).reindex(features)
    if "mz" in truth.var:
        out["mz"] = truth.var["mz"].reindex(features)
    return out
