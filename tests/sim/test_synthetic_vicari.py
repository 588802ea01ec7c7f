"""The synthetic Vicari generator: its biology, geometry and truth (files: test_synthetic_vicari_files.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from spatial_mg.sim import synthetic_vicari

LIBRARY_SIZES = (1000.0, 3000.0, 2000.0)


@pytest.fixture(scope="module")
def data():
    return synthetic_vicari(n_spots=500, n_genes=150, n_metabolites=20, library_size=LIBRARY_SIZES, seed=0)


def _to_str(section, xy_msi: np.ndarray) -> np.ndarray:
    a = section.affine
    return xy_msi @ a[:2, :2].T + a[:2, 2]


def test_same_seed_same_data_other_seed_differs(data):
    kwargs = dict(n_spots=500, n_genes=150, n_metabolites=20, library_size=LIBRARY_SIZES)
    again = synthetic_vicari(**kwargs, seed=0)
    other = synthetic_vicari(n_sections=1, **{**kwargs, "library_size": 1000.0}, seed=1)
    for s, t in zip(data.sections, again.sections, strict=True):
        assert (s.rna.X != t.rna.X).nnz == 0
        assert s.rna.obs_names.equals(t.rna.obs_names)
        np.testing.assert_array_equal(s.msi.X, t.msi.X)
        np.testing.assert_array_equal(s.affine, t.affine)
        np.testing.assert_array_equal(s.metabolite_means.X, t.metabolite_means.X)
    s, u = data.sections[0], other.sections[0]
    assert not np.allclose(s.affine, u.affine)
    assert s.rna.shape != u.rna.shape or (s.rna.X != u.rna.X).nnz > 0
    assert not np.array_equal(data.mz, other.mz)


def test_sizes_follow_arguments(data):
    assert len(data.sections) == 3
    assert [s.name for s in data.sections] == ["S1", "S2", "S3"]
    for s in data.sections:
        assert 400 <= s.rna.n_obs <= 600  # n_spots is approximate: it sets the tissue area
        assert s.rna.n_vars == 150 and s.msi.n_vars == 20
        assert s.metabolite_means.shape == (s.rna.n_obs, 20)
        assert s.metabolite_means.obs_names.equals(s.rna.obs_names)
        assert s.metabolite_means.var_names.equals(s.msi.var_names)


def test_visium_grid_geometry(data):
    s = data.sections[0]
    row, col = s.capture_area["array_row"].to_numpy(), s.capture_area["array_col"].to_numpy()
    assert np.all((row + col) % 2 == 0)
    assert row.max() == 77 and col.max() == 127 and len(row) == 4992  # a whole 6.5 mm capture area
    assert s.capture_area.index.is_unique
    assert s.capture_area["in_tissue"].sum() == s.rna.n_obs
    assert 0.05 < s.rna.n_obs / len(row) < 0.5  # the tissue does not fill the capture area
    dist, _ = cKDTree(s.rna.obsm["spatial"]).query(s.rna.obsm["spatial"], k=2)
    np.testing.assert_allclose(np.median(dist[:, 1]), 100.0, atol=0.5)  # 100 um pitch


def test_counts_are_integers_with_section_library_sizes_and_batch_effects(data):
    for s, expected in zip(data.sections, LIBRARY_SIZES, strict=True):
        x = s.rna.X
        assert np.issubdtype(x.dtype, np.integer) and x.data.min() >= 0
        assert 0.2 < 1 - x.nnz / np.prod(x.shape) < 0.95  # sparse, as UMI counts are
        mean_total = float(np.asarray(x.sum(axis=1)).mean())
        assert mean_total == pytest.approx(expected, rel=0.08)

    def log_profile(s):
        x = s.rna.X.toarray()
        return np.log((x / x.sum(axis=1, keepdims=True)).mean(axis=0) + 1e-6)

    a, b = data.sections[0], data.sections[1]
    # the gene-wise shift between sections follows the simulated batch fold changes
    r = np.corrcoef(log_profile(a) - log_profile(b), a.batch_lfc - b.batch_lfc)[0, 1]
    assert r > 0.7


def test_truth_annotations(data):
    s = data.sections[1]
    assert s.rna.obs["section"].eq("S2").all()
    assert s.rna.obs["domain"].dtype == "category" and s.rna.obs["domain"].nunique() >= 3
    props = s.rna.obsm["cell_state_proportions"].to_numpy()
    np.testing.assert_allclose(props.sum(axis=1), 1.0, rtol=1e-9)
    # domains differ in their cell-state composition
    dom_means = [props[s.rna.obs["domain"].eq(d).to_numpy()].mean(axis=0) for d in s.rna.obs["domain"].unique()]
    assert np.ptp(np.array(dom_means), axis=0).max() > 0.3
    assert np.all(s.metabolite_means.X >= 0) and np.all(s.msi.X >= 0)


def test_metabolites_follow_cell_states_but_not_perfectly(data):
    """Learned on one section, cell states predict state-driven metabolites of another, not field-driven ones."""
    a, b = data.sections[0], data.sections[1]
    rho = a.metabolite_means.var["state_fraction"].to_numpy()
    ya, yb = (np.log(s.metabolite_means.X.astype(float)) for s in (a, b))
    pa, pb = (s.rna.obsm["cell_state_proportions"].to_numpy() for s in (a, b))
    _, idx = cKDTree(pa).query(pb, k=10)
    pred = ya[idx].mean(axis=1)  # k-nearest neighbours in state space: a nonlinear regressor
    r = np.array([np.corrcoef(pred[:, j], yb[:, j])[0, 1] for j in range(yb.shape[1])])
    assert r[rho > 0.7].mean() > 0.75
    assert r[rho < 0.25].mean() < 0.5
    assert np.corrcoef(rho, r)[0, 1] > 0.5  # predictability spreads with the state share

    # observed pixels scatter around the means: multiplicative noise, not a copy
    on = b.msi.obs["in_tissue"].to_numpy()
    d, nearest = cKDTree(b.rna.obsm["spatial"]).query(_to_str(b, b.msi.obsm["spatial"][on]))
    close = d < 20
    obs = np.log1p(b.msi.X[on][close])
    mean = np.log1p(b.metabolite_means.X[nearest[close]])
    r_obs = [np.corrcoef(obs[:, j], mean[:, j])[0, 1] for j in range(obs.shape[1])]
    assert 0.3 < np.median(r_obs) < 0.98


def test_affine_puts_on_tissue_pixels_on_the_spots(data):
    for s in data.sections:
        on = s.msi.obs["in_tissue"].to_numpy()
        dist, _ = cKDTree(s.rna.obsm["spatial"]).query(_to_str(s, s.msi.obsm["spatial"]))
        # inside the tissue every point is within a hexagon circumradius (58 um) of a spot,
        # plus the edge band where the tissue reaches past its outer spots
        assert np.quantile(dist[on], 0.95) < 60 and dist[on].max() < 120
        assert np.median(dist[~on]) > 150
        # the obsm coordinates are the imzML grid times the pixel size
        xy = s.msi.obs[["x", "y"]].to_numpy()
        np.testing.assert_array_equal(s.msi.obsm["spatial"], xy * s.pixel_size_um)
        assert xy.min() == 1


def test_raster_covers_the_tissue_only_partly(data):
    for s in data.sections:
        pixels = _to_str(s, s.msi.obsm["spatial"])
        dist, _ = cKDTree(pixels).query(s.rna.obsm["spatial"])
        covered = (dist < s.pixel_size_um).mean()
        assert 0.4 < covered < 0.97
        on = s.msi.obs["in_tissue"].to_numpy()
        assert 0.2 < 1 - on.mean() < 0.8  # plenty of off-tissue background
        signal = s.msi.X.sum(axis=1)
        assert np.median(signal[~on]) < 0.2 * np.median(signal[on])  # background is low


def test_transform_arguments_are_the_truth():
    d = synthetic_vicari(
        n_sections=1, n_spots=200, n_genes=50, n_metabolites=5, msi_rotation_deg=30, msi_reflect=True, msi_scale=0.9, seed=2
    )
    s = d.sections[0]
    lin = s.affine[:2, :2]
    c, sn = np.cos(np.pi / 6), np.sin(np.pi / 6)
    np.testing.assert_allclose(lin, 0.9 * np.array([[c, -sn], [sn, c]]) @ np.diag([1.0, -1.0]), atol=1e-12)
    np.testing.assert_array_equal(s.affine[2], [0.0, 0.0, 1.0])


def test_msi_pitch_sets_pixel_count():
    coarse = synthetic_vicari(n_sections=1, n_spots=300, n_genes=30, n_metabolites=4, msi_pitch_um=100, seed=5)
    fine = synthetic_vicari(n_sections=1, n_spots=300, n_genes=30, n_metabolites=4, msi_pitch_um=50, seed=5)
    ratio = fine.sections[0].msi.n_obs / coarse.sections[0].msi.n_obs
    assert 3.3 < ratio < 4.7  # pixels scale with 1 / pitch^2
    assert fine.sections[0].rna.shape == coarse.sections[0].rna.shape


def test_peaks_are_distinct_and_noise_peaks_stay_clear(data):
    mz = data.mz
    assert np.all(np.diff(mz) / mz[:-1] * 1e6 > 500)
    assert mz.min() >= 100 and mz.max() <= 1000
    gap = np.abs(data.noise_mz[:, None] - mz[None]) / mz[None] * 1e6
    assert gap.min() > 100
    assert list(data.sections[0].msi.var_names) == [f"mz_{v:.4f}" for v in mz]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_spots"):
        synthetic_vicari(n_spots=5)
    with pytest.raises(ValueError, match="library_size"):
        synthetic_vicari(n_sections=2, library_size=(1000, 2000, 3000))
    with pytest.raises(ValueError, match="msi_pitch_um"):
        synthetic_vicari(msi_pitch_um=0)


def test_msi_section_effects_move_each_metabolite_by_section_and_are_in_the_truth():
    import numpy as np

    from spatial_mg.sim import synthetic_vicari

    kw = dict(n_sections=2, n_spots=150, n_genes=20, n_metabolites=8, seed=5)
    plain = synthetic_vicari(**kw)
    assert np.array_equal(synthetic_vicari(**kw, msi_section_sd=0.0).sections[1].msi.X, plain.sections[1].msi.X)
    moved = synthetic_vicari(**kw, msi_section_sd=0.7)

    def log_ratio(data):  # per metabolite: how much brighter section 2 is than section 1 (truth means)
        a, b = (np.asarray(s.metabolite_means.X, dtype=float).mean(0) for s in data.sections)
        return np.log(b / a)

    # a section-wide factor moves all metabolites alike; per-metabolite effects spread them apart
    assert np.std(log_ratio(moved)) > 3 * np.std(log_ratio(plain))
    for s in moved.sections:  # the measured pixels follow the truth's level, effects included
        on = s.msi.obs["in_tissue"].to_numpy()
        measured = np.asarray(s.msi.X[on], dtype=float).mean(0)
        truth = np.asarray(s.metabolite_means.X, dtype=float).mean(0)
        assert np.all(np.abs(np.log(measured / truth)) < 0.5)


def test_the_states_only_truth_is_what_rna_can_explain():
    import numpy as np
    from scipy.stats import pearsonr

    from spatial_mg.sim import synthetic_vicari

    data = synthetic_vicari(n_sections=1, n_spots=400, n_genes=20, n_metabolites=12, seed=2)
    means = data.sections[0].metabolite_means
    full, states = np.log(np.asarray(means.X, float)), np.log(np.asarray(means.layers["from_states"], float))
    rho = means.var["state_fraction"].to_numpy()
    r = np.array([pearsonr(full[:, j], states[:, j])[0] for j in range(means.n_vars)])
    # the states-only mean follows the full mean where states drive the metabolite, not where the field does
    assert np.corrcoef(rho, r)[0, 1] > 0.7
    assert r[rho > 0.8].min() > 0.8 and r[rho < 0.2].max() < 0.6
