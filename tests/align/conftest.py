"""Fixtures for the registration tests (helpers in align_data.py)."""

from __future__ import annotations

import pytest
from align_data import make_pair

from spatial_mg.align import Pose


@pytest.fixture(scope="session")
def mirrored_pair():
    """A mirrored, turned, slightly shrunk MSI raster over the blob; its true transform."""
    affine = Pose.similarity(0.96, 117.0, True, (300.0, 5200.0))
    rna, msi = make_pair(affine)
    return rna, msi, affine


@pytest.fixture(scope="session")
def mirrored_registration(mirrored_pair):
    from spatial_mg.align import register

    rna, msi, _ = mirrored_pair
    return register(rna, msi, device="cpu", n_subsample=250)
