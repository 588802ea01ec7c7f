"""MSI edge pixels count by the share of them the tissue covers, read from their own signal."""

from __future__ import annotations

import numpy as np
import pytest

import spatial_mg as smg
from spatial_mg.align._background import tissue_mask
from spatial_mg.align._partial_volume import edge_shares
from spatial_mg.align._section import prepare_section


def _raster(n: int = 24) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    return np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float64)


def test_shares_of_a_straight_edge_are_the_covered_area():
    """Noise-free raster: a tilted straight edge, a tissue level that rises across the raster.

    Each pixel's signal is background + share x (local tissue level - background), with
    the share the exact area of the pixel square left of the edge; the shares read back
    must be those areas, whatever the local tissue brightness.
    """
    points = _raster()
    normal = np.array([np.cos(0.3), np.sin(0.3)])
    # signed distance of each pixel centre to the edge, in pixels (positive: tissue side)
    depth = 10.3 - points @ normal
    # area share of a unit square cut by the edge, by fine sampling
    sub = (np.arange(40) + 0.5) / 40 - 0.5
    offsets = np.column_stack([a.ravel() for a in np.meshgrid(sub, sub)])
    area = ((depth[:, None] - offsets @ normal) > 0).mean(axis=1)
    level = 100.0 * (1 + 0.04 * points[:, 1])  # tissue brightness varies with content
    signal = 5.0 + area * (level - 5.0)
    mask = area > 0.5
    share = edge_shares(points, signal, mask)
    edge = (area > 0) & (area < 1)
    assert edge.sum() > 20
    np.testing.assert_allclose(share[edge], area[edge], atol=0.03)
    # away from the edge: exactly the class
    far = np.abs(depth) > 2
    np.testing.assert_array_equal(share[far], mask[far].astype(float))
    # the 0 / 1 mask is off by up to half a pixel's area on every edge pixel
    assert np.abs(mask[edge] - area[edge]).mean() > 3 * np.abs(share[edge] - area[edge]).mean()


def test_shares_are_left_alone_without_both_classes():
    points = _raster(6)
    signal = np.full(len(points), 10.0)
    np.testing.assert_array_equal(edge_shares(points, signal, np.ones(len(points), bool)), 1.0)
    np.testing.assert_array_equal(edge_shares(points, signal, np.zeros(len(points), bool)), 0.0)


@pytest.fixture(scope="module")
def section():
    return smg.sim.synthetic_vicari(n_sections=1, seed=4, n_genes=20, n_metabolites=10).sections[0]


def test_generator_edge_pixels_are_read_at_their_covered_share(section):
    """The generator's edge pixels integrate the tissue over their footprint; the background rule reads that back.

    Against the generator's truth (``obs["tissue_cover"]``), the shares are far closer on
    the edge pixels than the 0 / 1 mask; the input is left as it was.
    """
    msi = section.msi
    before = msi.X.copy()
    cover = msi.obs["tissue_cover"].to_numpy()
    found = tissue_mask(msi)
    assert found.share is not None and "partial-volume" in found.share_rule
    edge = (cover > 0.02) & (cover < 0.98)
    assert edge.sum() > 50
    soft = np.abs(found.share[edge] - cover[edge]).mean()
    hard = np.abs(found.mask[edge] - cover[edge]).mean()
    assert soft < 0.12 and soft < 0.5 * hard, (soft, hard)
    # the tissue's total area as the shares count it: within 2 % of the truth
    assert abs(found.share.sum() - cover.sum()) < 0.02 * cover.sum()
    np.testing.assert_array_equal(msi.X, before)


def test_no_intensities_or_a_given_mask_keep_the_hard_edge_and_say_so(section):
    """Where the split cannot read raw intensities, the outline stays 0 / 1 and the QC details say why."""
    rna, msi = section.rna, section.msi
    kw = {"msi_pixel_size_um": None, "tic_threshold": None, "tissue_image": None}
    soft = prepare_section(rna, msi, msi_mask=None, **kw)
    assert soft.details()["msi_edge_source"] == "partial volume"
    assert soft.msi_edge_share is not None and ((soft.msi_edge_share > 0) & (soft.msi_edge_share < 1)).sum() > 50

    geometry = prepare_section(rna, msi[:, []].copy(), msi_mask=None, **kw)
    assert geometry.msi_edge_share is None
    assert geometry.details()["msi_edge_source"] == "0 / 1"
    assert "no MSI intensities" in geometry.details()["msi_edge"]

    given = prepare_section(rna, msi, msi_mask="in_tissue", **kw)
    assert given.msi_edge_share is None and "a given mask" in given.details()["msi_edge"]

    hard = prepare_section(rna, msi, msi_mask=None, msi_edge="hard", **kw)
    assert hard.msi_edge_share is None and "msi_edge='hard'" in hard.details()["msi_edge"]


def test_msi_edge_option_is_checked(section):
    with pytest.raises(ValueError, match="msi_edge must be one of"):
        smg.align.register(section.rna, section.msi, msi_edge="fuzzy")


def test_outline_refinement_reads_the_shares(section):
    """Drawn with the true shares, the MSI outline pins the pose far closer to the truth than at 0 / 1.

    The outline objective refitted from the true pose: its optimum lies where the outlines
    agree best. With the generator's true shares (``tissue_cover``) it lies within a few
    um; with the 0 / 1 edge several times farther. Fails if the aligner ignored the shares.
    """
    from dataclasses import replace

    from spatial_mg.align import Pose
    from spatial_mg.align._refine import MaskAligner

    rna, msi = section.rna, section.msi
    kw = {"msi_pixel_size_um": None, "tic_threshold": None, "tissue_image": "auto"}
    prepared = prepare_section(rna, msi, msi_mask=None, **kw)
    cover = msi.obs["tissue_cover"].to_numpy()
    xy = np.asarray(msi.obsm["spatial"], float)
    some = cover > 1e-3
    truth = Pose(section.affine)
    pts = xy[msi.obs["in_tissue"].to_numpy(bool)]

    def error(sec) -> float:
        pose = MaskAligner.for_section(sec).refine(truth)
        return float(np.median(np.linalg.norm(pose.apply(pts) - truth.apply(pts), axis=1)))

    hard = error(replace(prepared, msi_edge_um=None, msi_edge_share=None))
    true_shares = error(replace(prepared, msi_edge_um=xy[some], msi_edge_share=cover[some]))
    assert true_shares < 5.0 and true_shares < 0.6 * hard, (true_shares, hard)
