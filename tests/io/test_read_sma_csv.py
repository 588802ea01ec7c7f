"""read_sma_csv on SMA-style exports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spatial_mg.io import read_sma_csv


@pytest.fixture
def sma_csv(tmp_path):
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.arange(-5, 0), np.arange(10, 14))
    table = pd.DataFrame({"x": xs.ravel(), "y": ys.ravel()})
    for mz in (104.1075, 145.0495, 496.3398):
        table[f"{mz}"] = rng.gamma(2.0, 50.0, size=len(table))
    path = tmp_path / "MSI_export.csv"
    table.to_csv(path, index=False)
    return path, table


def test_reads_coordinates_and_intensities(sma_csv):
    path, table = sma_csv
    adata = read_sma_csv(path, pixel_size_um=100.0)
    np.testing.assert_allclose(adata.var["mz"], [104.1075, 145.0495, 496.3398])
    np.testing.assert_allclose(adata.X, table.iloc[:, 2:].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(adata.obsm["spatial"], table[["x", "y"]].to_numpy() * 100.0)
    assert adata.uns["spatial_mg"]["pixel_size_um"] == [100.0, 100.0]


def test_pixel_id_column_names_the_pixels(tmp_path):
    path = tmp_path / "ids.csv"
    pd.DataFrame({"spot_id": ["pixel_1", "pixel_2"], "x": [1, 2], "y": [1, 1], "300.1": [1.0, 2.0]}).to_csv(
        path, index=False
    )
    adata = read_sma_csv(path, pixel_size_um=50)
    assert list(adata.obs_names) == ["pixel_1", "pixel_2"]


def test_pixel_size_is_required(sma_csv):
    with pytest.raises(ValueError, match="MSI_export.csv.*pixel_size_um"):
        read_sma_csv(sma_csv[0])


def test_nan_intensity_is_an_error(tmp_path, sma_csv):
    _, table = sma_csv
    table.iloc[3, 3] = np.nan
    path = tmp_path / "holes.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"holes\.csv.*row 5, column '145.0495'"):
        read_sma_csv(path, pixel_size_um=100)


def test_non_mz_column_is_an_error(tmp_path, sma_csv):
    _, table = sma_csv
    table["region"] = "cortex"
    path = tmp_path / "extra.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match="Column 'region'"):
        read_sma_csv(path, pixel_size_um=100)


def test_duplicate_pixels_are_an_error(tmp_path, sma_csv):
    _, table = sma_csv
    table.iloc[1, :2] = table.iloc[0, :2]
    path = tmp_path / "dup.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match="Duplicate pixel"):
        read_sma_csv(path, pixel_size_um=100)


def test_a_header_without_pixels_is_an_error(tmp_path, sma_csv):
    _, table = sma_csv
    path = tmp_path / "header_only.csv"
    table.iloc[:0].to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"header_only\.csv' has a header but no pixels"):
        read_sma_csv(path, pixel_size_um=100)


@pytest.mark.parametrize("value", [1e39, -1e39, 3.5e38])
def test_intensities_beyond_float32_are_an_error_naming_pixel_and_feature(tmp_path, sma_csv, value):
    _, table = sma_csv
    table.iloc[2, 4] = value  # finite in the file, inf once stored as float32
    path = tmp_path / "loud.csv"
    table.to_csv(path, index=False)
    x, y = (int(v) for v in table.iloc[2, :2])
    with pytest.raises(ValueError, match=rf"loud\.csv'.*float32 \(first at pixel x={x}, y={y}, feature 'mz_496\.3398'\)"):
        read_sma_csv(path, pixel_size_um=100)


def test_the_largest_float32_intensity_is_kept(tmp_path, sma_csv):
    _, table = sma_csv
    table.iloc[2, 4] = float(np.finfo(np.float32).max)
    path = tmp_path / "edge.csv"
    table.to_csv(path, index=False, float_format="%.17g")
    assert read_sma_csv(path, pixel_size_um=100).X[2, 2] == np.finfo(np.float32).max


def test_duplicate_positions_are_an_error_even_with_pixel_ids(tmp_path):
    path = tmp_path / "ids_dup.csv"
    table = pd.DataFrame({"spot_id": ["p1", "p2", "p3"], "x": [1, 2, 1], "y": [1, 1, 1], "300.1": [1.0, 2.0, 3.0]})
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"Duplicate pixel positions in '.*ids_dup\.csv': \(x=1, y=1\) appears 2 times"):
        read_sma_csv(path, pixel_size_um=50)


def test_duplicate_pixel_ids_are_an_error_naming_them(tmp_path):
    path = tmp_path / "ids_twice.csv"
    table = pd.DataFrame({"spot_id": ["p1", "p1"], "x": [1, 2], "y": [1, 1], "300.1": [1.0, 2.0]})
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"Duplicate pixel names in '.*ids_twice\.csv' \(for example \['p1'\]\)"):
        read_sma_csv(path, pixel_size_um=50)
