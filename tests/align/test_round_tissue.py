"""A round tissue (a core or punch) under a raster that covers part of it: its outline cannot place the turn.

``register`` has only the outline to search with over the whole circle, and the content
refines a pose locally, so such a section can land hundreds of um off
(``benchmarks/results/alignment_notes.md``, the disc sweep). What must hold is that
the QC says so.
"""

from __future__ import annotations

import warnings

import numpy as np

import spatial_mg as smg
from spatial_mg.align import Pose


def test_a_round_tissue_registered_far_off_is_rated_low():
    s = smg.sim.synthetic_vicari(
        n_sections=1, seed=2, n_spots=300, n_genes=50, n_metabolites=10, tissue_outline="disc"
    ).sections[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = smg.align.register(s.rna, s.msi, device="cpu")
    tissue = s.msi.obs["in_tissue"].to_numpy(bool)
    pts = np.asarray(s.msi.obsm["spatial"], float)[tissue]
    error = float(np.median(np.linalg.norm(reg.transform(pts) - Pose(s.affine).apply(pts), axis=1)))
    assert error > 100.0  # the case this test is about (if registration learns to place discs, pick another)
    assert reg.qc.confidence == "low" and reg.qc.reason
