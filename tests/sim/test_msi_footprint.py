"""An MSI pixel integrates the tissue over its footprint: edge pixels carry partial-volume signal."""

from __future__ import annotations

import numpy as np

import spatial_mg as smg
from spatial_mg.align._intensity_scale import linear_intensities, pixel_signal
from spatial_mg.sim._msi import MsiRaster, footprint_cover


def test_cover_is_the_area_of_the_pixel_on_tissue():
    """A vertical edge at x = 1,000 um under a 75 um raster: covered share = clip(0.5 + (1000 - x) / 75)."""
    raster = MsiRaster(nx=30, ny=3, pitch_um=75.0, affine=np.eye(3))
    msi_um = raster.pixels() * 75.0
    x = msi_um[:, 0]

    def weight(u):
        return (u[:, 0] < 1000.0).astype(float)

    cover = footprint_cover(raster, msi_um, weight, 1000.0 - x)
    expected = np.clip(0.5 + (1000.0 - x) / 75.0, 0, 1)
    np.testing.assert_allclose(cover, expected, atol=1 / 8 + 1e-9)  # 8 samples per side
    partial = (expected > 0) & (expected < 1)
    assert partial.any() and np.all((cover[partial] > 0) & (cover[partial] < 1))


def test_generator_signal_follows_the_covered_share():
    """Edge pixels' signal rises with the share of their footprint on tissue, not with their centre alone."""
    msi = smg.sim.synthetic_vicari(n_sections=1, seed=2, n_genes=20, n_metabolites=10).sections[0].msi
    cover = msi.obs["tissue_cover"].to_numpy()
    inside = msi.obs["in_tissue"].to_numpy(bool)
    signal = pixel_signal(linear_intensities(msi)[0])
    edge = (cover > 0.05) & (cover < 0.95)
    assert edge.sum() > 50
    # pixels whose centre lies on tissue but that the tissue covers little (and the reverse)
    # exist only when the footprint is integrated
    assert np.any(inside & (cover < 0.7)) and np.any(~inside & (cover > 0.3))
    background = np.median(signal[cover < 0.001])
    tissue = np.median(signal[cover > 0.999])
    share = (signal[edge] - background) / (tissue - background)
    assert np.corrcoef(share, cover[edge])[0, 1] > 0.6
    # on average the signal is linear in the share covered
    low, high = cover[edge] < 0.35, cover[edge] > 0.65
    assert share[low].mean() < 0.35 and share[high].mean() > 0.6
