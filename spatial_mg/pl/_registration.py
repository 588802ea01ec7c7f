"""Registration overlay: the registered MSI pixels under the spot outlines, coloured by an m/z, over the H&E."""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp


def _feature(msi: ad.AnnData, mz, layer: str | None) -> tuple[np.ndarray, str]:
    """Intensities of the chosen feature (name or nearest m/z), or the summed intensity."""
    x = msi.layers[layer] if layer is not None else msi.X
    if msi.n_vars == 0:
        return np.zeros(msi.n_obs), "pixel"
    if mz is None:
        total = np.asarray(x.sum(axis=1)).ravel()
        return total, "summed intensity"
    if isinstance(mz, str):
        if mz not in msi.var_names:
            raise KeyError(f"{mz!r} is not a feature of msi (var_names such as {list(msi.var_names[:3])}).")
        j = int(msi.var_names.get_loc(mz))
    else:
        if "mz" not in msi.var:
            raise KeyError("msi.var has no 'mz' column; pass the feature by name.")
        j = int(np.argmin(np.abs(msi.var["mz"].to_numpy(np.float64) - float(mz))))
    column = x[:, j]
    column = column.toarray().ravel() if sp.issparse(column) else np.asarray(column).ravel()
    label = f"m/z {msi.var['mz'].iloc[j]:.4f}" if "mz" in msi.var else str(msi.var_names[j])
    return column, label


def registration(
    rna: ad.AnnData,
    msi: ad.AnnData,
    reg,
    mz: str | float | None = None,
    *,
    layer: str | None = None,
    show_background: bool = True,
    spot_radius_um: float | None = None,
    cmap: str = "viridis",
    img: bool = True,
    scalebar: bool = True,
    ax=None,
    save: str | None = None,
):
    """Draw the registered MSI pixels with the spots on top, over the H&E, to see whether it worked.

    Parameters
    ----------
    rna, msi
        The registered objects (checked with ``reg.check_pair``): AnnData, or SpatialData.
    reg
        :class:`spatial_mg.align.RegistrationResult`.
    mz
        Feature to colour by: a var name or an m/z value (nearest peak); default the
        summed intensity.
    layer
        MSI layer to read (default ``X``).
    show_background
        Draw the pixels the background rule left out, in grey.
    spot_radius_um
        Spot radius drawn; default: recorded by the reader, else 27.5 um.
    cmap
        Colour map of the intensities.
    img
        Draw the section's H&E image underneath, when ``rna`` carries one.
    scalebar
        Draw a scale bar (micrometres).
    ax
        Matplotlib axes to draw into (a new figure when ``None``).
    save
        Also write the figure to this path.

    Returns
    -------
    The matplotlib ``Axes``. The title gives the confidence, the pose and the matched
    fraction; a low confidence adds its reason below the plot.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import EllipseCollection, PolyCollection

    from ..align._inputs import spot_radius
    from ..io._he_image import he_image_of
    from ..io._spatialdata import as_anndata
    from ._image import draw_he, scale_bar

    rna, msi = as_anndata(rna, "rna", load_images=img), as_anndata(msi, "msi")
    reg.check_pair(rna, msi)
    pixel_um = reg.msi_pixel_size_um
    msi_um = reg.msi_um(msi)
    rna_um = reg.rna_um(rna)
    values, label = _feature(msi, mz, layer)
    tissue = np.ones(msi.n_obs, bool) if reg.msi_tissue is None else np.asarray(reg.msi_tissue, bool)
    he = he_image_of(rna) if img else None
    alpha = 1.0 if he is None else 0.7  # the tissue shows through the pixels

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 7))
    half = pixel_um / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    squares = reg.transform((msi_um[:, None, :] + corners[None]).reshape(-1, 2)).reshape(-1, 4, 2)
    if show_background and (~tissue).any():
        ax.add_collection(PolyCollection(squares[~tissue], facecolors="0.85", edgecolors="none", zorder=1, alpha=alpha))
    pixels = PolyCollection(squares[tissue], array=values[tissue], cmap=cmap, edgecolors="none", zorder=2, alpha=alpha)
    ax.add_collection(pixels)
    plt.colorbar(pixels, ax=ax, shrink=0.7, label=label)
    diameter = 2 * spot_radius(rna, spot_radius_um)
    ax.add_collection(
        EllipseCollection(
            np.full(len(rna_um), diameter),
            np.full(len(rna_um), diameter),
            np.zeros(len(rna_um)),
            units="xy",
            offsets=rna_um,
            offset_transform=ax.transData,
            facecolors="none",
            edgecolors="crimson",
            linewidths=0.6,
            zorder=3,
        )
    )
    every = np.vstack([squares.reshape(-1, 2), rna_um])
    pad = 2 * pixel_um
    ax.set_xlim(every[:, 0].min() - pad, every[:, 0].max() + pad)
    ax.set_ylim(every[:, 1].max() + pad, every[:, 1].min() - pad)  # image orientation: y down
    ax.set_aspect("equal")
    draw_he(ax, he)
    if scalebar:
        scale_bar(ax)
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
    q = reg.qc
    ax.set_title(
        f"{reg.method}: confidence {q.confidence}, scale {q.scale:.3f}, rotation {q.rotation_deg:.1f} deg"
        f"{', mirrored' if q.reflection else ''}\nmatched {q.matched_fraction:.0%}, overlap {q.overlap_fraction:.0%}",
        fontsize=9,
    )
    if q.confidence == "low":
        ax.text(0.0, -0.12, "Low confidence: " + q.reason, transform=ax.transAxes, fontsize=7, wrap=True, va="top")
    if save is not None:
        ax.figure.savefig(save, dpi=150, bbox_inches="tight")
    return ax
