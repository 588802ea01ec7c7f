"""A round tissue (a core or punch) under a raster that covers part of it: its outline cannot place the turn.

The outline search lands such a section anywhere; ``register`` then searches the
content over every turn and shift (``_content_search``). Where the content is rich it
places the pose; the QC still says "low", naming the content as what placed it, because
the outline cannot confirm it (``benchmarks/results/alignment_notes.md``, the disc sweep).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import spatial_mg as smg
from spatial_mg.align import Pose
from spatial_mg.align._choose import Choice, Refined
from spatial_mg.align._content_search import outline_cannot_place
from spatial_mg.align._section import prepare_section
from spatial_mg.align._settle import Settled


def _error_um(reg, s) -> float:
    tissue = s.msi.obs["in_tissue"].to_numpy(bool)
    pts = np.asarray(s.msi.obsm["spatial"], float)[tissue]
    return float(np.median(np.linalg.norm(reg.transform(pts) - Pose(s.affine).apply(pts), axis=1)))


@pytest.fixture(scope="module")
def disc():
    return smg.sim.synthetic_vicari(
        n_sections=1, seed=0, n_spots=400, n_genes=300, n_metabolites=30, tissue_outline="disc"
    ).sections[0]


def test_the_content_places_a_round_tissue_the_outline_cannot(disc):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = smg.align.register(disc.rna, disc.msi, device="cpu")
    details = reg.qc.details
    assert "slides" in details["outline_unpinned"]  # the outline left the turn free
    assert details["content_search"].startswith("placed by the content")
    outline_share, content_share = details["content_search_explained"]
    assert content_share > outline_share + 0.05
    # the outlines' pose was far off (hundreds of um from where the content put it), the content's is close
    assert details["content_placed_um"] > 300.0
    assert _error_um(reg, disc) < 30.0
    # the outline cannot confirm it: rated low, and the reason says what placed it
    assert reg.qc.confidence == "low" and "the tissue's content placed it" in reg.qc.reason


def test_the_search_runs_only_where_the_outline_does_not_pin_the_pose(disc):
    section = prepare_section(disc.rna, disc.msi, msi_pixel_size_um=None, msi_mask=None, tic_threshold=None, tissue_image=None)
    pose = Pose(disc.affine)
    pinned = Refined(pose, "outline search", 0.9, 0.010)
    far_rival = Refined(Pose(np.diag([-1.0, 1.0, 1.0])) @ pose, "outline search (mirrored)", 0.9, 0.030)
    firm = Settled(pose, spread_um=5.0, slack_um=20.0)
    assert outline_cannot_place(firm, Choice(pinned, [pinned, far_rival], far_rival), section) is None
    loose = Settled(pose, spread_um=5.0, slack_um=150.0)
    assert "slides 150 um" in outline_cannot_place(loose, Choice(pinned, [pinned], None), section)
    spread = Settled(pose, spread_um=60.0, slack_um=20.0)
    assert "60 um apart" in outline_cannot_place(spread, Choice(pinned, [pinned], None), section)
    close_rival = Refined(far_rival.pose, far_rival.origin, 0.9, 0.011)  # mismatches only 10 % more
    reason = outline_cannot_place(firm, Choice(pinned, [pinned, close_rival], close_rival), section)
    assert "within 10%" in reason
