"""An MSI acquisition that covers only part of the tissue, with or without empty spectra beyond its edge."""

from __future__ import annotations

import numpy as np
import pytest

import spatial_mg as smg
from spatial_mg.align import Pose, register
from spatial_mg.align._acquired import acquired_pixels
from spatial_mg.align._section import prepare_section


@pytest.fixture(scope="module")
def zero_filled():
    """75 % of the tissue acquired; the rest of the raster kept as empty spectra (TIC 0)."""
    return smg.sim.synthetic_vicari(
        n_sections=1, seed=6, n_spots=300, n_genes=20, n_metabolites=10, msi_coverage=0.75, msi_keep_unacquired=True
    ).sections[0]


def test_empty_spectra_are_not_acquired(zero_filled):
    truth = zero_filled.msi.obs["acquired"].to_numpy(bool)
    assert 0 < (~truth).sum() < truth.sum()  # the raster really holds unacquired pixels
    found, rule = acquired_pixels(zero_filled.msi)
    np.testing.assert_array_equal(found, truth)
    assert "not acquired" in rule
    # without obs["tic"], a pixel with no signal in any feature
    no_tic = zero_filled.msi.copy()
    del no_tic.obs["tic"]
    np.testing.assert_array_equal(acquired_pixels(no_tic)[0], truth)


def test_the_msi_window_ends_at_the_acquisition_edge(zero_filled):
    msi = zero_filled.msi
    section = prepare_section(zero_filled.rna, msi, msi_pixel_size_um=None, msi_mask=None, tic_threshold=None)
    truth = msi.obs["acquired"].to_numpy(bool)
    xy = np.asarray(msi.obsm["spatial"], float)
    inside = section.msi_window.contains(xy)
    assert inside[truth].all()
    # unacquired pixels more than a pixel beyond the edge are outside where the MSI measured
    from scipy.spatial import cKDTree

    gap, _ = cKDTree(xy[truth]).query(xy[~truth])
    assert not inside[~truth][gap > 1.5 * zero_filled.pixel_size_um].any()
    assert not section.tissue.mask[~truth].any()


def test_partial_zero_filled_section_registers(zero_filled):
    msi = zero_filled.msi
    tissue = msi.obs["in_tissue"].to_numpy(bool) & msi.obs["acquired"].to_numpy(bool)
    pts = np.asarray(msi.obsm["spatial"], float)[tissue]
    reg = register(zero_filled.rna, msi, device="cpu", n_subsample=200)
    err = np.median(np.linalg.norm(reg.transform(pts) - Pose(zero_filled.affine).apply(pts), axis=1))
    assert err < 40.0  # the right pose (counting the empty pixels as measured put a 700-spot section 1.8 mm off)
    assert reg.qc.confidence == "high", reg.qc.reason
    assert "not acquired" in reg.qc.details["msi_acquired"]
