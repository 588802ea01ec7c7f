"""The synthetic dataset written in the real formats reads back, through the project's readers, as it was made."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
import scanpy as sc
from pyimzml.ImzMLParser import ImzMLParser

from spatial_mg.io import read_imzml, read_sma_csv, read_visium, write_imzml, write_visium
from spatial_mg.sim import synthetic_vicari


@pytest.fixture(scope="module")
def data():
    # a reflected raster, so that a reader or writer that flips an axis shows up
    return synthetic_vicari(n_spots=250, n_genes=80, n_metabolites=10, msi_pitch_um=100, msi_reflect=True, seed=3)


@pytest.fixture(scope="module")
def written(data, tmp_path_factory):
    out = {}
    for mode in ("processed", "continuous"):
        root = tmp_path_factory.mktemp(mode)
        out[mode] = (root, data.write(root, imzml_mode=mode, sma_csv=mode == "processed"))
    return out


def _parser(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImzMLParser(str(path), parse_lib="ElementTree")


def test_layout(data, written):
    root, paths = written["processed"]
    assert sorted(p.name for p in root.iterdir()) == ["S1", "S2", "S3", "peaks.csv"]  # no temporaries left
    for s in data.sections:
        outs = paths[s.name]["visium"]
        assert outs == root / s.name / "outs"
        for f in ("filtered_feature_bc_matrix.h5", "spatial/tissue_positions_list.csv", "spatial/tissue_positions.csv",
                  "spatial/scalefactors_json.json", "spatial/tissue_lowres_image.png", "spatial/tissue_hires_image.png"):
            assert (outs / f).is_file(), f
        assert paths[s.name]["imzml"].is_file() and paths[s.name]["ibd"].is_file() and paths[s.name]["sma_csv"].is_file()
        truth = json.loads((paths[s.name]["truth"] / "affine.json").read_text())
        np.testing.assert_allclose(truth["msi_um_to_str_um"], s.affine)
    peaks = np.loadtxt(root / "peaks.csv", skiprows=1)
    np.testing.assert_array_equal(peaks, data.mz)


def test_h5_loads_with_scanpy_to_identical_counts(data, written):
    _, paths = written["processed"]
    for s in data.sections:
        h5 = sc.read_10x_h5(paths[s.name]["visium"] / "filtered_feature_bc_matrix.h5")
        assert h5.obs_names.equals(s.rna.obs_names)
        assert h5.var_names.equals(s.rna.var_names)
        assert list(h5.var["gene_ids"]) == list(s.rna.var["gene_ids"])
        assert (h5.X != s.rna.X).nnz == 0


def test_positions_list_holds_the_whole_capture_area(data, written):
    import pandas as pd

    _, paths = written["processed"]
    s = data.sections[0]
    table = pd.read_csv(paths[s.name]["visium"] / "spatial/tissue_positions_list.csv", header=None, index_col=0)
    assert len(table) == 4992 and table[1].sum() == s.rna.n_obs
    sf = json.loads((paths[s.name]["visium"] / "spatial/scalefactors_json.json").read_text())
    assert sf["spot_diameter_fullres"] * s.um_per_px == pytest.approx(65.0)


@pytest.mark.parametrize("mode", ["processed", "continuous"])
def test_read_visium_round_trip(data, written, mode):
    _, paths = written[mode]
    for s in data.sections:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. grid and scale factors disagreeing
            r = read_visium(paths[s.name]["visium"].parent)
        assert r.obs_names.equals(s.rna.obs_names) and r.var_names.equals(s.rna.var_names)
        assert r.X.dtype == s.rna.X.dtype and (r.X != s.rna.X).nnz == 0
        for col in ("in_tissue", "array_row", "array_col"):
            np.testing.assert_array_equal(r.obs[col].to_numpy(), s.rna.obs[col].to_numpy())
        # the reader fits um per pixel from integer pixels: agreement to a small fraction of a micrometre
        np.testing.assert_allclose(r.obsm["spatial"], s.rna.obsm["spatial"], rtol=0, atol=0.1)
        assert r.uns["spatial_mg"]["um_per_fullres_px"] == pytest.approx(s.um_per_px, rel=1e-4)
        assert s.name in r.uns["spatial"] and "lowres" in r.uns["spatial"][s.name]["images"]


@pytest.mark.parametrize("mode", ["processed", "continuous"])
def test_read_imzml_round_trip(data, written, mode):
    _, paths = written[mode]
    for s in data.sections:
        m = read_imzml(paths[s.name]["imzml"], mz_bins=data.mz, ppm=10)
        assert m.uns["spatial_mg"]["imzml_mode"] == mode
        assert m.obs_names.equals(s.msi.obs_names) and m.var_names.equals(s.msi.var_names)
        np.testing.assert_array_equal(m.var["mz"].to_numpy(), s.msi.var["mz"].to_numpy())
        np.testing.assert_allclose(m.X, s.msi.X, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(m.obs[["x", "y"]].to_numpy(), s.msi.obs[["x", "y"]].to_numpy())
        np.testing.assert_allclose(m.obsm["spatial"], s.msi.obsm["spatial"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(m.obs["tic"], s.msi.obs["tic"], rtol=1e-5)  # includes matrix/noise peaks


def test_pixel_size_is_in_the_scan_settings(data, written):
    _, paths = written["processed"]
    s = data.sections[0]
    p = _parser(paths[s.name]["imzml"])
    try:
        assert p.imzmldict["pixel size x"] == p.imzmldict["pixel size y"] == s.pixel_size_um
        assert p.imzmldict["max dimension x"] == round(s.msi.obs["x"].max() * s.pixel_size_um)
        assert p.metadata.scan_settings["scanSettings1"]["IMS:1000046"] == s.pixel_size_um
    finally:
        p.m.close()


def test_processed_spectra_are_jittered_centroids_and_continuous_shares_one_axis(data, written):
    s = data.sections[0]
    p = _parser(written["processed"][1][s.name]["imzml"])
    try:
        on = int(np.flatnonzero(s.msi.obs["in_tissue"].to_numpy())[0])
        mz, _ = p.getspectrum(on)
        ppm = np.abs(mz[:, None] - data.mz[None]) / data.mz[None] * 1e6
        hits = ppm.min(axis=1) < 10
        assert hits.sum() == np.count_nonzero(s.msi.X[on])  # one centroid per detected metabolite
        assert 0 < ppm.min(axis=1)[hits].max() <= 5  # scattered, within 5 ppm
        assert (~hits).sum() >= 2  # matrix peaks are in every spectrum
        lengths = {len(p.getspectrum(i)[0]) for i in range(20)}
        assert len(lengths) > 1
    finally:
        p.m.close()
    p = _parser(written["continuous"][1][s.name]["imzml"])
    try:
        axis = p.getspectrum(0)[0]
        assert np.isin(data.mz, axis).all() and len(axis) == len(data.mz) + len(data.noise_mz)
        np.testing.assert_array_equal(p.getspectrum(len(p.coordinates) - 1)[0], axis)
    finally:
        p.m.close()


def test_read_sma_csv_round_trip(data, written):
    _, paths = written["processed"]
    for s in data.sections:
        m = read_sma_csv(paths[s.name]["sma_csv"], pixel_size_um=s.pixel_size_um)
        assert m.obs_names.equals(s.msi.obs_names) and m.var_names.equals(s.msi.var_names)
        np.testing.assert_array_equal(m.var["mz"].to_numpy(), data.mz)
        np.testing.assert_array_equal(m.X, s.msi.X)
        np.testing.assert_array_equal(m.obsm["spatial"], s.msi.obsm["spatial"])


def test_writing_leaves_the_data_unchanged(tmp_path):
    d = synthetic_vicari(n_sections=1, n_spots=100, n_genes=20, n_metabolites=4, msi_pitch_um=150, seed=4)
    s = d.sections[0]
    before = copy.deepcopy((s.rna, s.msi, s.affine))
    d.write(tmp_path, imzml_mode="continuous", sma_csv=True)
    assert (before[0].X != s.rna.X).nnz == 0 and before[0].obs.equals(s.rna.obs)
    np.testing.assert_array_equal(before[0].obsm["spatial"], s.rna.obsm["spatial"])
    np.testing.assert_array_equal(before[1].X, s.msi.X)
    assert before[1].obs.equals(s.msi.obs)
    np.testing.assert_array_equal(before[2], s.affine)


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    d = synthetic_vicari(n_sections=1, n_spots=100, n_genes=20, n_metabolites=4, msi_pitch_um=150, seed=4)
    paths = d.write(tmp_path)
    h5 = paths["S1"]["visium"] / "filtered_feature_bc_matrix.h5"
    stamp = h5.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="overwrite=True"):
        d.write(tmp_path)
    assert h5.stat().st_mtime_ns == stamp
    d.write(tmp_path, overwrite=True)
    assert h5.stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S1", "peaks.csv"]


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import spatial_mg.sim._containers as module

    d = synthetic_vicari(n_sections=1, n_spots=100, n_genes=20, n_metabolites=4, msi_pitch_um=150, seed=4)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "write_sma_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        d.write(tmp_path, sma_csv=True)
    assert [p.name for p in tmp_path.iterdir()] == ["peaks.csv"]  # no half-written section, no temporaries


def test_an_unknown_imzml_mode_is_refused_before_anything_is_written(tmp_path, data):
    with pytest.raises(ValueError, match="processed.*continuous.*'profile'"):
        data.write(tmp_path, imzml_mode="profile")
    with pytest.raises(ValueError, match="processed.*continuous.*'profile'"):
        data.sections[0].write(tmp_path / "S1", imzml_mode="profile")
    assert not any(tmp_path.iterdir())


def test_writers_refuse_bad_input(tmp_path, data):
    s = data.sections[0]
    with pytest.raises(ValueError, match="1-based"):
        write_imzml(tmp_path / "a.imzML", np.array([[0, 1]]), np.ones((1, 2)), np.array([100.0, 200.0]), pixel_size_um=50)
    with pytest.raises(ValueError, match="shared m/z axis"):
        write_imzml(
            tmp_path / "b.imzML", np.array([[1, 1]]), [np.ones(2)], [np.array([100.0, 200.0])], pixel_size_um=50, mode="continuous"
        )
    rna = s.rna.copy()
    rna.X = rna.X.astype(np.float32) * 0.5
    with pytest.raises(ValueError, match="integer counts"):
        write_visium(rna, tmp_path / "outs", um_per_px=s.um_per_px)
    assert not any(tmp_path.iterdir())
