"""A section's H&E image placed in micrometres: in AnnData, and as a SpatialData image element.

AnnData keeps it as scanpy and squidpy do: ``uns["spatial"][library_id]["images"][res]``
with ``scalefactors[f"tissue_{res}_scalef"]`` in image pixels per micrometre (our
``obsm["spatial"]`` is in micrometres). SpatialData keeps it as an image element whose
transformation scales its pixels into micrometres. Both follow spatialdata's pixel
convention: pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]`` before scaling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np

from .._constants import GLOBAL_FRAME, UNS_KEY

RESOLUTIONS = ("hires", "lowres")  # preferred first
_CHANNELS = {1: ["grey"], 3: ["r", "g", "b"], 4: ["r", "g", "b", "a"]}
# an image element's transformation counts as a plain scaling within this (relative) tolerance
_SCALING_TOLERANCE = 1e-6


@dataclass(frozen=True)
class HEImage:
    """An RGB(A) or grey tissue image and its size in micrometres.

    Attributes
    ----------
    pixels
        ``(height, width, channels)`` ``uint8``.
    px_per_um
        Image pixels per micrometre (squidpy's ``tissue_hires_scalef`` for micrometre coordinates).
    resolution
        ``"hires"`` or ``"lowres"``: the spaceranger image it came from.
    """

    pixels: np.ndarray
    px_per_um: float
    resolution: str = "hires"

    def __post_init__(self):
        if self.pixels.ndim != 3 or self.pixels.dtype != np.uint8:
            raise ValueError(f"HEImage pixels must be (height, width, channels) uint8, got {self.pixels.dtype} {self.pixels.shape}.")

    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` for matplotlib's ``imshow`` with y growing downwards."""
        height, width = self.pixels.shape[:2]
        return 0.0, width / self.px_per_um, height / self.px_per_um, 0.0

    def to_element(self):
        """A spatialdata image element (``c, y, x``) scaled into micrometres (``"global"``)."""
        from spatialdata.models import Image2DModel
        from spatialdata.transformations import Scale

        to_um = Scale(np.full(2, 1.0 / self.px_per_um), axes=("y", "x"))
        return Image2DModel.parse(
            np.moveaxis(self.pixels, -1, 0),
            dims=("c", "y", "x"),
            c_coords=_CHANNELS[self.pixels.shape[-1]],
            transformations={GLOBAL_FRAME: to_um},
        )


def as_uint8(image: np.ndarray, what: str) -> np.ndarray:
    """``image`` (height, width[, channels]) as ``uint8``: 8-bit images as they are, floats in
    [0, 1] (what matplotlib and scanpy read PNGs into) scaled back to 0-255."""
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if image.ndim not in (2, 3) or channels not in _CHANNELS:
        raise ValueError(f"{what} must be a grey, RGB or RGBA image (height, width[, channels]), got shape {image.shape}.")
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        if not (np.isfinite(image).all() and image.min(initial=0) >= 0 and image.max(initial=0) <= 1):
            raise ValueError(f"{what} holds floats outside [0, 1]; give an 8-bit image or floats in [0, 1].")
        return np.rint(image * 255).astype(np.uint8)
    if image.dtype.kind == "u" and image.dtype.itemsize == 2:  # a 16-bit PNG: keep the upper byte
        return (image >> 8).astype(np.uint8)
    raise ValueError(f"{what} has pixel type {image.dtype}; give an 8-bit image or floats in [0, 1].")


def _with_channels(image: np.ndarray) -> np.ndarray:
    return image[..., None] if image.ndim == 2 else image


def library_id(adata: ad.AnnData) -> str | None:
    """The key of the section's entry in ``uns["spatial"]``: recorded by the reader, else the only one."""
    libraries = adata.uns.get("spatial")
    if not isinstance(libraries, dict) or not libraries:
        return None
    meta = adata.uns.get(UNS_KEY)
    recorded = meta.get("library_id") if isinstance(meta, dict) else None
    if recorded in libraries:
        return recorded
    return next(iter(libraries)) if len(libraries) == 1 else None


def he_image_of(adata: ad.AnnData) -> HEImage | None:
    """The H&E image ``adata`` carries in ``uns["spatial"]`` (hires preferred), or ``None``."""
    library = library_id(adata)
    if library is None:
        return None
    entry = adata.uns["spatial"][library]
    images, factors = entry.get("images", {}), entry.get("scalefactors", {})
    for resolution in RESOLUTIONS:
        scalef = factors.get(f"tissue_{resolution}_scalef")
        if resolution in images and scalef is not None and np.isfinite(scalef) and scalef > 0:
            where = f"uns['spatial'][{library!r}]['images'][{resolution!r}]"
            return HEImage(_with_channels(as_uint8(images[resolution], where)), float(scalef), resolution)
    return None


def he_image_from_element(element, to_um: np.ndarray, name: str, resolution: str = "hires") -> HEImage | None:
    """An image element as :class:`HEImage`, given the 3 x 3 matrix (x, y) from its pixels to micrometres.

    ``None``, with a warning, when that matrix is more than a scaling (turned, sheared,
    shifted): AnnData's ``uns["spatial"]`` cannot place such an image.
    """
    to_um = np.asarray(to_um, dtype=np.float64)
    scale = to_um[0, 0]
    off = np.abs([to_um[0, 1], to_um[1, 0], to_um[1, 1] - scale, to_um[0, 2] / scale, to_um[1, 2] / scale])
    if not (scale > 0 and (off <= _SCALING_TOLERANCE * max(scale, 1.0)).all()):
        warnings.warn(
            f"The image {name!r} is turned, sheared or shifted against the spots (pixels -> micrometres: "
            f"{np.round(to_um[:2], 4).tolist()}); it is left out of the AnnData. Draw it with spatialdata-plot.",
            UserWarning,
            stacklevel=3,
        )
        return None
    if hasattr(element, "children"):  # a multiscale image (DataTree): its full-resolution scale
        element = next(iter(element.children.values())).ds["image"]
    pixels = np.moveaxis(np.asarray(element.transpose("c", "y", "x").values), 0, -1)
    return HEImage(as_uint8(pixels, f"image {name!r}"), float(1.0 / scale), resolution)


def spatial_without_images(spatial: dict) -> dict:
    """``uns["spatial"]`` with each library's images left out (scale factors and metadata kept):
    enough to find the image again, which a pairs file or table does not copy."""
    return {
        library: {key: value for key, value in entry.items() if key != "images"} if isinstance(entry, dict) else entry
        for library, entry in spatial.items()
    }


def put_he_image(adata: ad.AnnData, image: HEImage, library: str) -> None:
    """Store ``image`` in ``adata.uns["spatial"][library]`` the way :func:`spatial_mg.io.read_visium` does."""
    spatial = dict(adata.uns.get("spatial", {}))
    entry = dict(spatial.get(library, {}))
    pixels = image.pixels[..., 0] if image.pixels.shape[-1] == 1 else image.pixels  # grey: 2-D, as matplotlib draws it
    entry["images"] = {**entry.get("images", {}), image.resolution: pixels}
    entry["scalefactors"] = {**entry.get("scalefactors", {}), f"tissue_{image.resolution}_scalef": image.px_per_um}
    entry.setdefault("metadata", {})
    spatial[library] = entry
    adata.uns["spatial"] = spatial
