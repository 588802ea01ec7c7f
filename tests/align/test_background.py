"""The background rule finds the tissue pixels, and the user can override it."""

from __future__ import annotations

import numpy as np
import pytest

import spatial_mg as smg
from spatial_mg.align._background import tissue_mask


@pytest.fixture(scope="module")
def section():
    return smg.sim.synthetic_vicari(n_sections=1, seed=4, n_genes=20, n_metabolites=10).sections[0]


def test_default_rule_matches_the_true_tissue(section):
    truth = section.msi.obs["in_tissue"].to_numpy(bool)
    found = tissue_mask(section.msi)
    assert 0.2 < truth.mean() < 0.9  # the raster really has background to remove
    assert (found.mask == truth).mean() > 0.99
    # the half-maximum edge: neither a rim of extra pixels nor a lost one
    assert abs(int(found.mask.sum()) - int(truth.sum())) <= 0.01 * truth.sum()
    assert found.threshold is not None and "Otsu" in found.rule


def test_whole_spectrum_tic_is_not_used(section):
    """Off-tissue matrix peaks make obs['tic'] useless; the rule reads the features."""
    msi = section.msi.copy()
    msi.obs["tic"] = 1.0
    truth = msi.obs["in_tissue"].to_numpy(bool)
    assert (tissue_mask(msi).mask == truth).mean() > 0.99


def test_overrides(section):
    msi = section.msi
    custom = np.zeros(msi.n_obs, bool)
    custom[:10] = True
    assert tissue_mask(msi, mask=custom).mask.sum() == 10
    assert tissue_mask(msi, mask="in_tissue").mask.sum() == msi.obs["in_tissue"].sum()
    total = np.asarray(msi.X.sum(axis=1)).ravel()
    threshold = float(np.median(total))
    assert tissue_mask(msi, threshold=threshold).mask.sum() == (total > threshold).sum()
    with pytest.raises(ValueError, match="one per MSI pixel"):
        tissue_mask(msi, mask=custom[:5])
    with pytest.raises(KeyError, match="not a column"):
        tissue_mask(msi, mask="nope")
    with pytest.raises(ValueError, match="either"):
        tissue_mask(msi, mask=custom, threshold=1.0)


def test_geometry_only_and_all_tissue(section):
    geometry = section.msi[:, []].copy()
    assert tissue_mask(geometry).mask.all()
    tissue_only = section.msi[section.msi.obs["in_tissue"].to_numpy(bool)].copy()
    kept = tissue_mask(tissue_only)
    assert kept.mask.mean() > 0.99  # unimodal: no threshold cuts real tissue in half
    assert "not bimodal" in kept.rule
