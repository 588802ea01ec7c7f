"""Read one section: its Visium outs (or SpatialData) and, where measured, its MSI, into AnnData in micrometres."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from .._constants import SECTION_KEY, UNS_KEY
from ..io import SectionFiles

if TYPE_CHECKING:  # pragma: no cover
    from spatialdata import SpatialData

MSI_SUFFIXES = {".imzml": "imzML", ".csv": "SMA csv", ".tsv": "SMA csv", ".txt": "SMA csv"}


@dataclass(frozen=True)
class Section:
    """One section in memory, and (once aligned) its registration and pairs.

    Attributes
    ----------
    name
        The section's identity; also ``obs["section"]`` of its spots and pairs.
    rna
        Spots x genes, raw counts, ``obsm["spatial"]`` in micrometres.
    msi
        MSI pixels x m/z, ``obsm["spatial"]`` in micrometres; ``None`` for an RNA-only section.
    registration
        :class:`spatial_mg.align.RegistrationResult`, once :func:`align_section` ran.
    pairs
        MuData ``{"rna", "msi"}``, one row per paired spot, once :func:`align_section` ran.
    """

    name: str
    rna: ad.AnnData
    msi: ad.AnnData | None = None
    registration: object | None = None
    pairs: md.MuData | None = None


def read_section(
    visium: SectionFiles | str | PathLike | SpatialData,
    msi: str | PathLike | SpatialData | None = None,
    *,
    name: str | None = None,
    mz_bins=None,
    ppm: float = 10.0,
    bin_width: float | None = None,
    pixel_size_um: float | None = None,
    normalize: str | None = None,
) -> Section:
    """Read a section's spots (spaceranger outs, or SpatialData) and, if given, its MSI.

    Parameters
    ----------
    visium
        The spaceranger ``outs/`` folder; a :class:`spatial_mg.io.SectionFiles` (what
        :func:`spatial_mg.datasets.sma_sections` returns), which names the MSI file too; or
        the section's SpatialData, in memory or as a ``.zarr`` store (what
        ``spatialdata_io.visium`` returns, or a store of :func:`spatial_mg.align.to_spatialdata`;
        see :func:`spatial_mg.io.section_from_spatialdata`).
    msi
        An ``.imzML`` file (its ``.ibd`` beside it), an SMA ``.csv`` export, or a SpatialData
        (in memory or ``.zarr``) holding the MSI pixels as ``"msi_table"``; ``None``: the
        section has RNA only.
    name
        The section's identity; default the folder holding ``outs/`` (``S1/outs`` -> ``S1``),
        or for a SpatialData the library it records (spatialdata-io: its ``dataset_id``).
    mz_bins, ppm, bin_width
        imzML only: the peak list (m/z values) to bin around with a tolerance of ``ppm``, or
        uniform bins of ``bin_width`` (see :func:`spatial_mg.io.read_imzml`).
    pixel_size_um
        MSI raster step in micrometres: required for a csv export (it records none),
        overrides the imzML's own; not for a SpatialData (its table records it).
    normalize
        ``None``, ``"tic"`` or ``"rms"``: divide each MSI pixel by its total ion count or
        the root mean square of its spectrum (see :func:`spatial_mg.io.read_imzml`).

    Returns
    -------
    :class:`Section` with ``rna`` and ``msi``; both carry ``obs["section"]``.
    """
    from ..io import read_visium, section_from_spatialdata

    acquisition = {}  # the MSI's matrix and polarity, where the files' source records them
    if isinstance(visium, SectionFiles):
        if msi is not None or name is not None:
            raise ValueError("read_section got a SectionFiles, which names its MSI file and section already: drop msi= and name=.")
        acquisition = visium.msi_acquisition()
        visium, msi, name = visium.visium, visium.msi, visium.name
    stored = _spatialdata(visium)
    if stored is not None:
        rna = section_from_spatialdata(stored)
        name = name or rna.uns[UNS_KEY]["library_id"]
    else:
        visium = Path(visium)
        rna = read_visium(visium)
        name = name or visium.resolve().parent.name
    rna.obs[SECTION_KEY] = pd.Categorical([name] * rna.n_obs)
    msi_data = None if msi is None else _read_msi(
        msi, mz_bins=mz_bins, ppm=ppm, bin_width=bin_width, pixel_size_um=pixel_size_um, normalize=normalize
    )
    if msi_data is not None:
        msi_data.obs[SECTION_KEY] = pd.Categorical([name] * msi_data.n_obs)
        msi_data.uns[UNS_KEY] = {**msi_data.uns.get(UNS_KEY, {}), **acquisition}
    return Section(name, rna, msi_data)


def _spatialdata(source) -> SpatialData | None:
    """``source`` as SpatialData if it is one, or a zarr store of one; else ``None`` (a file or folder to read)."""
    from ..io._spatialdata import is_spatialdata

    if is_spatialdata(source):
        return source
    path = Path(source)
    if not (path.suffix == ".zarr" or (path / "zarr.json").is_file() or (path / ".zgroup").is_file()):
        return None
    import spatialdata as sd

    from .._validation import existing_dir

    path = existing_dir(path, "SpatialData zarr store")
    try:
        return sd.read_zarr(path)
    except Exception as err:  # zarr and spatialdata raise many types for a foreign or damaged store
        raise ValueError(
            f"'{path}' cannot be read as a SpatialData zarr store ({type(err).__name__}: {err}); give a store written "
            "by SpatialData.write (spatialdata_io.visium(...).write, or spatial-mg align's spatialdata.zarr)."
        ) from err


def _read_msi(msi, *, mz_bins, ppm: float, bin_width: float | None, pixel_size_um: float | None, normalize=None) -> ad.AnnData:
    """The MSI pixels from an imzML file, an SMA csv export or a SpatialData."""
    from ..io import msi_from_spatialdata, read_imzml, read_sma_csv

    stored = _spatialdata(msi)
    if stored is not None:
        if pixel_size_um is not None or normalize is not None:
            raise ValueError(
                "pixel_size_um and normalize are for imzML and csv files: a SpatialData's MSI table holds "
                "micrometres, records its pixel size and is read as stored. Drop them."
            )
        return msi_from_spatialdata(stored)
    msi = Path(msi)
    kind = MSI_SUFFIXES.get(msi.suffix.lower())
    if kind == "imzML":
        return read_imzml(msi, mz_bins=mz_bins, ppm=ppm, bin_width=bin_width, pixel_size_um=pixel_size_um, normalize=normalize)
    if kind == "SMA csv":
        return read_sma_csv(msi, pixel_size_um=pixel_size_um, normalize=normalize)
    raise ValueError(
        f"'{msi}' is neither an .imzML file, an SMA .csv export nor a SpatialData .zarr store; give one of those as the MSI file."
    )


def read_peak_list(path: str | PathLike) -> np.ndarray:
    """m/z values of a peak list: a csv with an ``mz`` column (or the first column), or a text file of numbers."""
    from .._validation import existing_file

    path = existing_file(path, "peak list")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"Peak list '{path}' is empty or not a csv ({err}); give a csv with an 'mz' column.") from err
    column = "mz" if "mz" in table.columns else table.columns[0]
    values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy()
    if column != "mz":  # a headerless list: its first value became the column name
        first = pd.to_numeric(pd.Series([column]), errors="coerce").dropna().to_numpy()
        values = np.concatenate([first, values])
    if values.size == 0:
        raise ValueError(f"Peak list '{path}' holds no m/z values; give a csv with an 'mz' column.")
    return values
