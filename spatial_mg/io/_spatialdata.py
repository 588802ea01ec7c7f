"""Sections from SpatialData: what ``spatialdata_io.visium`` returns, and the stores spatial_mg writes.

Every function that takes a section's AnnData takes its SpatialData too (as squidpy's do):
:func:`as_anndata` turns one into the AnnData that :func:`read_visium` (spots) or
:func:`read_imzml` (MSI pixels) would give, so that what follows sees one kind of input.
"""

from __future__ import annotations

import json
import sys

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import (
    GLOBAL_FRAME,
    HE_IMAGE,
    MSI_TABLE,
    RNA_TABLE,
    SPATIAL_KEY,
    UNS_KEY,
    VISIUM_SPOT_DIAMETER_UM,
    VISIUM_SPOT_RADIUS_UM,
)
from ._counts import check_counts
from ._he_image import he_image_from_element, put_he_image
from ._read_visium import micrometres_per_pixel

_ARRAY_COLUMNS = ("array_row", "array_col")
# image elements that hold an H&E, by the end of their name (spatialdata_io.visium: "<id>_hires_image")
_IMAGE_SUFFIXES = {HE_IMAGE: "hires", "hires_image": "hires", "lowres_image": "lowres"}


def is_spatialdata(obj) -> bool:
    """Whether ``obj`` is a ``SpatialData`` (without importing spatialdata: none exists before it is)."""
    module = sys.modules.get("spatialdata")
    return module is not None and isinstance(obj, module.SpatialData)


def as_anndata(data, what: str, *, load_images: bool = True) -> ad.AnnData:
    """``data`` itself if it is AnnData; a SpatialData's spots (``what="rna"``) or MSI pixels (``"msi"``) as AnnData.

    Parameters
    ----------
    data
        AnnData or SpatialData.
    what
        ``"rna"``: :func:`section_from_spatialdata`; ``"msi"``: :func:`msi_from_spatialdata`.
    load_images
        ``"rna"``: also keep the H&E image (the registration itself does not need it).
    """
    if isinstance(data, ad.AnnData):
        return data
    if is_spatialdata(data):
        if what == "rna":
            return section_from_spatialdata(data, load_images=load_images)
        return msi_from_spatialdata(data)
    raise TypeError(
        f"{what} must be an AnnData or a SpatialData, got {type(data).__name__}. Read a section with "
        "spatial_mg.io.read_visium / read_imzml, or spatialdata_io.visium."
    )


def section_from_spatialdata(
    sdata,
    table_key: str | None = None,
    *,
    coordinate_system: str | None = None,
    in_tissue_only: bool = True,
    library_id: str | None = None,
    load_images: bool = True,
) -> ad.AnnData:
    """A section's spots, from a SpatialData, as the AnnData :func:`read_visium` returns.

    Parameters
    ----------
    sdata
        What ``spatialdata_io.visium`` returns (spots in full-resolution pixels), or a
        store of :func:`spatial_mg.align.to_spatialdata` (spots in micrometres).
    table_key
        The table of the spots; default: ``"rna_table"`` in a spatial_mg store, else the one
        table with ``obs["array_row"]`` and ``obs["array_col"]``.
    coordinate_system
        Where the spots' pixels are read (Visium tables only); default: the one the spot
        circles are stored in (identity transformation), ``"<dataset_id>"`` for spatialdata-io.
    in_tissue_only
        Keep only the spots with ``obs["in_tissue"] == 1`` (where that column exists).
    library_id
        Key under ``uns["spatial"]``; default: the one the table records, else its region.
    load_images
        Keep the H&E image (``"<id>_hires_image"``, else ``"<id>_lowres_image"``; spatial_mg
        stores: ``"he_image"``) in ``uns["spatial"]``; the full-resolution image is not read.

    Returns
    -------
    AnnData, spots x genes: raw counts in ``X`` (CSR int32), ``obsm["spatial"]`` in
    micrometres, ``uns["spatial"][library_id]`` with the image and scale factors for
    micrometres, and ``uns["spatial_mg"]`` saying how the micrometres were found.

    Notes
    -----
    A Visium table's micrometres come as :func:`read_visium`'s do: a fit of the spots'
    pixel positions on the ideal array grid (neighbouring spots 100 um apart) gives
    micrometres per pixel, here over the table's spots rather than every spot the
    positions file lists, which real runs put within a micrometre of each other. A store
    of spatial_mg already holds micrometres: they are kept.
    """
    key, table = _find_table(sdata, table_key, _is_spot_table, RNA_TABLE, "a section's spots", _SPOTS_NEEDED)
    meta = _provenance(table)
    shapes_name, shapes = _annotated_shapes(sdata, table, key)
    if meta.get("units") == "um":
        adata = _stripped_copy(table)
        adata.uns[UNS_KEY] = meta
        frame, to_um = _identity_frame(shapes, shapes_name), np.eye(3)
    else:
        adata, frame, to_um = _visium_in_micrometres(table, key, shapes, shapes_name, coordinate_system)
    library = library_id or _library_of(table, shapes_name)
    adata.uns[UNS_KEY] = {**adata.uns[UNS_KEY], "library_id": library}
    adata.X = check_counts(adata.X, f"table {key!r} of the SpatialData")
    if "feature_types" in adata.var and (adata.var["feature_types"] != "Gene Expression").any():
        adata = adata[:, (adata.var["feature_types"] == "Gene Expression").to_numpy()].copy()  # as read_visium
    if in_tissue_only and "in_tissue" in adata.obs:
        adata = adata[adata.obs["in_tissue"].to_numpy() == 1].copy()
        if adata.n_obs == 0:
            raise ValueError(f"No spot of table {key!r} is in tissue (obs['in_tissue']); pass in_tissue_only=False to keep all.")
    if load_images and frame is not None:
        for name, resolution in _he_images(sdata, frame):
            image = he_image_from_element(sdata.images[name], to_um @ _affine(sdata.images[name], frame), name, resolution)
            if image is not None:
                put_he_image(adata, image, library)
    return adata


