"""Containers of a synthetic Vicari dataset (sections and their truth), and writing them in the real file formats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._atomic import atomic_dir, atomic_file
from ..io import IMZML_MODES, write_imzml, write_sma_csv, write_visium
from ._centroids import pixel_spectra
from ._images import SlideRenderer, hires_image

_JITTER_PPM = 1.5  # centroid m/z scatter (sd); clipped at 3 sd, so within 5 ppm


@dataclass
class SyntheticSection:
    """One section: Visium RNA, MSI, and the ground truth that links them.

    Attributes
    ----------
    name
        Section name; also ``obs["section"]`` and the folder name when written.
    rna
        In-tissue spots x genes, as :func:`spatial_mg.io.read_visium` returns them: raw
        counts (CSR int32), barcodes, ``obs`` array coordinates, ``obsm["spatial"]`` in
        micrometres; plus truth ``obs["section"]``, ``obs["domain"]`` (categorical) and
        ``obsm["cell_state_proportions"]``.
    msi
        Raster pixels x metabolites, as :func:`spatial_mg.io.read_imzml` returns them with
        ``mz_bins=msi.var["mz"]``: float32 intensities, ``obs["x"]``, ``obs["y"]``
        (1-based), ``obs["tic"]`` (whole spectrum), ``obsm["spatial"] = (x, y) * pixel size``
        in the MSI's own micrometres; plus truth ``obs["in_tissue"]`` (pixel
        centre on tissue) and ``obs["tissue_cover"]`` (share of the pixel's footprint on
        tissue: edge pixels integrate the tissue they partly cover).
    affine
        3 x 3 homogeneous similarity mapping ``msi.obsm["spatial"]`` to STR micrometres.
    metabolite_means
        In-tissue spots x metabolites: noise-free expected intensity at each spot centre
        (same obs names as ``rna``, same var names as ``msi``); ``var`` holds the truth of
        each metabolite (``state_fraction``: share of spatial log-variance from cell states,
        ``noise_sd``: log-scale pixel noise); ``layers["from_states"]`` the expected
        intensity given the spot's cell states alone (the section's own field averaged
        out), the best a prediction from RNA can do.
    pixel_size_um
        MSI raster step (micrometres).
    um_per_px
        Micrometres per full-resolution Visium image pixel.
    library_size_mean
        Expected UMIs per spot of this section.
    batch_lfc
        Per-gene log fold change of this section (natural log).
    msi_scale
        Section-wide MSI intensity factor (included in ``metabolite_means``).
    capture_area
        Every spot of the capture area (the tissue positions table, indexed by barcode).
    lowres_image, fullres_shape
        The H&E-like slide image (600 px) and the full-resolution image size it stands for.
    noise_mz, noise_intensities
        Matrix and contaminant peaks each spectrum carries beside the metabolites (pixels x
        peaks; included in ``msi.obs["tic"]``).
    spectra_seed
        Seed of the centroid m/z jitter drawn when writing processed-mode imzML.
    renderer
        Draws the slide image at any size: the written hires image gets the true tissue
        edge at its own resolution (``None``: the lowres image upsampled).
    """

    name: str
    rna: ad.AnnData
    msi: ad.AnnData
    affine: np.ndarray
    metabolite_means: ad.AnnData
    pixel_size_um: float
    um_per_px: float
    library_size_mean: float
    batch_lfc: np.ndarray
    msi_scale: float
    # what the writers need beyond the AnnData
    capture_area: pd.DataFrame = field(repr=False)
    lowres_image: np.ndarray = field(repr=False)
    fullres_shape: tuple[int, int] = field(repr=False)
    noise_mz: np.ndarray = field(repr=False)
    noise_intensities: np.ndarray = field(repr=False)
    spectra_seed: int = field(repr=False)
    renderer: SlideRenderer | None = field(default=None, repr=False)

    def write(
        self,
        path: str | PathLike,
        *,
        imzml_mode: str = "processed",
        sma_csv: bool = False,
        overwrite: bool = False,
    ) -> dict[str, Path]:
        """Write this section into the folder ``path`` (atomically).

        Parameters
        ----------
        path
            The section folder: gets ``outs/`` (spaceranger), ``msi/<name>.imzML`` + ``.ibd``
            (optionally ``msi/<name>.csv``) and ``truth/``.
        imzml_mode
            ``"processed"`` or ``"continuous"``; see :meth:`SyntheticVicari.write`.
        sma_csv
            Also write the SMA csv export.
        overwrite
            Replace an existing ``path``; otherwise raise ``FileExistsError``.

        Returns
        -------
        The written paths by kind: ``visium`` (the outs folder), ``imzml``, ``ibd``, ``truth``
        and, if asked, ``sma_csv``.
        """
        if imzml_mode not in IMZML_MODES:
            raise ValueError(f"imzml_mode must be one of {IMZML_MODES}, got {imzml_mode!r}.")
        path = Path(path)
        noise_mz = self.noise_mz
        stem = f"msi/{self.name}"
        with atomic_dir(path, overwrite=overwrite) as tmp:
            write_visium(
                self.rna,
                tmp / "outs",
                um_per_px=self.um_per_px,
                capture_area=self.capture_area,
                lowres_image=self.lowres_image,
                hires_image=hires_image(self.lowres_image, self.fullres_shape, self.renderer),
                fullres_shape=self.fullres_shape,
                library_id=self.name,
            )
            coords = self.msi.obs[["x", "y"]].to_numpy(np.int64)
            intensities = self.msi.X
            mz = self.msi.var["mz"].to_numpy()
            if imzml_mode == "continuous":  # one shared axis: metabolites and noise peaks, no jitter
                write_imzml(
                    tmp / f"{stem}.imzML",
                    coords,
                    np.concatenate([intensities, self.noise_intensities], axis=1),
                    np.concatenate([mz, noise_mz]),
                    pixel_size_um=self.pixel_size_um,
                    mode="continuous",
                )
            else:
                rng = np.random.default_rng(self.spectra_seed)
                spectra = list(pixel_spectra(intensities, mz, self.noise_intensities, noise_mz, _JITTER_PPM, rng))
                write_imzml(
                    tmp / f"{stem}.imzML",
                    coords,
                    [s[1] for s in spectra],
                    [s[0] for s in spectra],
                    pixel_size_um=self.pixel_size_um,
                    mode=imzml_mode,
                )
            if sma_csv:
                write_sma_csv(tmp / f"{stem}.csv", coords, intensities, mz)
            truth = tmp / "truth"
            truth.mkdir()
            (truth / "affine.json").write_text(
                json.dumps({"msi_um_to_str_um": self.affine.tolist(), "pixel_size_um": self.pixel_size_um}, indent=2)
            )
            self.metabolite_means.write_h5ad(truth / "metabolite_means.h5ad")
        out = {
            "visium": path / "outs",
            "imzml": path / f"{stem}.imzML",
            "ibd": path / f"{stem}.ibd",
            "truth": path / "truth",
        }
        if sma_csv:
            out["sma_csv"] = path / f"{stem}.csv"
        return out


@dataclass
class SyntheticVicari:
    """Serial sections of one synthetic tissue, each with Visium RNA, MSI and ground truth.

    Attributes
    ----------
    sections
        One :class:`SyntheticSection` per section.
    noise_mz
        m/z of the matrix and contaminant peaks that spectra carry besides the metabolites
        (at least 300 ppm from every metabolite, so a peak-list reader ignores them).
    params
        The arguments the dataset was generated with.
    """

    sections: list[SyntheticSection]
    noise_mz: np.ndarray
    params: dict

    @property
    def mz(self) -> np.ndarray:
        """The metabolite peak list (sorted m/z), the ``mz_bins`` to read the imzML files with."""
        return self.sections[0].msi.var["mz"].to_numpy()

    def __getitem__(self, name: str) -> SyntheticSection:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(f"No section {name!r}; sections are {[s.name for s in self.sections]}.")

    def write(
        self,
        path: str | PathLike,
        *,
        imzml_mode: str = "processed",
        sma_csv: bool = False,
        overwrite: bool = False,
    ) -> dict[str, dict[str, Path]]:
        """Write every section in the real file formats, plus the peak list.

        Layout: ``path/peaks.csv`` (column ``mz``), and per section ``path/<name>/outs/``
        (spaceranger: filtered_feature_bc_matrix.h5, spatial/ positions, scale factors,
        lowres image), ``path/<name>/msi/<name>.imzML`` + ``.ibd`` (centroid; optionally
        ``<name>.csv``, the SMA export) and ``path/<name>/truth/`` (``affine.json``,
        ``metabolite_means.h5ad`` with domains and cell-state proportions).

        Parameters
        ----------
        path
            Folder to write into (created if missing).
        imzml_mode
            ``"processed"`` (each pixel its own jittered centroid m/z list) or
            ``"continuous"`` (one shared m/z axis).
        sma_csv
            Also write the SMA csv export of each section.
        overwrite
            Replace sections that already exist; otherwise raise ``FileExistsError``.

        Returns
        -------
        ``{section name: {"visium", "imzml", "ibd", "truth"[, "sma_csv"]: path}}`` and
        ``"peaks": {"csv": path}``.
        """
        if imzml_mode not in IMZML_MODES:
            raise ValueError(f"imzml_mode must be one of {IMZML_MODES}, got {imzml_mode!r}.")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if not overwrite:  # check all first, so that a refusal leaves nothing half-written
            existing = [s.name for s in self.sections if (path / s.name).exists()]
            if existing:
                raise FileExistsError(f"Sections {existing} already exist in '{path}'; pass overwrite=True to replace them.")
        written: dict[str, dict[str, Path]] = {}
        peaks = self.sections[0].msi.var[["mz"]]
        with atomic_file(path / "peaks.csv") as tmp:
            peaks.to_csv(tmp, index=False, float_format="%.4f")
        written["peaks"] = {"csv": path / "peaks.csv"}
        for s in self.sections:
            written[s.name] = s.write(path / s.name, imzml_mode=imzml_mode, sma_csv=sma_csv, overwrite=overwrite)
        return written
