"""Metabolite maps: truth | prediction | uncertainty, side by side with a shared colour scale, over the H&E."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY, STD_LAYER, UNS_KEY, VISIUM_SPOT_DIAMETER_UM


def metabolite_maps(
    pred,
    truth=None,
    features: list[str] | None = None,
    *,
    std_layer: str = STD_LAYER,
    spatial_key: str = SPATIAL_KEY,
    spot_diameter_um: float | None = None,
    cmap: str = "viridis",
    std_cmap: str = "magma",
    table_key: str = "table",
    img: bool = True,
    img_from=None,
    scalebar: bool = True,
    panel_size: float = 3.2,
    save: str | None = None,
):
    """Draw each feature as a row: true map, predicted map (same colour scale), predictive std.

    Rows are labelled by m/z where ``pred.var["mz"]`` records it (:meth:`PoEVAE.predict`
    carries it from training), else by the feature's name.

    Parameters
    ----------
    pred
        AnnData of predictions, spots x features, coordinates in ``obsm[spatial_key]``
        (micrometres) and the std in ``layers[std_layer]``; or a SpatialData holding them as
        ``table_key`` (any table of spatial_mg's stores: drawn where its shapes lie in
        ``"global"``, e.g. ``table_key="msi_table"`` for the registered MSI pixels).
    truth
        Measured values with the same spots and features (AnnData, or SpatialData with
        ``table_key``); its column is left out when ``None``.
    features
        Features to draw (rows); by default up to six, in the prediction's order.
    spot_diameter_um
        Drawn spot diameter; the reader's recorded spot size, else 55 um (Visium).
    table_key
        The table to draw when ``pred`` (or ``truth``) is a SpatialData.
    img
        Draw the section's H&E image under each panel: the one ``img_from`` or ``pred``
        carries (``uns["spatial"]``, or the store's ``"he_image"``), if any.
    img_from
        The section (AnnData or SpatialData) whose H&E to draw, when ``pred`` carries none
        (a prediction of :meth:`spatial_mg.PoEVAE.predict` does not).
    scalebar
        Draw a scale bar (micrometres) in the first panel.
    save
        Write the figure to this path (PNG, PDF, ...) as well.

    Returns
    -------
    The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from ..io._he_image import he_image_of
    from ..io._spatialdata import as_anndata
    from ._image import draw_he, scale_bar

    pred = _as_anndata(pred, table_key)
    truth = None if truth is None else _as_anndata(truth, table_key)
    he = he_image_of(pred if img_from is None else as_anndata(img_from, "rna")) if img else None
    features = list(pred.var_names[:6] if features is None else features)
    _check(pred, features, spatial_key, "prediction")
    if truth is not None:
        _check(truth, features, spatial_key, "truth")
        truth = truth[pred.obs_names]
    has_std = std_layer in pred.layers
    columns = (["measured"] if truth is not None else []) + ["predicted"] + (["std"] if has_std else [])
    diameter = spot_diameter_um or 2 * pred.uns.get(UNS_KEY, {}).get("spot_radius_um", VISIUM_SPOT_DIAMETER_UM / 2)

    fig, axes = plt.subplots(
        len(features), len(columns), figsize=(panel_size * len(columns), panel_size * len(features)), squeeze=False
    )
    xy = np.asarray(pred.obsm[spatial_key], dtype=float)
    for row, feature in enumerate(features):
        values = {"predicted": _column(pred, feature)}
        if truth is not None:
            values["measured"] = _column(truth, feature)
        if has_std:
            values["std"] = _column(pred, feature, std_layer)
        shared = np.concatenate([values[c] for c in values if c != "std"])
        vmin, vmax = np.nanpercentile(shared, [1, 99])
        for col, name in enumerate(columns):
            ax = axes[row, col]
            scale = (None, None) if name == "std" else (vmin, vmax)
            art = _spots(ax, xy, values[name], diameter, std_cmap if name == "std" else cmap, scale)
            draw_he(ax, he)
            fig.colorbar(art, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(f"{feature_label(pred, feature)}\n{name}" if col == 0 else name, fontsize=9)
    if scalebar:
        scale_bar(axes[0, 0])
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=120)
    return fig


def feature_label(adata: ad.AnnData, feature: str) -> str:
    """A feature as a person reads it: ``m/z 146.0459`` where ``var["mz"]`` records its m/z
    (predictions carry it from training), else its name."""
    if "mz" in adata.var:
        mz = pd.to_numeric(adata.var["mz"], errors="coerce").get(feature)
        if mz is not None and np.isfinite(mz):
            return f"m/z {mz:.4f}"
    return str(feature)


def _spots(ax, xy: np.ndarray, values: np.ndarray, diameter: float, cmap: str, scale):
    """Circles of the true spot size, in data units, so the map reads like the tissue."""
    from matplotlib.collections import EllipseCollection

    sizes = np.full(len(xy), diameter)
    art = EllipseCollection(
        sizes, sizes, np.zeros(len(xy)), units="xy", offsets=xy, offset_transform=ax.transData, cmap=cmap
    )
    art.set_array(values)
    art.set_clim(*scale)
    ax.add_collection(art)
    pad = diameter
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
    ax.set_ylim(xy[:, 1].max() + pad, xy[:, 1].min() - pad)  # image convention: y grows downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return art


def _as_anndata(obj, table_key: str) -> ad.AnnData:
    from ..io._spatialdata import is_spatialdata, table_in_global

    if isinstance(obj, ad.AnnData):
        return obj
    if is_spatialdata(obj):
        return table_in_global(obj, table_key)
    raise TypeError(f"Expected AnnData or a SpatialData with table '{table_key}', got {type(obj).__name__}.")


def _check(adata: ad.AnnData, features: list[str], spatial_key: str, what: str) -> None:
    if spatial_key not in adata.obsm:
        raise KeyError(f"The {what} has no obsm['{spatial_key}'] coordinates to draw.")
    missing = [f for f in features if f not in adata.var_names]
    if missing:
        raise KeyError(f"Features {missing[:5]} are not in the {what}.")


def _column(adata: ad.AnnData, feature: str, layer: str | None = None) -> np.ndarray:
    x = adata[:, feature].layers[layer] if layer else adata[:, feature].X
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float).ravel()