def msi_from_spatialdata(sdata, table_key: str | None = None) -> ad.AnnData:
    """The MSI pixels of a SpatialData (``"msi_table"`` of a spatial_mg store) as :func:`read_imzml`'s AnnData.

    The table must hold ``obsm["spatial"]`` in micrometres and record the pixel size in
    ``uns["spatial_mg"]["pixel_size_um"]`` (as the tables spatial_mg writes do); its
    coordinates are the MSI's own, before any registration.
    """
    _, table = _find_table(sdata, table_key, _is_msi_table, MSI_TABLE, "MSI pixels", _MSI_NEEDED)
    adata = _stripped_copy(table)
    adata.uns[UNS_KEY] = _provenance(table)
    return adata


def table_in_global(sdata, table_key: str) -> ad.AnnData:
    """A table of a SpatialData with ``obsm["spatial"]`` where its shapes lie in ``"global"`` (micrometres).

    For drawing: the spots, the registered MSI pixels or predicted maps, each row where
    its shape lies, ``uns["spatial_mg"]["spot_radius_um"]`` the shapes' size and the
    store's ``"he_image"`` in ``uns["spatial"]``. A table whose shapes are not in
    ``"global"`` (spatialdata_io's Visium table) is read as :func:`section_from_spatialdata`.
    """
    if table_key not in sdata.tables:
        raise KeyError(f"The SpatialData has no table {table_key!r}; its tables: {sorted(sdata.tables)}. Pass table_key=<one of them>.")
    table = sdata.tables[table_key]
    shapes_name, shapes = _annotated_shapes(sdata, table, table_key)
    from spatialdata.transformations import get_transformation

    if GLOBAL_FRAME not in get_transformation(shapes, get_all=True):
        return section_from_spatialdata(sdata, table_key)
    to_global = _affine(shapes, GLOBAL_FRAME)
    centres, size = _shape_centres(shapes.loc[table.obs[_instance_key(table)].to_numpy()])
    adata = _stripped_copy(table)
    adata.obsm[SPATIAL_KEY] = centres @ to_global[:2, :2].T + to_global[:2, 2]
    meta = _provenance(table)
    adata.uns[UNS_KEY] = {**meta, "spot_radius_um": size / 2 * np.sqrt(abs(np.linalg.det(to_global[:2, :2])))}
    for name, resolution in _he_images(sdata, GLOBAL_FRAME):
        image = he_image_from_element(sdata.images[name], _affine(sdata.images[name], GLOBAL_FRAME), name, resolution)
        if image is not None:
            put_he_image(adata, image, meta.get("library_id") or shapes_name)
    return adata


