"""Even subsampling keeps about n points, spread over the whole area."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from spatial_mg.align._subsample import even_subsample, median_spacing


def test_keeps_about_n_spread_evenly():
    rng = np.random.default_rng(0)
    # dense on the left, sparse on the right: a random subsample would follow the density
    pts = np.vstack([rng.uniform([0, 0], [1000, 2000], (20000, 2)), rng.uniform([1000, 0], [2000, 2000], (2000, 2))])
    idx = even_subsample(pts, 400)
    assert 360 <= idx.size <= 440
    assert np.unique(idx).size == idx.size
    left = (pts[idx, 0] < 1000).mean()
    assert 0.4 < left < 0.6  # even in space, not in density (the input is 91 % left)
    # every input point has a kept one nearby: no holes
    d, _ = cKDTree(pts[idx]).query(pts)
    assert d.max() < 3 * np.sqrt(2000 * 2000 / 400)


def test_small_inputs_are_kept_and_result_is_deterministic():
    pts = np.random.default_rng(1).normal(size=(50, 2))
    np.testing.assert_array_equal(even_subsample(pts, 100), np.arange(50))
    big = np.random.default_rng(2).normal(size=(5000, 2))
    np.testing.assert_array_equal(even_subsample(big, 300), even_subsample(big, 300))


def test_median_spacing_of_a_lattice():
    g = np.stack(np.meshgrid(np.arange(20), np.arange(20)), -1).reshape(-1, 2) * 75.0
    assert median_spacing(g) == 75.0
