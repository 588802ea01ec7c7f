"""H&E-like tissue images for the Visium ``spatial/`` folder, and their scale factors."""

from __future__ import annotations

import numpy as np

from .._constants import VISIUM_SPOT_DIAMETER_UM
from ._tissue import SectionPose, TissueModel

LOWRES_PX = 600  # long side of spaceranger's tissue_lowres_image.png
HIRES_PX = 2000  # long side of tissue_hires_image.png


def image_shape(fullres_shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(height, width) of a downscaled image whose long side is ``long_side`` pixels."""
    scalef = long_side / max(fullres_shape)
    return tuple(max(1, int(round(s * scalef))) for s in fullres_shape)


def lowres_image(tissue: TissueModel, pose: SectionPose, fullres_shape: tuple[int, int], um_per_px: float) -> np.ndarray:
    """An RGB ``uint8`` rendering of the whole slide image: pink tissue, domains in shades, pale glass."""
    from PIL import Image

    h, w = image_shape(fullres_shape, LOWRES_PX)
    scalef = h / fullres_shape[0]
    # render at a third of the size and upsample: the fields are smooth, and cos() is the cost here
    hc, wc = max(1, h // 3), max(1, w // 3)
    yy, xx = np.mgrid[0:hc, 0:wc]
    um = (np.column_stack([xx.ravel(), yy.ravel()]) + 0.5) * (np.array([w / wc, h / hc]) / scalef * um_per_px)
    near = np.linalg.norm(um - pose.centre_um, axis=1) < 1.2 * tissue.max_radius_um() + 200
    weight = np.zeros(len(um))
    shade = np.zeros(len(um))
    v = pose.to_canonical(um[near])
    weight[near] = tissue.tissue_weight(v)
    shade[near] = tissue.domain_weights(v) @ np.linspace(-1, 1, tissue.domain_centres.shape[0])
    glass = np.array([238.0, 236.0, 240.0])
    stain = np.array([214.0, 140.0, 184.0]) + np.outer(shade, [-22.0, -30.0, -8.0])
    rgb = weight[:, None] * stain + (1 - weight[:, None]) * glass
    small = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8).reshape(hc, wc, 3))
    return np.asarray(small.resize((w, h), Image.BILINEAR))


def hires_image(lowres: np.ndarray, fullres_shape: tuple[int, int]) -> np.ndarray:
    """The 2,000 px image spaceranger also writes (scanpy.read_visium requires it): the lowres one, upsampled."""
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
