"""read_imzml on the official imzML example files and on broken variants of them."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from pyimzml.ImzMLParser import ImzMLParser
from pyimzml.ImzMLWriter import ImzMLWriter
from scipy.spatial.distance import pdist

from spatial_mg.io import read_imzml, write_imzml


def _spectra(path):
    parser = ImzMLParser(str(path))
    try:
        return [parser.getspectrum(i) for i in range(len(parser.coordinates))], parser.coordinates
    finally:
        parser.m.close()


@pytest.mark.parametrize("mode", ["continuous", "processed"])
def test_example_files_have_nine_pixels_100_um_apart(mode, imzml_continuous, imzml_processed):
    path = imzml_continuous if mode == "continuous" else imzml_processed
    adata = read_imzml(path, bin_width=1.0)
    assert adata.n_obs == 9
    assert adata.uns["spatial_mg"]["imzml_mode"] == mode
    assert adata.uns["spatial_mg"]["pixel_size_um"] == [100.0, 100.0]
    xy = adata.obsm["spatial"]
    # A 3x3 raster: nearest neighbours 100 um apart, diagonal 100*sqrt(2), extent 200 um.
    d = pdist(xy)
    assert np.isclose(d.min(), 100.0)
    assert np.isclose(d.max(), np.hypot(200, 200))
    spectra, coords = _spectra(path)
    np.testing.assert_array_equal(adata.obs[["x", "y"]].to_numpy(), np.asarray(coords)[:, :2])
    np.testing.assert_allclose(xy, np.asarray(coords)[:, :2] * 100.0)


def test_continuous_native_axis_equals_pyimzml(imzml_continuous):
    adata = read_imzml(imzml_continuous)
    spectra, _ = _spectra(imzml_continuous)
    np.testing.assert_allclose(adata.var["mz"].to_numpy(), spectra[0][0].astype(np.float64))
    for i, (_, intensity) in enumerate(spectra):
        np.testing.assert_allclose(adata.X[i], intensity, rtol=1e-6)


def test_processed_peak_list_equals_pyimzml(imzml_processed):
    spectra, _ = _spectra(imzml_processed)
    peaks = spectra[0][0][::50].astype(np.float64)  # a subset of real m/z values as the peak list
    adata = read_imzml(imzml_processed, mz_bins=peaks, ppm=1.0)
    for i, (mz, intensity) in enumerate(spectra):
        lookup = dict(zip(np.round(mz.astype(np.float64), 6), intensity, strict=True))
        expected = [lookup.get(round(p, 6), 0.0) for p in adata.var["mz"]]
        np.testing.assert_allclose(adata.X[i], expected, rtol=1e-6)


def test_uniform_bins_conserve_the_total_ion_count(imzml_processed):
    adata = read_imzml(imzml_processed, bin_width=0.5)
    np.testing.assert_allclose(adata.X.sum(axis=1), adata.obs["tic"], rtol=1e-5)
    widths = adata.var["mz_max"] - adata.var["mz_min"]
    np.testing.assert_allclose(widths, 0.5)


@pytest.mark.parametrize("method", ["tic", "rms"])
def test_normalisation_keeps_raw_and_is_recorded(method, imzml_continuous):
    raw = read_imzml(imzml_continuous)
    norm = read_imzml(imzml_continuous, normalize=method)
    np.testing.assert_array_equal(norm.layers["raw"], raw.X)
    assert norm.uns["spatial_mg"]["normalization"] == method
    factor = raw.obs[method].to_numpy()
    scale = norm.uns["spatial_mg"]["normalization_scale"]
    np.testing.assert_allclose(norm.X, raw.X / factor[:, None] * scale, rtol=1e-5)
    assert np.isclose(scale, np.median(factor))


def test_pixel_size_argument_is_used(imzml_continuous):
    with pytest.warns(UserWarning, match="overrides"):
        adata = read_imzml(imzml_continuous, pixel_size_um=20.0)
    assert np.isclose(pdist(adata.obsm["spatial"]).min(), 20.0)


def test_unknown_pixel_size_is_an_error(tmp_path, imzml_continuous):
    dest = tmp_path / "nosize.imzML"
    text = imzml_continuous.read_text(encoding="iso-8859-1")
    text = "\n".join(line for line in text.splitlines() if "IMS:100004" not in line)  # drops 1000046/47
    dest.write_text(text, encoding="iso-8859-1")
    shutil.copy(imzml_continuous.with_suffix(".ibd"), dest.with_suffix(".ibd"))
    with pytest.raises(ValueError, match=r"nosize\.imzML.*pixel_size_um"):
        read_imzml(dest)
    assert read_imzml(dest, pixel_size_um=50.0).uns["spatial_mg"]["pixel_size_um"] == [50.0, 50.0]


def test_truncated_ibd_is_an_error(tmp_path, imzml_processed):
    dest = tmp_path / "cut.imzML"
    shutil.copy(imzml_processed, dest)
    data = imzml_processed.with_suffix(".ibd").read_bytes()
    dest.with_suffix(".ibd").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.ibd.*truncated"):
        read_imzml(dest, bin_width=1.0)


def test_missing_files_are_named(tmp_path, imzml_processed):
    with pytest.raises(FileNotFoundError, match="nothere.imzML"):
        read_imzml(tmp_path / "nothere.imzML")
    dest = tmp_path / "alone.imzML"
    shutil.copy(imzml_processed, dest)
    with pytest.raises(FileNotFoundError, match=r"alone\.ibd"):
        read_imzml(dest)


def test_processed_file_needs_bins(imzml_processed):
    with pytest.raises(ValueError, match="mz_bins"):
        read_imzml(imzml_processed)


def test_nan_intensities_are_an_error(tmp_path):
    path = tmp_path / "nan.imzML"
    with ImzMLWriter(str(path), mode="processed") as writer:
        writer.addSpectrum(np.array([100.0, 200.0]), np.array([1.0, 2.0]), (1, 1))
        writer.addSpectrum(np.array([100.0, 200.0]), np.array([np.nan, 2.0]), (2, 1))
    with pytest.raises(ValueError, match=r"nan\.imzML.*x=2, y=1"):
        read_imzml(path, mz_bins=[100.0, 200.0], pixel_size_um=10.0)


def _acquisition(path, seed):
    """A small processed-mode acquisition; every seed has the same layout (pixels, m/z)."""
    rng = np.random.default_rng(seed)
    coords = np.array([[x, y] for y in (1, 2) for x in (1, 2, 3)])
    mzs = np.array([100.0, 200.0, 300.0, 400.0])
    write_imzml(path, coords, rng.uniform(1, 100, size=(6, 4)), mzs, pixel_size_um=50.0, mode="continuous")
    return path


def test_an_ibd_of_another_acquisition_is_refused_naming_both_files(tmp_path):
    first = _acquisition(tmp_path / "first.imzML", seed=0)
    second = _acquisition(tmp_path / "second.imzML", seed=1)
    assert first.with_suffix(".ibd").stat().st_size == second.with_suffix(".ibd").stat().st_size
    assert not np.array_equal(read_imzml(first).X, read_imzml(second).X)
    shutil.copy(second.with_suffix(".ibd"), first.with_suffix(".ibd"))  # same layout, other data
    with pytest.raises(ValueError, match=r"first\.ibd' does not belong to '.*first\.imzML': .* UUID"):
        read_imzml(first)


def _edit_uuid(tmp_path, source, replace_line):
    dest = tmp_path / source.name
    lines = source.read_text(encoding="iso-8859-1").splitlines()
    dest.write_text("\n".join(replace_line(line) if "IMS:1000080" in line else line for line in lines), encoding="iso-8859-1")
    shutil.copy(source.with_suffix(".ibd"), dest.with_suffix(".ibd"))
    return dest


def test_the_uuid_is_compared_in_every_writer_form(tmp_path, imzml_continuous):
    # the example files write 32 hex digits; pyimzML braces, dashes and upper case
    hexed = imzml_continuous.with_suffix(".ibd").read_bytes()[:16].hex()
    braced = "{%s-%s-%s-%s-%s}" % (hexed[:8], hexed[8:12], hexed[12:16], hexed[16:20], hexed[20:])
    dest = _edit_uuid(tmp_path, imzml_continuous, lambda line: re.sub(r'value="[^"]*"', f'value="{braced.upper()}"', line))
    np.testing.assert_array_equal(read_imzml(dest).X, read_imzml(imzml_continuous).X)


def test_a_missing_uuid_is_warned_about_and_a_malformed_one_refused(tmp_path, imzml_continuous):
    dest = _edit_uuid(tmp_path, imzml_continuous, lambda line: "")
    with pytest.warns(UserWarning, match=r"Example_Continuous\.imzML' records no UUID"):
        assert read_imzml(dest).n_obs == 9
    dest = _edit_uuid(tmp_path, imzml_continuous, lambda line: re.sub(r'value="[^"]*"', 'value="not-a-uuid"', line))
    with pytest.raises(ValueError, match=r"Example_Continuous\.imzML' records a malformed UUID"):
        read_imzml(dest)


def test_an_ibd_too_short_for_its_uuid_is_truncated(tmp_path, imzml_continuous):
    dest = tmp_path / "short.imzML"
    shutil.copy(imzml_continuous, dest)
    dest.with_suffix(".ibd").write_bytes(imzml_continuous.with_suffix(".ibd").read_bytes()[:10])
    with pytest.raises(ValueError, match=r"short\.ibd' is truncated: 10 bytes"):
        read_imzml(dest)


def test_intensities_that_overflow_float32_when_binned_are_an_error(tmp_path):
    path = tmp_path / "loud.imzML"
    coords = np.array([[1, 1], [2, 1]])
    # each peak fits float32, their sum in one 20 Da bin does not
    write_imzml(path, coords, np.array([[3e38, 3e38], [1.0, 2.0]]), np.array([100.0, 110.0]), pixel_size_um=10.0)
    with pytest.raises(ValueError, match=r"loud\.imzML'.*float32 \(first at pixel x=1, y=1, feature 'mz_"):
        read_imzml(path, bin_width=20.0)
    assert np.isfinite(read_imzml(path, bin_width=1.0).X).all()  # apart, each stays in range
