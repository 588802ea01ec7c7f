"""Write AnnData as a spaceranger ``outs/`` folder (10x HDF5 matrix, spatial/ positions, scale factors, images)."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._atomic import atomic_dir
from .._constants import SPATIAL_KEY, VISIUM_SCALEFACTOR_SPOT_DIAMETER_UM

_POSITION_COLUMNS = ["in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
_LOWRES_MAX_PX = 600  # spaceranger's tissue_lowres_image.png is 600 px on its long side
_HIRES_MAX_PX = 2000
# 10x fiducial frame dots are drawn ~1.6 times the spot circle (ratio measured on real scalefactors files)
_FIDUCIAL_TO_SPOT = 1.6154


def write_visium(
    adata: ad.AnnData,
    path: str | PathLike,
    *,
    um_per_px: float,
    capture_area: pd.DataFrame | None = None,
    lowres_image: np.ndarray | None = None,
    hires_image: np.ndarray | None = None,
    fullres_shape: tuple[int, int] | None = None,
    genome: str = "mm10",
    library_id: str | None = None,
    spatial_key: str = SPATIAL_KEY,
    overwrite: bool = False,
) -> Path:
    """Write in-tissue spots as the spaceranger ``outs/`` folder that :func:`spatial_mg.io.read_visium` reads.

    Parameters
    ----------
    adata
        Spots x genes with raw integer counts in ``X``, barcodes as ``obs_names``,
        ``obs["array_row"]``, ``obs["array_col"]`` and ``obsm[spatial_key]`` in micrometres
        (x, y). Optional ``var["gene_ids"]``, ``var["feature_types"]``.
    path
        The ``outs`` folder to create (written atomically).
    um_per_px
        Micrometres per full-resolution image pixel: pixel = round(um / um_per_px).
    capture_area
        Every spot of the capture area, indexed by barcode, with columns ``in_tissue``,
        ``array_row``, ``array_col``, ``pxl_row_in_fullres``, ``pxl_col_in_fullres``; its
        in-tissue barcodes must be exactly ``adata.obs_names``. Default: only ``adata``'s spots.
    lowres_image, hires_image
        RGB ``uint8`` images of the whole full-resolution frame, written as
        ``tissue_lowres_image.png`` / ``tissue_hires_image.png``; their scale factors come
        from their size relative to ``fullres_shape``.
    fullres_shape
        ``(height, width)`` of the full-resolution image in pixels; default: the spots'
        extent plus a margin.
    genome
        Written to ``features/genome`` unless ``var["genome"]`` exists.
    library_id
        Stored in the HDF5 attributes; default: the name of ``path``'s parent folder.
    spatial_key
        Key of the micrometre coordinates in ``obsm``.
    overwrite
        Replace an existing ``path``.

    Returns
    -------
    The ``outs`` folder.
    """
    path = Path(path)
    pixels = _spot_pixels(adata, um_per_px, spatial_key)
    positions = _positions_table(adata, pixels, capture_area)
    if fullres_shape is None:
        extent = positions[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy().max(axis=0)
        fullres_shape = tuple(int(v) for v in np.ceil(extent * 1.05 + 1))
    spot_px = VISIUM_SCALEFACTOR_SPOT_DIAMETER_UM / um_per_px
    scalefactors = {
        "spot_diameter_fullres": spot_px,
        "tissue_hires_scalef": _scalef(hires_image, fullres_shape, _HIRES_MAX_PX),
        "fiducial_diameter_fullres": spot_px * _FIDUCIAL_TO_SPOT,
        "tissue_lowres_scalef": _scalef(lowres_image, fullres_shape, _LOWRES_MAX_PX),
    }
    library_id = library_id or path.parent.name or "synthetic"

    with atomic_dir(path, overwrite=overwrite) as tmp:
        _write_10x_h5(adata, tmp / "filtered_feature_bc_matrix.h5", genome, library_id)
        spatial = tmp / "spatial"
        spatial.mkdir()
        positions.to_csv(spatial / "tissue_positions_list.csv", header=False, index=True)
        positions.rename_axis("barcode").to_csv(spatial / "tissue_positions.csv", header=True, index=True)
        (spatial / "scalefactors_json.json").write_text(json.dumps(scalefactors, indent=2))
        for name, image in (("lowres", lowres_image), ("hires", hires_image)):
            if image is not None:
                _write_png(image, spatial / f"tissue_{name}_image.png")
    return path


def _spot_pixels(adata: ad.AnnData, um_per_px: float, spatial_key: str) -> np.ndarray:
    """Integer (row, col) full-resolution pixels of each spot, as spaceranger stores them."""
    if not (np.isfinite(um_per_px) and um_per_px > 0):
        raise ValueError(f"um_per_px must be a positive number of micrometres per pixel, got {um_per_px}.")
    if spatial_key not in adata.obsm:
        raise KeyError(f"adata.obsm['{spatial_key}'] (spot centres in micrometres) is missing.")
    for col in ("array_row", "array_col"):
        if col not in adata.obs:
            raise KeyError(f"adata.obs['{col}'] (Visium array coordinates) is missing.")
    xy = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    if xy.min() < 0:
        raise ValueError(f"obsm['{spatial_key}'] has negative coordinates; image pixels start at 0.")
    return np.rint(xy[:, ::-1] / um_per_px).astype(np.int64)


def _positions_table(adata: ad.AnnData, pixels: np.ndarray, capture_area: pd.DataFrame | None) -> pd.DataFrame:
    if not adata.obs_names.is_unique:
        raise ValueError("adata.obs_names (barcodes) must be unique.")
    own = pd.DataFrame(
        {
            "in_tissue": 1,
            "array_row": adata.obs["array_row"].to_numpy(np.int64),
            "array_col": adata.obs["array_col"].to_numpy(np.int64),
            "pxl_row_in_fullres": pixels[:, 0],
            "pxl_col_in_fullres": pixels[:, 1],
        },
        index=adata.obs_names,
    )
    if capture_area is None:
        return own
    missing = [c for c in _POSITION_COLUMNS if c not in capture_area.columns]
    if missing:
        raise KeyError(f"capture_area lacks column(s) {missing}.")
    table = capture_area[_POSITION_COLUMNS].astype(np.int64)
    in_tissue = table.index[table["in_tissue"] == 1]
    if not (len(in_tissue) == adata.n_obs and in_tissue.isin(adata.obs_names).all()):
        raise ValueError("The in-tissue barcodes of capture_area must be exactly adata.obs_names.")
    off = np.abs(table.loc[adata.obs_names].to_numpy() - own.to_numpy()).max()
    if off > 1:
        raise ValueError(
            f"capture_area disagrees with adata by {off} (array or pixel units) for some spot; "
            "build both from the same positions and um_per_px."
        )
    return table.rename_axis(None)


def _scalef(image: np.ndarray | None, fullres_shape: tuple[int, int], max_px: int) -> float:
    if image is None:  # no image written: the factor spaceranger would have used
        return max_px / max(fullres_shape)
    return image.shape[0] / fullres_shape[0]


def _write_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"Images must be uint8 grayscale or RGB arrays, got {image.dtype} with shape {image.shape}.")
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def _write_10x_h5(adata: ad.AnnData, path: Path, genome: str, library_id: str) -> None:
    """The 10x HDF5 v3 layout: a CSC genes x barcodes matrix, i.e. the CSR of spots x genes."""
    x = sp.csr_matrix(adata.X)
    if x.nnz and (x.data.min() < 0 or not np.array_equal(x.data, np.round(x.data))):
        raise ValueError("adata.X must hold raw non-negative integer counts to be written as a 10x matrix.")
    x = x.astype(np.int32)
    x.eliminate_zeros()
    x.sort_indices()
    n_genes = adata.n_vars
    names = adata.var_names.to_numpy(str)
    ids = adata.var["gene_ids"].to_numpy(str) if "gene_ids" in adata.var else names
    types = adata.var["feature_types"].to_numpy(str) if "feature_types" in adata.var else np.full(n_genes, "Gene Expression")
    genomes = adata.var["genome"].to_numpy(str) if "genome" in adata.var else np.full(n_genes, genome)

    def strings(values: np.ndarray) -> np.ndarray:
        return np.char.encode(np.asarray(values, dtype=str), "ascii")  # fixed-length bytes, as 10x writes them

    gz = {"compression": "gzip", "compression_opts": 4}
    with h5py.File(path, "w") as f:
        f.attrs["filetype"] = "matrix"
        f.attrs["version"] = 2
        f.attrs["library_ids"] = strings(np.array([library_id]))
        f.attrs["original_gem_groups"] = np.array([1], dtype=np.int64)
        f.attrs["chemistry_description"] = "Spatial 3' v1"
        f.attrs["software_version"] = "spatial_mg synthetic (spaceranger-compatible)"
        m = f.create_group("matrix")
        m.create_dataset("barcodes", data=strings(adata.obs_names.to_numpy(str)), **gz)
        m.create_dataset("data", data=x.data, **gz)
        m.create_dataset("indices", data=x.indices.astype(np.int64), **gz)
        m.create_dataset("indptr", data=x.indptr.astype(np.int64), **gz)
        m.create_dataset("shape", data=np.array([n_genes, adata.n_obs], dtype=np.int32))
        feat = m.create_group("features")
        feat.create_dataset("_all_tag_keys", data=strings(np.array(["genome"])))
        feat.create_dataset("feature_type", data=strings(types), **gz)
        feat.create_dataset("genome", data=strings(genomes), **gz)
        feat.create_dataset("id", data=strings(ids), **gz)
        feat.create_dataset("name", data=strings(names), **gz)
