"""The tissue of an H&E image, in micrometres: where the stain is, as the registration's RNA outline.

Spots on a 100 um grid say where the tissue is only to within about half a pitch; the
H&E image that every spaceranger output carries draws the edge at a few micrometres per
pixel. Stained tissue is saturated (pink to purple) where glass is grey-white, so the
mask is the image's saturation above an Otsu threshold (darkness for a grey image),
after the image is averaged down to what the outline needs (``target_um``): holes and
specks smaller than ``min_area_um2`` are filled and dropped, since a lattice of the
other modality cannot see them either.

:class:`ImageTissue` keeps that mask at its working resolution and draws it, blurred, on
any grid of the registration (``_masks.Grid``), as the spots' soft mask would be drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..io._he_image import HEImage
from ._masks import Grid
from ._window import Window

# working pixel size (um): a tenth of the blurs the outline is compared at (75-100 um),
# and about the hires image's own pixel (4-5 um) averaged two by two
TARGET_UM = 8.0
_OTSU_BINS = 256


@dataclass(frozen=True)
class ImageTissue:
    """A tissue mask derived from an H&E image, placed in the spots' micrometres.

    Attributes
    ----------
    mask
        ``(rows, cols)`` booleans at ``um_per_px``; pixel ``(r, c)`` covers
        ``[c, c + 1] x [r, r + 1] * um_per_px`` (spatialdata's pixel convention).
    um_per_px
        Working pixel size (micrometres).
    threshold
        The stain level that split tissue from glass.
    rule
        How the mask was made, in words (QC details).
    """

    mask: np.ndarray
    um_per_px: float
    threshold: float
    rule: str

    @property
    def window(self) -> Window:
        """Where the image looked: its whole extent (tissue beyond the capture area included)."""
        h, w = self.mask.shape
        corners = np.array([[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]]) * self.um_per_px
        return Window(corners, 0.0)

    @property
    def area_um2(self) -> float:
        """Tissue area (square micrometres)."""
        return float(self.mask.sum()) * self.um_per_px**2

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each point (um) lies on a tissue pixel (``False`` outside the image)."""
        rc = np.floor(np.asarray(points, dtype=np.float64)[:, ::-1] / self.um_per_px).astype(np.int64)
        inside = (rc >= 0).all(axis=1) & (rc[:, 0] < self.mask.shape[0]) & (rc[:, 1] < self.mask.shape[1])
        out = np.zeros(len(rc), dtype=bool)
        out[inside] = self.mask[rc[inside, 0], rc[inside, 1]]
        return out

    def soft_mask(self, grid: Grid, sigma: float) -> np.ndarray:
        """The mask blurred by ``sigma`` (um) and sampled at ``grid``'s positions: 1 in tissue, 0 on glass.

        Blurring the area fractions puts the half-way level on the edge itself, as the
        spots' and pixels' density masks put it on the outer edge of their cells (``_masks``).
        """
        # average to about a quarter of the blur first: the area fractions keep the edge's
        # sub-pixel position, and the blur then costs little at any image resolution
        factor = max(1, int(sigma / 4 / self.um_per_px))
        fraction = _block_mean(self.mask[..., None].astype(np.uint8) * np.uint8(255), factor)[..., 0]
        px = factor * self.um_per_px
        blurred = ndimage.gaussian_filter(fraction, sigma / px, mode="constant")
        pos = grid.positions()
        idx = np.vstack([pos[:, 1], pos[:, 0]]) / px - 0.5  # pixel centres lie at (index + 0.5) * px
        values = ndimage.map_coordinates(blurred, idx, order=1, mode="constant", cval=0.0)
        return np.clip(values, 0.0, 1.0).reshape(grid.shape)


def tissue_from_image(image: HEImage, *, min_area_um2: float, target_um: float = TARGET_UM) -> ImageTissue:
    """The tissue of ``image``: stained pixels (see module notes), in micrometres.

    Parameters
    ----------
    image
        The H&E image and its pixels per micrometre.
    min_area_um2
        Holes and specks smaller than this are filled and dropped.
    target_um
        Working pixel size: the image is averaged over blocks of about this size first
        (never upsampled), which keeps memory to a few megabytes whatever its resolution.

    Raises
    ------
    ValueError
        When the image shows no contrast between stain and glass.
    """
    factor = max(1, int(np.floor(target_um * image.px_per_um)))
    rgb = _block_mean(image.pixels, factor)
    um_per_px = factor / image.px_per_um
    if rgb.shape[-1] >= 3:
        colour = rgb[..., :3]
        top, bottom = colour.max(axis=-1), colour.min(axis=-1)
        stain, measure = (top - bottom) / np.maximum(top, 1e-6), "saturation"
    else:  # a grey image: tissue is darker than glass
        stain, measure = 1.0 - rgb[..., 0], "darkness"
    threshold = _otsu(stain)
    if threshold is None:
        raise ValueError(
            f"The {image.resolution} tissue image shows no contrast between stain and glass (its {measure} is "
            "uniform); pass tissue_image=None to register from the spots' outline."
        )
    mask = stain > threshold
    min_px = min_area_um2 / um_per_px**2
    mask = _drop_small(mask, min_px)
    mask = ~_drop_small(~mask, min_px)  # fill small holes: the glass components smaller than that
    rule = (
        f"{image.resolution} H&E image, {measure} > {threshold:.3f} (Otsu) at {um_per_px:.1f} um per pixel, "
        f"holes and specks under {min_area_um2 / 1e6:.3f} mm^2 filled / dropped"
    )
    return ImageTissue(mask, float(um_per_px), float(threshold), rule)


def _block_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks, in [0, 1] (the image's last partial blocks dropped)."""
    h, w = (pixels.shape[0] // factor) * factor, (pixels.shape[1] // factor) * factor
    if h == 0 or w == 0:
        raise ValueError(f"The tissue image ({pixels.shape[0]} x {pixels.shape[1]} px) is smaller than one working pixel.")
    out = np.empty((h // factor, w // factor, pixels.shape[-1]), dtype=np.float32)
    for c in range(pixels.shape[-1]):  # one channel at a time: a float copy of one channel at most
        block = pixels[:h, :w, c].reshape(h // factor, factor, w // factor, factor)
        out[..., c] = block.mean(axis=(1, 3), dtype=np.float32) / 255.0
    return out


def _otsu(values: np.ndarray) -> float | None:
    """Otsu's threshold of ``values`` in [0, 1] (``None`` when they do not vary)."""
    counts, edges = np.histogram(values, bins=_OTSU_BINS, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    between[(w0 == 0) | (w1 == 0)] = 0
    if not between.any():
        return None
    return float(edges[int(np.argmax(between)) + 1])


def _drop_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    """``mask`` without its connected components smaller than ``min_px`` pixels."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]
