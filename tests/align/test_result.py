"""RegistrationResult carries its frame: pixel size, MSI micrometres, the pair it was made for; old JSON still reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from align_data import make_pair

from spatial_mg.align import Pose, RegistrationQC, RegistrationResult, pair, register, to_spatialdata

# Written by spatial_mg at 69729af (before Pose): a landmark registration of
# make_pair(AFFINE, pitch=100, radius=700) through LANDMARKS.
OLD_JSON = Path(__file__).parent / "data" / "registration_before_pose.json"
AFFINE = Pose.similarity(0.97, -65.0, True, (4000.0, 1000.0))
LANDMARKS = np.array([[0, 0], [1000, 0], [0, 1000], [800, 900]], float)


@pytest.fixture(scope="module")
def registered():
    rna, msi = make_pair(AFFINE, pitch=100.0, radius=700.0)
    reg = register(rna, msi, method="landmarks", landmarks=(LANDMARKS, AFFINE.apply(LANDMARKS)))
    return rna, msi, reg


def test_the_frame_is_on_the_result(registered):
    rna, msi, reg = registered
    assert isinstance(reg.pose, Pose) and reg.msi_pixel_size_um == 100.0
    np.testing.assert_array_equal(reg.affine, reg.pose.matrix)
    reg.affine[0, 2] += 1.0  # a copy: the registration does not move
    np.testing.assert_array_equal(reg.affine, reg.pose.matrix)
    np.testing.assert_array_equal(reg.msi_um(msi), msi.obsm["spatial"])
    np.testing.assert_allclose(reg.registered_msi_um(msi), AFFINE.apply(msi.obsm["spatial"]), atol=1e-6)
    np.testing.assert_array_equal(reg.rna_um(rna), rna.obsm["spatial"])
    assert reg.distance_to(AFFINE, msi.obsm["spatial"]).max() < 1e-6
    assert reg.distance_to(AFFINE.matrix, msi.obsm["spatial"]).max() < 1e-6  # a bare matrix too


def test_check_pair_refuses_other_objects(registered):
    rna, msi, reg = registered
    reg.check_pair(rna, msi)
    reg.check_pair(rna.copy(), msi.copy())  # copies are the same objects as far as pairing goes
    with pytest.raises(ValueError, match="for 182 spots and 500 MSI pixels, but rna has 10"):
        reg.check_pair(rna[:10].copy(), msi)
    # same sizes, other spots: only the obs names tell
    renamed = rna.copy()
    renamed.obs_names = [f"other_{i}" for i in range(rna.n_obs)]
    with pytest.raises(ValueError, match="obs names of rna are not those registered"):
        reg.check_pair(renamed, msi)
    # the same pixels in another order would put the tissue mask on the wrong pixels
    shuffled = msi[np.random.default_rng(0).permutation(msi.n_obs)].copy()
    for attempt in (
        lambda: reg.check_pair(rna, shuffled),
        lambda: pair(rna, shuffled, reg),
        lambda: to_spatialdata(rna, shuffled, reg),
    ):
        with pytest.raises(ValueError, match="obs names of msi are not those registered"):
            attempt()


def test_json_keeps_the_frame(registered):
    rna, msi, reg = registered
    data = json.loads(reg.to_json())
    assert data["msi_pixel_size_um"] == 100.0 and data["pose"]["reflection"] is True
    back = RegistrationResult.from_json(reg.to_json())
    assert back.pose == reg.pose and back.msi_pixel_size_um == reg.msi_pixel_size_um
    assert (back.rna_fingerprint, back.msi_fingerprint) == (reg.rna_fingerprint, reg.msi_fingerprint)
    renamed = rna.copy()
    renamed.obs_names = [f"other_{i}" for i in range(rna.n_obs)]
    with pytest.raises(ValueError, match="obs names of rna"):
        back.check_pair(renamed, msi)


def test_json_of_the_version_before_pose_still_reads_and_pairs(registered):
    rna, msi, reg = registered
    old = RegistrationResult.from_json(OLD_JSON.read_text())
    assert "pose" not in json.loads(OLD_JSON.read_text())
    np.testing.assert_allclose(old.pose.matrix, AFFINE.matrix, atol=1e-9)
    assert old.msi_pixel_size_um == 100.0  # from the QC details, where that version kept it
    assert old.rna_fingerprint is None and old.msi_fingerprint is None
    old.check_pair(rna, msi)  # sizes only
    np.testing.assert_array_equal(old.msi_tissue, reg.msi_tissue)
    np.testing.assert_allclose(pair(rna, msi, old)["msi"].X, pair(rna, msi, reg)["msi"].X, rtol=1e-6)
    with pytest.raises(ValueError, match="pair the same objects"):
        pair(rna[:10].copy(), msi, old)


def test_a_result_built_by_hand():
    qc = RegistrationQC(1.0, 1.0, 0.0, 1.0, 30.0, False, 1.0, "high", "", {"msi_pixel_size_um": 50.0})
    positional = RegistrationResult(Pose.similarity(1.0, 30.0).matrix, "given", qc)  # a matrix is taken too
    assert isinstance(positional.pose, Pose) and positional.msi_pixel_size_um == 50.0
    bare = RegistrationQC(1.0, 1.0, 0.0, 1.0, 30.0, False, 1.0, "high", "", {})
    assert RegistrationResult(Pose.identity(), "given", bare, msi_pixel_size_um=20).msi_pixel_size_um == 20.0
    with pytest.raises(ValueError, match="needs the MSI pixel size"):
        RegistrationResult(Pose.identity(), "given", bare)
