"""``to_spatialdata``: spots, MSI pixels, the H&E and MSI images and the registration in one SpatialData.

Everything lands in one coordinate system, ``"global"``, in STR micrometres. The spots
are stored as they are (circles with their radius, identity transform), the H&E image
with the scaling of its pixels into micrometres; the MSI pixels (squares) and the MSI
image stay in the MSI's own frame and carry the registration as a spatialdata ``Affine``
into ``"global"`` - transformations are data, so the raw MSI geometry is kept and the
registration can be swapped. The MSI frame itself is kept as the coordinate system ``"msi"``.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import (
    GLOBAL_FRAME,
    HE_IMAGE,
    INSTANCE_KEY,
    MSI_FRAME,
    MSI_IMAGE,
    MSI_PIXELS,
    MSI_TABLE,
    REGION_KEY,
    RNA_SPOTS,
    RNA_TABLE,
    UNS_KEY,
)
from ..io._he_image import he_image_of, spatial_without_images
from ..io._spatialdata import as_anndata
from ._inputs import spot_radius
from ._pose import Pose
from ._procrustes import fit_affine
from ._result import RegistrationResult

GLOBAL = GLOBAL_FRAME  # STR micrometres
SPOTS, PIXELS, IMAGE = RNA_SPOTS, MSI_PIXELS, MSI_IMAGE
_MAX_IMAGE_PIXELS = 50_000_000  # grid cells x channels beyond which no image is drawn


def to_spatialdata(
    rna: ad.AnnData,
    msi: ad.AnnData,
    reg: RegistrationResult,
    *,
    pixels_as: str = "squares",
    image: bool | None = None,
    he_image: bool = True,
    spot_radius_um: float | None = None,
):
    """Build a SpatialData object with both modalities registered into micrometres.

    Parameters
    ----------
    rna
        Spots (``obsm["spatial"]`` in STR micrometres; the H&E image, if any, in
        ``uns["spatial"]`` as :func:`spatial_mg.io.read_visium` keeps it), or their SpatialData.
    msi
        MSI pixels x m/z (``obsm["spatial"]`` in MSI micrometres; integer ``obs["x"]``,
        ``obs["y"]`` for the image), or a SpatialData holding them.
    reg
        The registration from :func:`register`.
    pixels_as
        ``"squares"`` (polygons the size of a pixel) or ``"circles"`` (inscribed circles:
        lighter for large rasters).
    image
        Also store the MSI as an image with one channel per m/z (needs the grid columns);
        default: when it has at most 50 million values.
    he_image
        Store the section's H&E image (hires, else lowres) as ``"he_image"``, 8-bit, scaled
        into micrometres, when ``rna`` carries one.
    spot_radius_um
        Spot radius; default: recorded by the reader, else Visium's 27.5 um.

    Returns
    -------
    ``SpatialData`` with shapes ``"rna_spots"`` and ``"msi_pixels"``, optionally the images
    ``"msi_image"`` and ``"he_image"``, and tables ``"rna_table"`` / ``"msi_table"``
    annotating them; the registration is the ``Affine`` from the MSI elements to
    ``"global"``. Pixel centres of ``"msi_image"`` and ``"msi_pixels"`` coincide. It writes to
    zarr with ``sdata.write(path)`` and reads back with ``spatialdata.read_zarr``.
    """
    import geopandas as gpd
    import spatialdata as sd
    from shapely import box
    from spatialdata.models import Image2DModel, ShapesModel
    from spatialdata.transformations import Identity

    if pixels_as not in ("squares", "circles"):
        raise ValueError(f"pixels_as must be 'squares' or 'circles', got {pixels_as!r}.")
    rna, msi = as_anndata(rna, "rna", load_images=he_image), as_anndata(msi, "msi")
    reg.check_pair(rna, msi)
    msi_um = reg.msi_um(msi)
    rna_um = reg.rna_um(rna)
    radius = spot_radius(rna, spot_radius_um)
    msi_transforms = {GLOBAL: reg.pose.to_spatialdata(), MSI_FRAME: Identity()}

    spots = circles(rna_um, radius, {GLOBAL: Identity()})
    half = reg.msi_pixel_size_um / 2
    if pixels_as == "squares":
        geometry = box(msi_um[:, 0] - half, msi_um[:, 1] - half, msi_um[:, 0] + half, msi_um[:, 1] + half)
        pixels = ShapesModel.parse(
            gpd.GeoDataFrame(geometry=geometry, index=pd.RangeIndex(msi.n_obs)), transformations=msi_transforms
        )
    else:
        pixels = circles(msi_um, half, msi_transforms)

    rna_table = annotating_table(rna, SPOTS)
    msi_table = annotating_table(msi, PIXELS)
    if reg.msi_tissue is not None:
        msi_table.obs["on_tissue"] = np.asarray(reg.msi_tissue, dtype=bool)
    msi_table.uns["registration"] = reg.to_json()

    images = {}
    he = he_image_of(rna) if he_image else None
    if he is not None:
        images[HE_IMAGE] = he.to_element()
    has_grid = "x" in msi.obs and "y" in msi.obs
    if image is None:
        image = has_grid and _grid_size(msi) * max(msi.n_vars, 1) <= _MAX_IMAGE_PIXELS
    if image:
        if not has_grid:
            raise ValueError("image=True needs integer grid columns msi.obs['x'] and msi.obs['y'].")
        array, x0, y0 = _raster(msi)
        # image pixel (col, row) spans [col, col + 1] x [row, row + 1] (spatialdata's convention),
        # its centre is grid cell (x0 + col, y0 + row) -> MSI um (as obsm["spatial"] relates to
        # the grid: usually grid * pixel size) -> global
        grid = msi.obs[["x", "y"]].to_numpy(np.float64)
        to_msi = fit_affine(grid, msi_um) @ Pose.similarity(shift=(x0 - 0.5, y0 - 0.5))
        images[IMAGE] = Image2DModel.parse(
            array,
            dims=("c", "y", "x"),
            c_coords=[str(v) for v in msi.var_names],
            transformations={MSI_FRAME: to_msi.to_spatialdata(), GLOBAL: (reg.pose @ to_msi).to_spatialdata()},
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return sd.SpatialData(
            images=images,
            shapes={SPOTS: spots, PIXELS: pixels},
            tables={RNA_TABLE: rna_table, MSI_TABLE: msi_table},
        )


def circles(xy: np.ndarray, radius: float, transformations: dict):
    """Points of one radius (um) as spatialdata circles, row ``i`` with index ``i``."""
    import geopandas as gpd
    from spatialdata.models import ShapesModel

    frame = gpd.GeoDataFrame(
        {"radius": np.full(len(xy), float(radius))},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        index=pd.RangeIndex(len(xy)),
    )
    return ShapesModel.parse(frame, transformations=transformations)


def annotating_table(adata: ad.AnnData, region: str) -> ad.AnnData:
    """A copy of ``adata`` annotating the shapes ``region`` row by row (obs names kept; images
    in ``uns["spatial"]`` left out, ``uns["spatial_mg"]`` as JSON text)."""
    from spatialdata.models import TableModel

    table = adata.copy()
    table.obs[REGION_KEY] = pd.Categorical([region] * table.n_obs)
    table.obs[INSTANCE_KEY] = np.arange(table.n_obs)
    if "spatial" in table.uns:  # the H&E is an image element of the store, not a copy in each table
        table.uns["spatial"] = spatial_without_images(table.uns["spatial"])
    # zarr cannot hold everything AnnData's uns can; keep the provenance as JSON text
    if UNS_KEY in table.uns:
        import json

        table.uns[UNS_KEY] = json.dumps(table.uns[UNS_KEY], default=str)
    return TableModel.parse(table, region=region, region_key=REGION_KEY, instance_key=INSTANCE_KEY)


def _grid_size(msi: ad.AnnData) -> int:
    x, y = msi.obs["x"].to_numpy(), msi.obs["y"].to_numpy()
    return int((np.ptp(x) + 1) * (np.ptp(y) + 1))


def _raster(msi: ad.AnnData) -> tuple[np.ndarray, int, int]:
    """m/z channels x grid rows x grid columns; grid cells without a pixel are NaN."""
    x = msi.obs["x"].to_numpy(np.int64)
    y = msi.obs["y"].to_numpy(np.int64)
    x0, y0 = int(x.min()), int(y.min())
    values = msi.X.toarray() if sp.issparse(msi.X) else np.asarray(msi.X)
    out = np.full((max(msi.n_vars, 1), int(np.ptp(y)) + 1, int(np.ptp(x)) + 1), np.nan, dtype=np.float32)
    if msi.n_vars:
        out[:, y - y0, x - x0] = values.T
    return out, x0, y0
