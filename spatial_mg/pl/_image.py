"""What lies under a map in micrometres: the section's H&E image and a scale bar."""

from __future__ import annotations

import numpy as np

from ..io._he_image import HEImage

_NICE = (1, 2, 5)  # scale bar lengths: 1, 2 or 5 times a power of ten micrometres


def draw_he(ax, image: HEImage | None, *, zorder: float = 0) -> None:
    """The H&E image under everything else, placed in micrometres (the axes keep their limits)."""
    if image is None:
        return
    limits = ax.get_xlim(), ax.get_ylim()
    pixels = image.pixels[..., 0] if image.pixels.shape[-1] == 1 else image.pixels
    ax.imshow(pixels, extent=image.extent_um, cmap="gray" if pixels.ndim == 2 else None, zorder=zorder, interpolation="antialiased")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])


def scale_bar(ax, *, fraction: float = 0.2, color: str = "black") -> float:
    """A bar of a round length near ``fraction`` of the axes' width (data in micrometres); returns its length."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    width = abs(np.diff(ax.get_xlim())[0])
    target = fraction * width
    power = 10 ** np.floor(np.log10(target))
    length = max((n * power for n in _NICE if n * power <= target), default=power)
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length:g} µm"
    bar = AnchoredSizeBar(
        ax.transData, length, label, "lower right", pad=0.4, color=color, frameon=False, size_vertical=width / 150,
        fontproperties={"size": 7},
    )
    bar.set_gid("scale_bar")
    ax.add_artist(bar)
    return float(length)
