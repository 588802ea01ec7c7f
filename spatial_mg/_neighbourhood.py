"""A spot's neighbourhood: the mean of its values and those of the spots around it, section by section.

Metabolite fields are spatially smooth while single Visium spots are sparse samples of
their RNA; averaging each spot with its neighbours within a radius (in micrometres, so
the same on every section) gives a predictor the spot's context. Sections are never
mixed: their micrometre frames overlap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree


def neighbourhood_weights(coords_um: np.ndarray, radius_um: float, groups=None) -> sp.csr_matrix:
    """Row-normalised spots x spots weights: 1 for each spot within ``radius_um`` of a spot
    (itself included) in the same group, divided by their count.

    Parameters
    ----------
    coords_um
        ``(n, 2)`` spot centres in micrometres.
    radius_um
        Neighbourhood radius; Visium neighbours lie 100 um apart, so 150 takes the six of a
        hexagon.
    groups
        Per-spot section labels (spots of different sections are never neighbours); None:
        one section.
    """
    coords = np.asarray(coords_um, dtype=np.float64)[:, :2]
    if not (np.isfinite(radius_um) and radius_um >= 0):
        raise ValueError(f"radius_um must be a finite number >= 0, got {radius_um!r}.")
    n = len(coords)
    labels = np.zeros(n, dtype=np.int64) if groups is None else pd.factorize(np.asarray(groups))[0]
    rows, cols = [], []
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        pairs = cKDTree(coords[idx]).query_pairs(radius_um, output_type="ndarray")
        rows += [idx, idx[pairs[:, 0]], idx[pairs[:, 1]]]
        cols += [idx, idx[pairs[:, 1]], idx[pairs[:, 0]]]
    r, c = np.concatenate(rows), np.concatenate(cols)
    w = sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n, n))
    return sp.diags(1.0 / np.asarray(w.sum(axis=1)).ravel()) @ w


def neighbourhood_mean(values, coords_um: np.ndarray, radius_um: float, groups=None):
    """The mean of each spot's ``values`` (spots x features, dense or sparse) over its
    neighbourhood (:func:`neighbourhood_weights`); sparse in, sparse out."""
    w = neighbourhood_weights(coords_um, radius_um, groups)
    out = w @ values
    return out.tocsr() if sp.issparse(out) else np.asarray(out)
