"""Which outline stands for the RNA side: the H&E image's tissue, when it fits the spots, else the spots'.

The image is used only when it can be trusted to show this section in these micrometres:

- its tissue, placed through the scale factor, must have about the area the in-tissue
  spots cover (a wrong scale factor, e.g. the lowres factor with the hires image, makes
  it several times too large or small) and must hold the spots inside its extent;
  otherwise the scale factors disagree with the spot grid, and the spots' outline is used;
- the spots must lie on its tissue and its tissue under the spots' hull must be covered
  by spots; an image of the right size that fails this shows another section (or the
  same one moved), which gets a warning, and the spots' outline is used.

Either way the QC details say which outline was used and why (``rna_outline``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..io._he_image import he_image_of, library_id
from ._tissue_image import ImageTissue, tissue_from_image
from ._window import Window

TISSUE_IMAGE_OPTIONS = ("auto", None)
# the image's tissue area over the spots' (in-tissue spots x one grid cell each): a tissue
# that runs off the capture area makes it exceed 1, a wrong scale factor by its square
AREA_RATIO = (0.4, 2.5)
# share of spots on the image's tissue (grown by half a pitch: spaceranger calls a spot in
# tissue when its disk touches it) and share of the image's tissue within the spots' hull
# that lies within a pitch of a spot; a right image gives 0.95-1 on both
MIN_FIT = 0.9
_MAX_CHECK_PIXELS = 40_000  # tissue pixels checked against the spots (an even subsample)


@dataclass(frozen=True)
class RnaOutline:
    """The RNA side's tissue outline: the image's tissue, or ``None`` for the spots'; and why, in words."""

    image: ImageTissue | None
    rule: str


def rna_outline(
    rna: ad.AnnData, rna_um: np.ndarray, spacing: float, *, tissue_image: str | None, min_area_um2: float
) -> RnaOutline:
    """Decide the RNA outline of a section (module notes).

    Parameters
    ----------
    rna, rna_um, spacing
        The spots' AnnData, their centres (um) and their pitch.
    tissue_image
        ``"auto"``: the image in ``rna.uns["spatial"]`` when there is one and it fits the
        spots; ``None``: the spots' outline.
    min_area_um2
        Holes and specks of the image's tissue smaller than this are ignored.
    """
    if tissue_image not in TISSUE_IMAGE_OPTIONS:
        raise ValueError(f"tissue_image must be one of {TISSUE_IMAGE_OPTIONS}, got {tissue_image!r}.")
    spots = "spot centres"
    if tissue_image is None:
        return RnaOutline(None, f"{spots} (tissue_image=None)")
    image = he_image_of(rna)
    if image is None:
        return RnaOutline(None, f"{spots}: no tissue image with its scale factor in rna.uns['spatial']")
    where = f"rna.uns['spatial'][{library_id(rna)!r}]['images'][{image.resolution!r}]"
    try:
        tissue = tissue_from_image(image, min_area_um2=min_area_um2)
    except ValueError as err:
        return RnaOutline(None, f"{spots}: {where} gave no tissue mask ({err})")
    doubt = _scale_doubt(tissue, rna_um, spacing)
    if doubt is not None:
        factor = f"tissue_{image.resolution}_scalef = {image.px_per_um:.5g} px per um"
        return RnaOutline(None, f"{spots}: the scale factor of {where} disagrees with the spot grid ({doubt}; {factor})")
    on_tissue, covered = fit_to_spots(tissue, rna_um, spacing)
    if min(on_tissue, covered) < MIN_FIT:
        fit = f"{on_tissue:.0%} of the spots on its tissue, {covered:.0%} of its tissue under the spots covered by them"
        warnings.warn(
            f"The tissue image {where} does not fit the spots ({fit}): it may show another section, or this one moved. "
            "The registration uses the spots' outline instead. Put this section's own image there, or pass "
            "tissue_image=None to register from the spots alone.",
            UserWarning,
            stacklevel=4,
        )
        return RnaOutline(None, f"{spots}: {where} does not fit the spots ({fit}); another section's image?")
    return RnaOutline(tissue, f"{tissue.rule}; {on_tissue:.0%} of the spots on it, {covered:.0%} of it covered by spots")


def _scale_doubt(tissue: ImageTissue, rna_um: np.ndarray, spacing: float) -> str | None:
    """Why the image's micrometres cannot be those of the spots (``None`` when they can)."""
    inside = tissue.window.contains(rna_um).mean()
    if inside < MIN_FIT:
        return f"{1 - inside:.0%} of the spots lie outside the image"
    spots_area = len(rna_um) * spacing**2 * np.sqrt(3) / 2  # one hexagonal grid cell per spot
    ratio = tissue.area_um2 / spots_area
    if not AREA_RATIO[0] <= ratio <= AREA_RATIO[1]:
        return f"its tissue covers {tissue.area_um2 / 1e6:.2f} mm^2 where the spots cover {spots_area / 1e6:.2f} mm^2"
    return None


def fit_to_spots(tissue: ImageTissue, rna_um: np.ndarray, spacing: float) -> tuple[float, float]:
    """Share of the spots on the image's tissue, and of its tissue under the spots' hull near a spot (module notes)."""
    grow = max(int(np.ceil(0.5 * spacing / tissue.um_per_px)), 1)
    grown = ImageTissue(ndimage.binary_dilation(tissue.mask, iterations=grow), tissue.um_per_px, tissue.threshold, tissue.rule)
    on_tissue = float(grown.contains(rna_um).mean())
    rows, cols = np.nonzero(tissue.mask)
    if len(rows) > _MAX_CHECK_PIXELS:
        keep = np.linspace(0, len(rows) - 1, _MAX_CHECK_PIXELS).astype(np.int64)
        rows, cols = rows[keep], cols[keep]
    pixels = (np.column_stack([cols, rows]) + 0.5) * tissue.um_per_px
    pixels = pixels[Window(rna_um, 0.0).contains(pixels)]
    if len(pixels) == 0:
        return on_tissue, 0.0
    distance, _ = cKDTree(rna_um).query(pixels)
    return on_tissue, float((distance <= spacing).mean())
