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


def predictions_spatialdata(pred: ad.AnnData, radius_um: float = VISIUM_SPOT_RADIUS_UM, *, section=None):
    """SpatialData with the spots as circles, the predictions (mean, std layer) as their table, and the H&E.

    Parameters
    ----------
    pred
        Predictions (:func:`predict_section`), ``obsm["spatial"]`` in micrometres.
    radius_um
        Radius of the spot circles.
    section
        The spots the predictions are of (AnnData or SpatialData, e.g. ``Section.rna``):
        their H&E image is stored as ``"he_image"``, scaled into micrometres. Default: the
        image ``pred`` carries, if any.

    Returns
    -------
    ``SpatialData`` with shapes ``"spots"``, table ``"table"`` and, where there is one, the
    image ``"he_image"``, all in the coordinate system ``"global"`` (micrometres).
    """
    import spatialdata as sd
    from spatialdata.transformations import Identity

    from .._constants import HE_IMAGE, PRED_SPOTS, PRED_TABLE
    from ..align import GLOBAL, annotating_table, circles
    from ..io._he_image import he_image_of
    from ..io._spatialdata import as_anndata

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
    he = he_image_of(pred if section is None else as_anndata(section, "rna"))
    return sd.SpatialData(
        images={} if he is None else {HE_IMAGE: he.to_element()},
        shapes={PRED_SPOTS: circles(xy, radius_um, {GLOBAL: Identity()})},
        tables={PRED_TABLE: annotating_table(table, PRED_SPOTS)},
    )
