"""H&E-like tissue images for the Visium ``spatial/`` folder, and their scale factors.

The tissue edge in these images is the true one (``TissueModel.tissue_weight`` at each
pixel, whose soft edge is 10 um wide) at the image's own resolution: the registration
derives the tissue outline from the image, so an edge blurred by rendering would bias
what it measures. The smooth domain shading is rendered coarser and upsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .._constants import VISIUM_SPOT_DIAMETER_UM
from ._tissue import SectionPose, TissueModel

LOWRES_PX = 600  # long side of spaceranger's tissue_lowres_image.png
HIRES_PX = 2000  # long side of tissue_hires_image.png
_COARSE = 3  # the shading (and a first tissue weight) is rendered at 1 / _COARSE of the size
_EDGE_BAND = (1e-3, 1 - 1e-3)  # pixels the coarse weight leaves in between are rendered exactly
_GLASS = np.array([238.0, 236.0, 240.0])
_STAIN = np.array([214.0, 140.0, 184.0])


def image_shape(fullres_shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(height, width) of a downscaled image whose long side is ``long_side`` pixels."""
    scalef = long_side / max(fullres_shape)
    return tuple(max(1, int(round(s * scalef))) for s in fullres_shape)


@dataclass(frozen=True)
class SlideRenderer:
    """Renders a section's slide image at any size (kept by the section to write its hires image)."""

    tissue: TissueModel
    pose: SectionPose
    fullres_shape: tuple[int, int]
    um_per_px: float

    def render(self, long_side: int) -> np.ndarray:
        """An RGB ``uint8`` image whose long side is ``long_side`` pixels: pink tissue, domains in shades, pale glass."""
        h, w = image_shape(self.fullres_shape, long_side)
        um_per_img_px = self.fullres_shape[0] * self.um_per_px / h
        hc, wc = max(1, h // _COARSE), max(1, w // _COARSE)
        coarse_um = _centres(hc, wc, um_per_img_px * np.array([w / wc, h / hc]))
        near = np.linalg.norm(coarse_um - self.pose.centre_um, axis=1) < 1.2 * self.tissue.max_radius_um() + 200
        weight = np.zeros(len(coarse_um))
        shade = np.zeros(len(coarse_um))
        v = self.pose.to_canonical(coarse_um[near])
        weight[near] = self.tissue.tissue_weight(v)
        shade[near] = self.tissue.domain_weights(v) @ np.linspace(-1, 1, self.tissue.domain_centres.shape[0])
        zoom = (h / hc, w / wc)
        weight = _resize(weight.reshape(hc, wc), (h, w), zoom)
        shade = _resize(shade.reshape(hc, wc), (h, w), zoom)
        # the true edge: every pixel near the outline evaluated at its own centre
        band = (weight > _EDGE_BAND[0]) & (weight < _EDGE_BAND[1])
        band = ndimage.binary_dilation(band, iterations=2 * _COARSE)
        rows, cols = np.nonzero(band)
        um = (np.column_stack([cols, rows]) + 0.5) * um_per_img_px
        weight[rows, cols] = self.tissue.tissue_weight(self.pose.to_canonical(um))
        stain = _STAIN + shade[..., None] * np.array([-22.0, -30.0, -8.0])
        rgb = weight[..., None] * stain + (1 - weight[..., None]) * _GLASS
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _centres(h: int, w: int, step_um: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (np.column_stack([xx.ravel(), yy.ravel()]) + 0.5) * step_um


def _resize(values: np.ndarray, shape: tuple[int, int], zoom: tuple[float, float]) -> np.ndarray:
    """Bilinear upsampling with pixel centres aligned (as PIL's resize)."""
    rows = (np.arange(shape[0]) + 0.5) / zoom[0] - 0.5
    cols = (np.arange(shape[1]) + 0.5) / zoom[1] - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(values, [rr, cc], order=1, mode="nearest")


def lowres_image(tissue: TissueModel, pose: SectionPose, fullres_shape: tuple[int, int], um_per_px: float) -> np.ndarray:
    """The 600 px slide image (see :class:`SlideRenderer`)."""
    return SlideRenderer(tissue, pose, fullres_shape, um_per_px).render(LOWRES_PX)


def hires_image(lowres: np.ndarray, fullres_shape: tuple[int, int], renderer: SlideRenderer | None = None) -> np.ndarray:
    """The 2,000 px image spaceranger also writes (scanpy.read_visium requires it).

    Rendered anew by ``renderer`` (the true edge at 2,000 px); without one, the lowres
    image upsampled.
    """
    if renderer is not None:
        return renderer.render(HIRES_PX)
    from PIL import Image

    h, w = image_shape(fullres_shape, HIRES_PX)
    return np.asarray(Image.fromarray(lowres).resize((w, h), Image.BILINEAR))


def squidpy_spatial(lowres: np.ndarray, fullres_shape: tuple[int, int], um_per_px: float) -> dict:
    """``uns["spatial"][library_id]`` as read_visium builds it: scale factors refer to micrometres."""
    return {
        "images": {"lowres": lowres.astype(np.float32) / 255},
        "scalefactors": {
            "spot_diameter_fullres": VISIUM_SPOT_DIAMETER_UM,
            "tissue_hires_scalef": image_shape(fullres_shape, HIRES_PX)[0] / fullres_shape[0] / um_per_px,
            "tissue_lowres_scalef": lowres.shape[0] / fullres_shape[0] / um_per_px,
        },
        "metadata": {},
    }