# --- finding the table and its shapes ---------------------------------------------------------

_SPOTS_NEEDED = (
    "a table annotating the spot circles with obs['array_row'] and obs['array_col'] (as spatialdata_io.visium "
    "writes), or a table with obsm['spatial'] in micrometres recorded in uns['spatial_mg'] (as "
    "spatial_mg.align.to_spatialdata writes 'rna_table')"
)
_MSI_NEEDED = (
    "a table of MSI pixels with obsm['spatial'] in micrometres and the pixel size in "
    "uns['spatial_mg']['pixel_size_um'] (as spatial_mg.align.to_spatialdata writes 'msi_table')"
)


def _find_table(sdata, table_key, fits, ours: str, what: str, needed: str) -> tuple[str, ad.AnnData]:
    tables = dict(sdata.tables)
    if table_key is not None:
        if table_key not in tables:
            raise KeyError(f"The SpatialData has no table {table_key!r}; its tables: {sorted(tables)}.")
        if not fits(tables[table_key]):
            raise ValueError(f"Table {table_key!r} of the SpatialData does not hold {what}: spatial_mg reads {needed}.")
        return table_key, tables[table_key]
    if ours in tables and fits(tables[ours]):
        return ours, tables[ours]
    found = [name for name, table in tables.items() if fits(table)]
    if len(found) == 1:
        return found[0], tables[found[0]]
    if not found:
        raise ValueError(
            f"The SpatialData holds no table of {what} (its tables: {sorted(tables) or 'none'}); spatial_mg reads {needed}."
        )
    raise ValueError(f"Several tables of the SpatialData could hold {what} ({sorted(found)}); choose one with table_key=.")


def _is_spot_table(table: ad.AnnData) -> bool:
    meta = _provenance(table)
    if meta.get("units") == "um":
        return "pixel_size_um" not in meta and SPATIAL_KEY in table.obsm
    return set(_ARRAY_COLUMNS) <= set(table.obs.columns)


def _is_msi_table(table: ad.AnnData) -> bool:
    return "pixel_size_um" in _provenance(table) and SPATIAL_KEY in table.obsm


def _provenance(table: ad.AnnData) -> dict:
    """``uns["spatial_mg"]`` as a dict: spatial_mg's stores keep it as JSON text (zarr cannot hold all of it)."""
    meta = table.uns.get(UNS_KEY, {})
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return {}
    return dict(meta) if isinstance(meta, dict) else {}


def _attrs(table: ad.AnnData) -> dict:
    return table.uns.get("spatialdata_attrs", {})


def _instance_key(table: ad.AnnData) -> str:
    return _attrs(table).get("instance_key", "instance_id")


def _annotated_shapes(sdata, table: ad.AnnData, key: str):
    """The shapes element the table annotates (``None, None`` if it annotates none)."""
    region = _attrs(table).get("region")
    if isinstance(region, (list, tuple, np.ndarray)):
        region = region[0] if len(region) == 1 else None
    if region is None or region not in sdata.shapes:
        return None, None
    return region, sdata.shapes[region]


def _stripped_copy(table: ad.AnnData) -> ad.AnnData:
    """A copy without spatialdata's bookkeeping (which shapes and rows it annotates)."""
    attrs = _attrs(table)
    adata = table.copy()
    drop = [c for c in (attrs.get("region_key"), attrs.get("instance_key")) if c in adata.obs]
    adata.obs = adata.obs.drop(columns=drop)
    adata.uns.pop("spatialdata_attrs", None)
    return adata


def _library_of(table: ad.AnnData, shapes_name: str | None) -> str:
    recorded = _provenance(table).get("library_id")
    if recorded:
        return str(recorded)
    spatial = table.uns.get("spatial")
    if isinstance(spatial, dict) and len(spatial) == 1:
        return str(next(iter(spatial)))
    return shapes_name or "section"


# --- coordinates -------------------------------------------------------------------------------


def _affine(element, frame: str) -> np.ndarray:
    """The element's transformation into ``frame`` as a 3 x 3 matrix on (x, y)."""
    from spatialdata.transformations import get_transformation

    return get_transformation(element, to_coordinate_system=frame).to_affine_matrix(("x", "y"), ("x", "y"))


