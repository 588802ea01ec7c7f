"""register(): the pose is recovered over the whole circle, mirrored or not, with partial overlap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from align_data import make_pair, median_error

import spatial_mg as smg
from spatial_mg.align import Pose, RegistrationResult, register


def test_mirrored_turned_shrunk_raster(mirrored_pair, mirrored_registration):
    rna, msi, affine = mirrored_pair
    reg = mirrored_registration
    assert reg.method == "moscot"
    assert median_error(reg, msi, affine) < 10.0
    assert reg.qc.reflection
    assert reg.qc.scale == pytest.approx(0.96, abs=0.01)
    assert reg.qc.confidence == "high", reg.qc.reason
    assert reg.qc.matched_fraction > 0.95
    # the plan moscot returned is kept (MSI subsample x STR subsample) with its row indices
    assert reg.plan.shape == (len(reg.plan_msi_index), len(reg.plan_rna_index))
    assert reg.msi_tissue[reg.plan_msi_index].all()


def test_near_half_turn_with_partial_overlap():
    """A 178 degree turn and a raster that misses a third of the tissue."""
    affine = Pose.similarity(1.03, 178.0, False, (5600.0, 5300.0))
    rna, msi = make_pair(affine, raster_keep=0.65)
    reg = register(rna, msi, device="cpu", n_subsample=250)
    # the right pose (a wrong turn or mirror is hundreds of um off); the precision left is
    # what a third of a small blob's outline, sampled at a 100 um spot pitch, pins down
    assert median_error(reg, msi, affine) < 30.0
    assert not reg.qc.reflection
    assert reg.qc.overlap_fraction < 0.9  # the raster really misses part of the spots
    assert reg.qc.matched_fraction > 0.95


@pytest.mark.parametrize(
    ("seed", "kwargs"),
    [
        (3, {"n_genes": 20, "msi_reflect": True}),  # mirrored, turned 146 degrees
        # unmirrored, turned 42 degrees, a nearly mirror-symmetric outline: the mirrored pose
        # matches as many pixels and spots, only the mask mismatch tells them apart
        (2, {"n_genes": 50}),
    ],
)
def test_synthetic_vicari_sections(seed, kwargs):
    section = smg.sim.synthetic_vicari(n_sections=1, seed=seed, n_metabolites=10, **kwargs).sections[0]
    reg = register(section.rna, section.msi, device="cpu", n_subsample=300)
    tissue = section.msi.obs["in_tissue"].to_numpy(bool)
    pts = np.asarray(section.msi.obsm["spatial"])[tissue]
    err = np.linalg.norm(reg.transform(pts) - Pose(section.affine).apply(pts), axis=1)
    assert np.median(err) < 40.0  # the right pose; the 10-seed precision: benchmarks/alignment.py
    assert reg.qc.reflection == Pose(section.affine).reflection
    assert reg.qc.confidence == "high", reg.qc.reason


def test_shared_features_use_fused_gw(mirrored_pair):
    rna, msi, affine = mirrored_pair
    rna = rna.copy()
    msi = msi.copy()
    # an "image intensity" sampled at both: a smooth gradient across the tissue
    rna.obs["image"] = rna.obsm["spatial"][:, 0] + 0.5 * rna.obsm["spatial"][:, 1]
    true_pos = affine.apply(msi.obsm["spatial"])
    msi.obs["image"] = true_pos[:, 0] + 0.5 * true_pos[:, 1]
    reg = register(rna, msi, shared_features="image", device="cpu", n_subsample=200)
    assert reg.qc.details["fused"]
    assert median_error(reg, msi, affine) < 10.0
    # a fused plan already lands on the right pose
    assert reg.qc.details["plan_agreement"] > 0.5
    with pytest.raises(KeyError, match="neither an obsm key nor an obs column"):
        register(rna, msi, shared_features="nope")


def test_affine_option(mirrored_pair):
    """(refine_fit=False: tests/align/test_qc_any_path.py.)"""
    rna, msi, affine = mirrored_pair
    full = register(rna, msi, transform="affine", device="cpu", n_subsample=200)
    assert full.qc.anisotropy < 1.02  # a similarity truly: the affine adds no stretch
    assert median_error(full, msi, affine) < 12.0


def test_result_round_trips_through_json(mirrored_registration):
    reg = mirrored_registration
    text = reg.to_json()
    json.loads(text)
    back = RegistrationResult.from_json(text)
    np.testing.assert_array_equal(back.affine, reg.affine)
    np.testing.assert_array_equal(back.msi_tissue, reg.msi_tissue)
    assert back.qc.confidence == reg.qc.confidence and back.plan is None
    with_plan = RegistrationResult.from_dict(reg.to_dict(include_plan=True))
    np.testing.assert_allclose(with_plan.plan, reg.plan)
    pts = np.array([[0.0, 0.0], [100.0, 50.0]])
    np.testing.assert_allclose(reg.inverse_transform(reg.transform(pts)), pts, atol=1e-8)


def test_device_choice_is_checked(mirrored_pair):
    rna, msi, _ = mirrored_pair
    import jax

    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="device='cpu'"):
        register(rna, msi, device="gpu")
