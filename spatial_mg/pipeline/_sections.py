"""Read one section: its Visium outs and, where measured, its MSI, into AnnData in micrometres."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from .._constants import SECTION_KEY
from ..io import SectionFiles

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
    visium: SectionFiles | str | PathLike,
    msi: str | PathLike | None = None,
    *,
    name: str | None = None,
    mz_bins=None,
    ppm: float = 10.0,
    bin_width: float | None = None,
    pixel_size_um: float | None = None,
    normalize: str | None = None,
) -> Section:
    """Read a section's spaceranger outs and, if given, its imzML or SMA csv export.

    Parameters
    ----------
    visium
        The spaceranger ``outs/`` folder, or a :class:`spatial_mg.io.SectionFiles` (what
        :func:`spatial_mg.datasets.sma_sections` returns), which names the MSI file too.
    msi
        An ``.imzML`` file (its ``.ibd`` beside it) or an SMA ``.csv`` export; ``None``: the
        section has RNA only.
    name
        The section's identity; default the folder holding ``outs/`` (``S1/outs`` -> ``S1``).
    mz_bins, ppm, bin_width
        imzML only: the peak list (m/z values) to bin around with a tolerance of ``ppm``, or
        uniform bins of ``bin_width`` (see :func:`spatial_mg.io.read_imzml`).
    pixel_size_um
        MSI raster step in micrometres: required for a csv export (it records none),
        overrides the imzML's own.
    normalize
        ``None``, ``"tic"`` or ``"rms"``: divide each MSI pixel by its total ion count or
        the root mean square of its spectrum (see :func:`spatial_mg.io.read_imzml`).

    Returns
    -------
    :class:`Section` with ``rna`` and ``msi``; both carry ``obs["section"]``.
    """
    from ..io import read_imzml, read_sma_csv, read_visium

    if isinstance(visium, SectionFiles):
        if msi is not None or name is not None:
            raise ValueError("read_section got a SectionFiles, which names its MSI file and section already: drop msi= and name=.")
        files = visium
    else:
        visium = Path(visium)
        files = SectionFiles(name or visium.resolve().parent.name, visium, msi)
    rna = read_visium(files.visium)
    rna.obs[SECTION_KEY] = pd.Categorical([files.name] * rna.n_obs)
    msi_data = None
    if files.msi is not None:
        kind = MSI_SUFFIXES.get(files.msi.suffix.lower())
        if kind == "imzML":
            msi_data = read_imzml(
                files.msi, mz_bins=mz_bins, ppm=ppm, bin_width=bin_width, pixel_size_um=pixel_size_um, normalize=normalize
            )
        elif kind == "SMA csv":
            msi_data = read_sma_csv(files.msi, pixel_size_um=pixel_size_um, normalize=normalize)
        else:
            raise ValueError(
                f"'{files.msi}' is neither an .imzML file nor an SMA .csv export; give one of those as the MSI file."
            )
        msi_data.obs[SECTION_KEY] = pd.Categorical([files.name] * msi_data.n_obs)
    return Section(files.name, rna, msi_data)


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
