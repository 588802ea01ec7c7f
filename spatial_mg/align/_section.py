"""A section prepared for registration: both sides in micrometres, the MSI tissue, the windows.

Everything :func:`register` reads from the two AnnData objects is read here, once, and
checked on the way in; the stages that follow see only arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anndata as ad
import numpy as np

from ._acquired import acquired_pixels
from ._background import TissueMask, tissue_mask
from ._inputs import (
    check_points,
    msi_coordinates,
    msi_pixel_size,
    msi_window,
    rna_coordinates,
    rna_window,
    warn_assumed_units,
)
from ._rna_outline import RnaOutline, rna_outline
from ._subsample import median_spacing
from ._window import Window


@dataclass(frozen=True)
class Section:
    """One section's two modalities, ready for the registration stages.

    Attributes
    ----------
    tissue
        Which pixels are tissue, and by what rule.
    msi_um
        The tissue pixel centres (MSI um): what is registered.
    rna_um
        The spot centres (RNA um).
    msi_pixel_size_um, rna_spacing_um
        The MSI raster step and the spots' pitch (median nearest-neighbour distance).
    msi_window, rna_window
        Where each modality measured (convex hulls grown by half a pitch, or more when
        unknown), and how that was decided (``msi_window_rule``, ``rna_window_rule``); the
        MSI's from the pixels it acquired (``acquired_rule``, ``_acquired``).
    rna_units_known
        Whether the spots' AnnData records micrometres (else they are assumed).
    rna_outline
        The RNA side's tissue for the outline terms: the H&E image's tissue when the
        section carries an image that fits the spots, else the spots' (``_rna_outline``),
        and why, in words.
    n_msi, n_rna
        Pixels and spots in the AnnData objects.
    msi_edge_um, msi_edge_share
        The MSI side's tissue for the outline terms: the pixels with any tissue share and
        their shares (partly covered edge pixels count in proportion, ``_partial_volume``);
        ``None`` when the outline is drawn from the tissue pixels at 0 / 1
        (``msi_edge_rule`` says why).
    """

    tissue: TissueMask
    msi_um: np.ndarray
    rna_um: np.ndarray
    msi_pixel_size_um: float
    rna_spacing_um: float
    msi_window: Window
    rna_window: Window
    msi_window_rule: str
    acquired_rule: str
    rna_window_rule: str
    rna_units_known: bool
    n_msi: int
    n_rna: int
    rna_outline: RnaOutline = field(default_factory=lambda: RnaOutline(None, "spot centres"))
    msi_edge_um: np.ndarray | None = None
    msi_edge_share: np.ndarray | None = None
    msi_edge_rule: str = "0 / 1 edge"

    @property
    def pitch(self) -> float:
        """The coarser of the two pitches (um): the unit of every tolerance on a pose."""
        return max(self.msi_pixel_size_um, self.rna_spacing_um)

    def details(self) -> dict:
        """What was read and decided, for the QC details."""
        return {
            "background_rule": self.tissue.rule,
            "tic_threshold": self.tissue.threshold,
            "n_msi_pixels": self.n_msi,
            "n_msi_tissue": int(self.tissue.mask.sum()),
            "n_rna_spots": self.n_rna,
            "msi_pixel_size_um": self.msi_pixel_size_um,
            "rna_spacing_um": self.rna_spacing_um,
            "msi_window": self.msi_window_rule,
            "msi_acquired": self.acquired_rule,
            "rna_window": self.rna_window_rule,
            "rna_outline": self.rna_outline.rule,
            "rna_outline_source": "image" if self.rna_outline.image is not None else "spots",
            "msi_edge": self.msi_edge_rule,
            "msi_edge_source": "partial volume" if self.msi_edge_share is not None else "0 / 1",
        }


def prepare_section(
    rna: ad.AnnData,
    msi: ad.AnnData,
    *,
    msi_pixel_size_um: float | None,
    msi_mask,
    tic_threshold: float | None,
    tissue_image: str | None = None,
    msi_edge: str = "soft",
) -> Section:
    """Read and check both sides of a section (arguments as :func:`register`'s)."""
    pixel_um = msi_pixel_size(msi, msi_pixel_size_um)
    msi_all = msi_coordinates(msi, pixel_um)
    rna_um, rna_units_known = rna_coordinates(rna)
    if not rna_units_known:
        warn_assumed_units(stacklevel=3)  # at the caller of register
    acquired, acquired_rule = acquired_pixels(msi)
    tissue = _tissue_where_acquired(msi, acquired, msi_mask, tic_threshold)
    if tissue.mask.sum() < 3:
        raise ValueError(
            f"Only {int(tissue.mask.sum())} of {msi.n_obs} MSI pixels are left as tissue by the background rule "
            f"({tissue.rule}). Check the intensities, or pass msi_mask=<booleans> or a lower tic_threshold."
        )
    msi_um = check_points(msi_all[tissue.mask], "The MSI tissue pixels")
    rna_spacing = median_spacing(rna_um)
    msi_points, msi_pad, msi_window_rule = msi_window(msi_all[acquired], tissue.mask[acquired], pixel_um)
    rna_points, rna_pad, rna_window_rule = rna_window(rna, rna_um, rna_spacing)
    # holes and specks of the image's tissue smaller than a cell of the coarser lattice:
    # the other modality cannot see them
    min_area = max(pixel_um, rna_spacing) ** 2
    outline = rna_outline(rna, rna_um, rna_spacing, tissue_image=tissue_image, min_area_um2=min_area)
    edge_um = edge_share = None
    if msi_edge == "hard":
        edge_rule = "0 / 1 edge (msi_edge='hard')"
    elif tissue.share is None:
        edge_rule = tissue.share_rule
    else:
        some = tissue.share > 0
        edge_um, edge_share = check_points(msi_all[some], "The MSI edge pixels"), tissue.share[some]
        edge_rule = tissue.share_rule
    return Section(
        tissue=tissue,
        msi_um=msi_um,
        rna_um=rna_um,
        msi_pixel_size_um=pixel_um,
        rna_spacing_um=rna_spacing,
        msi_window=Window(msi_points, msi_pad),
        rna_window=Window(rna_points, rna_pad),
        msi_window_rule=msi_window_rule,
        acquired_rule=acquired_rule,
        rna_window_rule=rna_window_rule,
        rna_units_known=rna_units_known,
        n_msi=int(msi.n_obs),
        n_rna=int(rna.n_obs),
        rna_outline=outline,
        msi_edge_um=edge_um,
        msi_edge_share=edge_share,
        msi_edge_rule=edge_rule,
    )


def _tissue_where_acquired(msi: ad.AnnData, acquired: np.ndarray, msi_mask, tic_threshold) -> TissueMask:
    """The background rule on the acquired pixels only (a user's mask or threshold as given)."""
    if msi_mask is not None or acquired.all():
        return tissue_mask(msi, msi_mask, tic_threshold)
    found = tissue_mask(msi[acquired], None, tic_threshold)
    mask = np.zeros(msi.n_obs, dtype=bool)
    mask[acquired] = found.mask
    share = None
    if found.share is not None:
        share = np.zeros(msi.n_obs)
        share[acquired] = found.share
    return TissueMask(
        mask, found.rule + "; pixels not acquired are not tissue", found.threshold, share=share, share_rule=found.share_rule
    )
