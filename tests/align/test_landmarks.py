"""method='landmarks': the fit through user point pairs, with its residual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spatial_mg.align import register

from align_data import median_error


def test_landmarks_recover_the_transform(mirrored_pair):
    rna, msi, affine = mirrored_pair
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 2000, size=(6, 2))
    dst = affine.apply(src) + rng.normal(0, 3.0, size=(6, 2))  # a few um of placement error
    reg = register(rna, msi, method="landmarks", landmarks=(src, dst))
    assert reg.method == "landmarks"
    assert median_error(reg, msi, affine) < 10
    assert reg.qc.reflection and reg.qc.confidence == "high"
    assert 1.0 < reg.qc.residual_um < 8.0  # RMS of the 3 um scatter
    assert len(reg.qc.details["landmark_loo_um"]) == 6


def test_landmark_table_and_affine(mirrored_pair):
    rna, msi, affine = mirrored_pair
    src = np.array([[0, 0], [1500, 100], [200, 1800], [1400, 1600]], float)
    dst = affine.apply(src)
    table = pd.DataFrame(np.hstack([src, dst]), columns=["msi_x", "msi_y", "rna_x", "rna_y"])
    reg = register(rna, msi, method="landmarks", landmarks=table, transform="affine")
    np.testing.assert_allclose(reg.affine, affine, atol=1e-6)
    assert reg.qc.residual_um == pytest.approx(0.0, abs=1e-6)
