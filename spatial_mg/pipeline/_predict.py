"""Predict a section's metabolites from its RNA alone, and hold the maps as SpatialData."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY, VISIUM_SPOT_RADIUS_UM
from ._sections import Section


def predict_section(model, section: Section | ad.AnnData, *, target: str = "msi", return_std: bool = True) -> ad.AnnData:
    """The posterior-predictive mean (and std) of ``target`` for every spot of an RNA-only section.

    Parameters
    ----------
    model
        A trained :class:`spatial_mg.PoEVAE`.
    section
        A :class:`Section` (its ``rna``) or the spots' AnnData (raw counts).
    target
        The modality to predict.
    return_std
        Add the predictive standard deviation as ``layers["std"]``.

    Returns
    -------
    AnnData, spots x target features: the mean in ``X`` (on the scale trained on: log1p
    intensities for pairs from :func:`align_section`), the std in ``layers["std"]``, the
    spots' micrometres in ``obsm["spatial"]``.
    """
    rna = section.rna if isinstance(section, Section) else section
    return model.predict(rna, target=target, return_std=return_std)


def predictions_spatialdata(pred: ad.AnnData, radius_um: float = VISIUM_SPOT_RADIUS_UM):
    """SpatialData with the spots as circles and the predictions (mean, std layer) as their table."""
    import spatialdata as sd
    from spatialdata.transformations import Identity

    from ..align import GLOBAL, annotating_table, circles

    if SPATIAL_KEY not in pred.obsm:
        raise KeyError(f"The predictions have no obsm[{SPATIAL_KEY!r}]: predict from spots that carry their micrometres.")
    xy = np.asarray(pred.obsm[SPATIAL_KEY], dtype=np.float64)
    table = ad.AnnData(
        X=np.asarray(pred.X),
        obs=pd.DataFrame(index=pred.obs_names),
        var=pred.var.copy(),
        layers={k: np.asarray(v) for k, v in pred.layers.items()},
    )
    table.obsm[SPATIAL_KEY] = xy
    return sd.SpatialData(
        shapes={"spots": circles(xy, radius_um, {GLOBAL: Identity()})},
        tables={"table": annotating_table(table, "spots")},
    )
