"""Align one section: register its MSI onto its spots, pair them, and put the MSI on a log scale."""

from __future__ import annotations

import dataclasses

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import RAW_LAYER, SECTION_KEY, UNS_KEY
from ._sections import Section

MSI_SCALES = ("log1p", "linear")


def align_section(
    section: Section,
    *,
    method: str = "moscot",
    landmarks=None,
    transform: str = "similarity",
    strategy: str = "spot_mean",
    msi_scale: str = "log1p",
    device: str | None = None,
    register_kwargs: dict | None = None,
) -> Section:
    """Register the section's MSI onto its spots and pair them; the section itself is not changed.

    Parameters
    ----------
    section
        A section with both modalities (:func:`read_section`).
    method, landmarks, transform, device
        As for :func:`spatial_mg.align.register`: ``"moscot"`` (optimal transport on the
        tissue geometry) or ``"landmarks"`` with ``landmarks`` (a DataFrame ``msi_x, msi_y,
        rna_x, rna_y`` in micrometres, an SMA/MAGPIE landmark table ``X_left, Y_left,
        X_right, Y_right`` as published, or two arrays); a ``"similarity"`` or ``"affine"``
        transform; the JAX device of moscot.
    strategy
        How a spot gathers its pixels (:func:`spatial_mg.align.pair`): ``"spot_mean"``,
        ``"nearest_spot"`` or ``"transport"``.
    msi_scale
        ``"log1p"`` (default): the pairs' MSI values are ``log1p(intensity)`` (see
        :func:`log_msi`); ``"linear"``: the intensities.
    register_kwargs
        Any further keyword arguments of :func:`spatial_mg.align.register`.

    Returns
    -------
    A new :class:`Section` with ``registration`` and ``pairs`` set.
    """
    from .. import align

    if section.msi is None:
        raise ValueError(f"Section '{section.name}' has no MSI to align; read it with its imzML or csv file.")
    if msi_scale not in MSI_SCALES:
        raise ValueError(f"msi_scale must be one of {MSI_SCALES}, got {msi_scale!r}.")
    registration = align.register(
        section.rna,
        section.msi,
        method=method,
        landmarks=landmarks,
        transform=transform,
        device=device,
        **(register_kwargs or {}),
    )
    pairs = align.pair(section.rna, section.msi, registration, strategy=strategy)
    if pairs.n_obs == 0:
        why = f" ({registration.qc.reason})" if registration.qc.reason else ""
        raise ValueError(
            f"No spot of section '{section.name}' was paired with MSI pixels: the registration put the MSI off the "
            f"spots{why}. Check the MSI pixel size ({registration.msi_pixel_size_um:g} um here) and that both files "
            "are of this section, or register with landmarks."
        )
    pairs["msi"].obs[SECTION_KEY] = pd.Categorical([section.name] * pairs.n_obs)  # as its spots carry it
    if msi_scale == "log1p":
        pairs = log_msi(pairs)
    return dataclasses.replace(section, registration=registration, pairs=pairs)


def log_msi(pairs: md.MuData) -> md.MuData:
    """A copy of ``pairs`` whose MSI values are ``log1p(intensity)``; the intensities stay in
    ``layers["raw"]``.

    MSI intensities spread over orders of magnitude, roughly log-normally, so the Gaussian
    likelihood of the model (and a linear baseline) fits their logarithm far better.
    Predictions and scores are then on the log1p scale too.
    """
    out = pairs.copy()
    msi = out.mod["msi"]
    if msi.uns.get(UNS_KEY, {}).get("msi_scale") == "log1p":
        raise ValueError("These pairs' MSI values are log1p already; log_msi applies once.")
    x = msi.X
    if (np.min(x, initial=0) if not sp.issparse(x) else x.data.min(initial=0)) < 0:
        raise ValueError(
            "MSI intensities must be non-negative for log1p; are they log-transformed or standardised already? "
            "Then pair with msi_scale='linear'."
        )
    msi.layers[RAW_LAYER] = x.copy()
    msi.X = x.log1p() if sp.issparse(x) else np.log1p(x)
    msi.uns[UNS_KEY] = {**msi.uns.get(UNS_KEY, {}), "msi_scale": "log1p"}
    return out
