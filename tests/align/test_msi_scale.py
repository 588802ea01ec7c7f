"""Any MSI scale: raw, log1p or standardised intensities give the same tissue and the same pose."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import spatial_mg as smg
from spatial_mg.align import Pose, register
from spatial_mg.align._background import tissue_mask


@pytest.fixture(scope="module")
def section():
    return smg.sim.synthetic_vicari(n_sections=1, seed=5, n_spots=300, n_genes=20, n_metabolites=10).sections[0]


def _scaled(msi, how: str):
    out = msi.copy()
    x = np.asarray(msi.X, dtype=np.float64)
    if how == "log1p":
        x = np.log1p(x)
    elif how == "zscore":
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    elif how == "zscore_log1p":
        x = np.log1p(x)
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    out.X = x.astype(np.float32)
    return out


@pytest.mark.parametrize("how", ["log1p", "zscore"])
def test_scalings_find_the_same_tissue(section, how):
    """register reads the intensities only through this mask: the same mask, the same pose (below)."""
    raw = tissue_mask(section.msi)
    scaled = tissue_mask(_scaled(section.msi, how))
    np.testing.assert_array_equal(scaled.mask, raw.mask)
    truth = section.msi.obs["in_tissue"].to_numpy(bool)
    assert (scaled.mask == truth).mean() > 0.99


@pytest.mark.slow
def test_three_scalings_register_to_the_same_pose(section):
    tissue = section.msi.obs["in_tissue"].to_numpy(bool)
    pts = np.asarray(section.msi.obsm["spatial"], float)[tissue]
    truth = Pose(section.affine).apply(pts)
    regs = {how: register(section.rna, _scaled(section.msi, how), device="cpu", n_subsample=200) for how in ("raw", "log1p", "zscore")}
    assert (_scaled(section.msi, "zscore").X < 0).any()  # standardised really means negative numbers
    for how, reg in regs.items():
        np.testing.assert_array_equal(reg.msi_tissue, regs["raw"].msi_tissue)
        assert np.median(np.linalg.norm(reg.transform(pts) - regs["raw"].transform(pts), axis=1)) < 2.0, how
        assert np.median(np.linalg.norm(reg.transform(pts) - truth, axis=1)) < 40.0, how  # the right pose
    assert "expm1" in regs["log1p"].qc.details["background_rule"]
    assert "standardised" in regs["zscore"].qc.details["background_rule"]


def test_sparse_log1p_is_read_as_logs_and_left_as_it_is(section):
    msi = _scaled(section.msi, "log1p")
    msi.X = sp.csr_matrix(msi.X)
    before = msi.X.copy()
    found = tissue_mask(msi)
    assert "expm1" in found.rule
    assert (msi.X != before).nnz == 0  # the input is not modified
    np.testing.assert_array_equal(found.mask, tissue_mask(section.msi).mask)


def test_standardised_logs_say_what_to_pass(section):
    with pytest.raises(ValueError, match=r"standardised log intensities.*layers\['raw'\]"):
        tissue_mask(_scaled(section.msi, "zscore_log1p"))
    # with the raw intensities kept beside them, the split reads those
    msi = _scaled(section.msi, "zscore_log1p")
    msi.layers["raw"] = np.asarray(section.msi.X)
    np.testing.assert_array_equal(tissue_mask(msi).mask, tissue_mask(section.msi).mask)


def test_per_pixel_normalised_values_say_what_to_pass(section):
    msi = section.msi.copy()
    x = np.asarray(msi.X, dtype=np.float64) + 1.0
    msi.X = (x / x.sum(axis=1, keepdims=True)).astype(np.float32)
    with pytest.raises(ValueError, match="normalised per pixel"):
        tissue_mask(msi)
    msi.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        tissue_mask(msi)
