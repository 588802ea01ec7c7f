"""paired_truth: each spot with a noisy observation of its true metabolites, as a perfect alignment would pair them."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_mg.sim import paired_truth, synthetic_vicari


@pytest.fixture(scope="module")
def data():
    return synthetic_vicari(n_sections=2, n_spots=150, n_genes=30, n_metabolites=6, msi_pitch_um=150, seed=2)


def test_one_row_per_spot_of_the_chosen_sections_in_order(data):
    m = paired_truth(data, sections=[1, 0])
    a, b = data.sections[1], data.sections[0]
    assert list(m.mod) == ["rna", "msi"] and m.n_obs == a.rna.n_obs + b.rna.n_obs
    assert list(m["rna"].obs_names[:3]) == [f"{n}-S2" for n in a.rna.obs_names[:3]]  # barcodes repeat: suffixed
    assert m["rna"].obs_names.equals(m["msi"].obs_names)
    assert (m["rna"].X[: a.rna.n_obs] != a.rna.X).nnz == 0  # raw counts, untouched
    assert list(m.obs["section"].unique()) == ["S2", "S1"]
    np.testing.assert_array_equal(m["msi"].var["mz"], data.mz)


def test_intensities_scatter_around_the_true_means_and_x_is_log1p(data):
    m = paired_truth(data, sections=[0], seed=5)
    means = np.asarray(data.sections[0].metabolite_means.X, dtype=np.float64)
    intensity = m["msi"].layers["raw"]
    np.testing.assert_allclose(m["msi"].X, np.log1p(intensity), rtol=1e-6)
    ratio = intensity.sum(axis=0) / means.sum(axis=0)  # the noise factors have mean 1
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    raw = paired_truth(data, sections=[0], seed=5, log1p=False)
    np.testing.assert_array_equal(raw["msi"].X, intensity)
    assert not np.array_equal(paired_truth(data, sections=[0], seed=6)["msi"].X, m["msi"].X)


def test_inputs_are_not_modified(data):
    before = data.sections[0].rna.copy(), data.sections[0].metabolite_means.copy()
    paired_truth(data)
    assert (data.sections[0].rna.X != before[0].X).nnz == 0 and data.sections[0].rna.obs.equals(before[0].obs)
    np.testing.assert_array_equal(data.sections[0].metabolite_means.X, before[1].X)
