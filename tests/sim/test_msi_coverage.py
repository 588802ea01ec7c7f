"""synthetic_vicari(msi_coverage=...): an MSI acquisition cut along one straight edge to cover part of the tissue."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import Delaunay

from spatial_mg.align import Pose
from spatial_mg.sim import synthetic_vicari


def _section(coverage, seed=3):
    return synthetic_vicari(n_sections=1, n_spots=400, n_genes=20, n_metabolites=5, msi_coverage=coverage, seed=seed).sections[0]


def _spots_under_raster(section) -> float:
    """Share of the in-tissue spots whose true place in the MSI frame lies inside the acquired pixels' hull."""
    spots = Pose(section.affine).inverse().apply(np.asarray(section.rna.obsm["spatial"], float))
    hull = Delaunay(np.asarray(section.msi.obsm["spatial"], float))
    return float((hull.find_simplex(spots) >= 0).mean())


@pytest.mark.parametrize("coverage", [0.7, 0.85])
def test_acquisition_covers_the_asked_share_of_the_tissue(coverage):
    s = _section(coverage)
    # the spots sample the tissue's area evenly; the pixel hull lies half a pixel inside the edge
    assert abs(_spots_under_raster(s) - coverage) < 0.04
    # cut along one straight edge: the raster positions not acquired lie wholly outside the acquired ones' hull
    xy = s.msi.obs[["x", "y"]].to_numpy()
    grid = np.stack(np.meshgrid(np.arange(1, xy[:, 0].max() + 1), np.arange(1, xy[:, 1].max() + 1)), -1).reshape(-1, 2)
    acquired = {tuple(p) for p in xy}
    missing = np.array([p for p in grid if tuple(p) not in acquired])
    assert len(missing) > 0
    assert (Delaunay(xy.astype(float)).find_simplex(missing.astype(float)) < 0).all()
    # background is still there to remove, and the truth columns follow the cut
    on = s.msi.obs["in_tissue"].to_numpy(bool)
    assert 0.1 < 1 - on.mean() < 0.7
    assert len(s.noise_intensities) == s.msi.n_obs


def test_full_coverage_holds_the_whole_tissue():
    assert _spots_under_raster(_section(1.0)) == 1.0
    assert _spots_under_raster(_section(None)) < 0.97  # the default raster stays off-centre


@pytest.mark.parametrize("bad", [0.0, 1.2, float("nan")])
def test_bad_coverage_is_refused(bad):
    with pytest.raises(ValueError, match="msi_coverage"):
        synthetic_vicari(n_sections=1, n_spots=100, n_genes=20, n_metabolites=5, msi_coverage=bad)