def _identity_frame(shapes, shapes_name) -> str | None:
    """The coordinate system the shapes are stored in (identity transformation), if any."""
    if shapes is None:
        return None
    from spatialdata.transformations import Identity, get_transformation

    frames = get_transformation(shapes, get_all=True)
    same = [name for name, t in frames.items() if isinstance(t, Identity)]
    return same[0] if same else None


def _shape_centres(shapes) -> tuple[np.ndarray, float]:
    """Centre (x, y) of each shape and their typical diameter (circles: 2 r; polygons: square root of the area)."""
    geometry = shapes.geometry
    if (geometry.geom_type == "Point").all():
        return np.column_stack([geometry.x, geometry.y]), float(2 * np.median(shapes["radius"]))
    centroid = geometry.centroid
    return np.column_stack([centroid.x, centroid.y]), float(np.sqrt(np.median(geometry.area)))


def _visium_in_micrometres(table: ad.AnnData, key: str, shapes, shapes_name, coordinate_system):
    """The spots in micrometres by the array-grid fit, the frame their pixels were read in, and
    the (scaling) matrix from that frame to micrometres."""
    if shapes is None:
        raise ValueError(
            f"Table {key!r} annotates no shapes of the SpatialData (its region: {_attrs(table).get('region')!r}); "
            "the spots' pixel positions are read from the spot circles it annotates."
        )
    frame = coordinate_system or _identity_frame(shapes, shapes_name)
    if frame is None:
        from spatialdata.transformations import get_transformation

        frames = sorted(get_transformation(shapes, get_all=True))
        raise ValueError(f"The spots {shapes_name!r} are in the coordinate systems {frames}: choose one with coordinate_system=.")
    try:
        to_frame = _affine(shapes, frame)
    except Exception as err:  # spatialdata raises KeyError / ValueError for an unknown system
        raise ValueError(f"The spots {shapes_name!r} are not in the coordinate system {frame!r}.") from err
    centres, _ = _shape_centres(shapes.loc[table.obs[_instance_key(table)].to_numpy()])
    pixels = centres @ to_frame[:2, :2].T + to_frame[:2, 2]
    positions = pd.DataFrame(
        {
            "array_row": table.obs["array_row"].to_numpy(),
            "array_col": table.obs["array_col"].to_numpy(),
            "pxl_col_in_fullres": pixels[:, 0],
            "pxl_row_in_fullres": pixels[:, 1],
        },
        index=table.obs_names,
    )
    where = f"the spots of table {key!r} (coordinate system {frame!r})"
    um_per_px, fit = micrometres_per_pixel(
        positions,
        None,
        where=where,
        redo="read the section again (spatialdata_io.visium)",
        diameter_source="spot diameter",
        stacklevel=4,
    )
    adata = _stripped_copy(table)
    adata.obsm[SPATIAL_KEY] = pixels * um_per_px
    spatial = {"scalefactors": {"spot_diameter_fullres": VISIUM_SPOT_DIAMETER_UM}, "metadata": {}}
    adata.uns["spatial"] = {_library_of(table, shapes_name): spatial}
    adata.uns[UNS_KEY] = {
        "reader": "section_from_spatialdata",
        "source": f"SpatialData table {key!r}, coordinate system {frame!r}",
        "units": "um",
        "um_per_fullres_px": um_per_px,
        "um_from": fit,
        "spot_radius_um": VISIUM_SPOT_RADIUS_UM,
        "spot_diameter_um": VISIUM_SPOT_DIAMETER_UM,
    }
    return adata, frame, np.diag([um_per_px, um_per_px, 1.0])


def _he_images(sdata, frame: str) -> list[tuple[str, str]]:
    """(element, resolution) of the H&E images in ``frame``, the finest first."""
    from spatialdata.transformations import get_transformation

    found = []
    for name, element in sdata.images.items():
        suffix = next((s for s in _IMAGE_SUFFIXES if name == s or name.endswith(f"_{s}")), None)
        if suffix is not None and frame in get_transformation(element, get_all=True):
            found.append((name, _IMAGE_SUFFIXES[suffix]))
    return sorted(found, key=lambda item: item[1] != "hires")
