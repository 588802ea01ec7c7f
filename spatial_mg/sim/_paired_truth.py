"""Spots paired with their metabolites as perfect alignment would pair them: the model's input.

Pairing real MSI pixels to spots is the alignment stage's job; to test the model alone,
each spot of a :func:`synthetic_vicari` section gets a noisy observation of the true
metabolite means at its centre, drawn with the generator's own MSI noise model.
"""

from __future__ import annotations

import mudata as md
import numpy as np

from .._constants import RAW_LAYER
from ._containers import SyntheticVicari
from ._msi import observe_intensities


def paired_truth(data: SyntheticVicari, sections: list[int] | None = None, log1p: bool = True, seed: int = 0) -> md.MuData:
    """MuData ``{"rna", "msi"}`` of spots paired with a noisy observation of their metabolites.

    Parameters
    ----------
    data
        A :func:`synthetic_vicari` dataset.
    sections
        Indices of the sections to include (default all), stacked in this order.
    log1p
        Store ``log1p`` intensities in ``msi`` (the usual scale for a Gaussian model;
        the raw intensities are in ``msi.layers["raw"]`` either way).
    seed
        Seed of the observation noise (per-spot TIC factor and per-peak log-normal noise,
        as in the generator's MSI pixels).

    Returns
    -------
    MuData with one row per spot, named ``<barcode>-<section>`` (barcodes repeat across
    sections); ``rna`` holds raw counts, ``obs`` the section and domain. The noise-free
    means stay in ``data.sections[i].metabolite_means``.
    """
    import anndata as ad

    rng = np.random.default_rng(seed)
    picked = range(len(data.sections)) if sections is None else sections
    rnas, msis, names = [], [], []
    for i in picked:
        section = data.sections[i]
        means = section.metabolite_means
        noise_sd = means.var["noise_sd"].to_numpy()
        intensity = observe_intensities(rng, np.asarray(means.X, dtype=np.float64), noise_sd, np.zeros(means.n_vars))
        msi = ad.AnnData(
            X=np.log1p(intensity) if log1p else intensity.copy(),
            obs=means.obs.copy(),
            var=section.msi.var.copy(),
            layers={RAW_LAYER: intensity},
        )
        msi.obsm["spatial"] = means.obsm["spatial"].copy()
        rna = section.rna.copy()
        rnas.append(rna)
        msis.append(msi)
        names.append(section.name)
    rna = ad.concat(rnas, merge="same", keys=names, index_unique="-")
    msi = ad.concat(msis, merge="same", keys=names, index_unique="-")
    mdata = md.MuData({"rna": rna, "msi": msi})
    mdata.obs = rna.obs[["section", "domain"]].copy().reindex(mdata.obs_names)
    return mdata
