"""A coupling without optimal transport: each pixel to its nearest spot under the outline search's best pose.

The ablation of moscot (``register(coupling="nearest")``, ``benchmarks/alignment.py
--ablate``): the same subsamples and the same fits as :func:`couple`, but the plan pairs
every sampled MSI pixel with the sampled spot nearest to where the coarse pose puts it.
What the registration gains from moscot is the difference between the two.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.spatial import cKDTree

from ._candidates import Coupling
from ._moscot import GWSolution, TransportSettings
from ._pose import Pose
from ._procrustes import fit_plan
from ._section import Section
from ._subsample import even_subsample

# a pixel farther than this many coarser pitches from any spot under the coarse pose has
# no counterpart (it lies where the spots did not measure) and gets no plan mass
_REACH_PITCHES = 1.5


def nearest_coupling(section: Section, coarse: Pose, settings: TransportSettings, *, scale: bool) -> tuple[Coupling, dict]:
    """The nearest-neighbour plan under ``coarse`` on :func:`couple`'s subsamples, its fits and QC details."""
    start = time.perf_counter()
    msi_index = even_subsample(section.msi_um, settings.n_subsample)
    rna_index = even_subsample(section.rna_um, settings.n_subsample)
    msi_points, rna_points = section.msi_um[msi_index], section.rna_um[rna_index]
    dist, nearest = cKDTree(rna_points).query(coarse.apply(msi_points))
    near = dist <= _REACH_PITCHES * section.pitch
    if near.sum() < 3:
        near[:] = True  # the coarse pose overlaps nothing: pair every pixel rather than none
    plan = np.zeros((len(msi_index), len(rna_index)))
    plan[np.flatnonzero(near), nearest[near]] = 1.0 / near.sum()
    fit = fit_plan(msi_points, rna_points, plan, reflection=coarse.reflection, scale=scale)
    mirrored = fit_plan(msi_points, rna_points, plan, reflection=not coarse.reflection, scale=scale)
    seconds = time.perf_counter() - start
    solution = GWSolution(plan=plan, converged=True, cost=float("nan"), seconds=seconds, device="none")
    info = {
        "coupling": "nearest",
        "n_gw_msi": len(msi_index),
        "n_gw_rna": len(rna_index),
        "fused": False,
        "gw_seconds": seconds,
        "plan_fit": fit.parts(),
    }
    return Coupling(plan, msi_index, rna_index, msi_points, rna_points, fit, mirrored, solution), info
