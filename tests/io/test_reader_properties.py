"""Property tests of the readers: whatever they are given, they return a sound result or
raise one of the project's clear errors, which names the file.

Inputs are real files (the fixtures of tests/data, and files written by pyimzML and
pandas) cut short at a random byte, with random bytes written over a random stretch, or
holding extreme numbers. A clear error is a ValueError, KeyError or FileNotFoundError
whose message names the file (its name, or the folder read); any other exception, or one
of those that names no file (a bare UnicodeDecodeError or pandas ParserError are
ValueErrors too), fails the test. A result must be sound: finite values, coordinates and
shapes that agree.

The examples are derandomised (the same ones on every run, so CI does not flake) and few
(the module runs in seconds); raise ``PROPERTY_EXAMPLES`` to search wider.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spatial_mg.io import read_imzml, read_sma_csv, read_visium

DATA = Path(__file__).parents[1] / "data"
CONTINUOUS = DATA / "imzml_example" / "Example_Continuous.imzML"
VISIUM = DATA / "visium_squidpy_test"
VISIUM_FILES = ("filtered_feature_bc_matrix.h5", "spatial/tissue_positions_list.csv", "spatial/scalefactors_json.json")
CLEAR = (ValueError, KeyError, FileNotFoundError)
# the readers' advice on odd but readable inputs (e.g. scale factors that disagree with the grid)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROPERTIES = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", 25)),
    deadline=None,
    derandomize=not os.environ.get("PROPERTY_EXAMPLES"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# numbers at and past the edges of what a reader stores (float32) and what it sums (float64)
EXTREMES = [
    0.0, -0.0, 1.0, -1.0, 5e-324, 1e-45, 1e-38, 3.4028234e38, 3.4028236e38, 1e39, -1e39,
    1.7e308, -1.7e308, float("inf"), float("-inf"), float("nan"), 2.0**31, 2.0**53 + 1,
]


def extreme_floats():
    return st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True))


@contextmanager
def scratch():
    """A fresh folder per example (pytest's tmp_path is one per test, not per example)."""
    folder = tempfile.mkdtemp(prefix="reader-properties-")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def outcome(read, *names: str):
    """``read()``'s result, or None after a clear error whose message names one of ``names``.

    Any other exception propagates and fails the test.
    """
    try:
        return read()
    except CLEAR as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        assert any(name in message for name in names), f"{type(err).__name__} names none of {names}: {message}"
        return None


def damaged(data: bytes, how: str, at: int, size: int, noise: bytes) -> bytes:
    """``data`` cut at ``at``, or with ``noise`` written over ``size`` bytes from ``at``."""
    at = at % (len(data) + 1)
    if how == "truncate":
        return data[:at]
    return data[:at] + noise[:size] + data[at + size :]


damage = st.tuples(
    st.sampled_from(["truncate", "overwrite"]),
    st.integers(0, 1 << 30),
    st.integers(1, 64),
    st.binary(min_size=1, max_size=64),
)


def assert_sound_msi(adata, pixel_size_um: float) -> None:
    assert adata.n_obs > 0 and adata.n_vars > 0
    assert np.isfinite(adata.X).all() and adata.X.dtype == np.float32
    assert np.isfinite(adata.obs[["tic", "rms"]].to_numpy()).all()
    xy = adata.obs[["x", "y"]].to_numpy()
    assert not pd.DataFrame(xy).duplicated().any()
    np.testing.assert_array_equal(adata.obsm["spatial"], xy * pixel_size_um)


# --- SMA csv -----------------------------------------------------------------------------
def _sma_table(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"spot_id": [f"p{i}" for i in range(n)], "x": np.arange(n) % 3 + 1, "y": np.arange(n) // 3 + 1})
    for mz in (104.1075, 145.0495, 496.3398):
        table[f"{mz}"] = rng.gamma(2.0, 50.0, size=n)
    return table


SMA_BYTES = _sma_table().to_csv(index=False).encode()


@PROPERTIES
@given(change=damage, sep=st.sampled_from([None, ","]))
def test_sma_csv_damaged_bytes(change, sep):
    with scratch() as folder:
        path = folder / "export.csv"
        path.write_bytes(damaged(SMA_BYTES, *change))
        adata = outcome(lambda: read_sma_csv(path, pixel_size_um=50.0, sep=sep), "export.csv")
        if adata is not None:
            assert_sound_msi(adata, 50.0)


@PROPERTIES
@given(data=st.binary(max_size=300))
@example(data=b"")  # pandas' EmptyDataError
@example(data=b"\x80x,y")  # UnicodeDecodeError
@example(data=b"x\n1\n2")  # one column: the sniffer finds no delimiter
def test_sma_csv_random_bytes(data):
    with scratch() as folder:
        path = folder / "noise.csv"
        path.write_bytes(data)
        adata = outcome(lambda: read_sma_csv(path, pixel_size_um=50.0), "noise.csv")
        if adata is not None:
            assert_sound_msi(adata, 50.0)


@PROPERTIES
@given(
    values=st.lists(extreme_floats(), min_size=18, max_size=18),
    x=st.lists(st.sampled_from([0, -1, 1, 2, 2**31, -(2**40), 2**62]), min_size=6, max_size=6),
    normalize=st.sampled_from([None, "tic", "rms"]),
)
def test_sma_csv_extreme_numbers(values, x, normalize):
    table = _sma_table()
    table.iloc[:, 3:] = np.asarray(values).reshape(6, 3)
    table["x"] = x
    with scratch() as folder:
        path = folder / "extreme.csv"
        table.to_csv(path, index=False, float_format="%.17g")
        adata = outcome(lambda: read_sma_csv(path, pixel_size_um=50.0, normalize=normalize), "extreme.csv")
        if adata is not None:
            assert_sound_msi(adata, 50.0)
            raw = adata.layers["raw"] if normalize else adata.X
            np.testing.assert_array_equal(raw, table.iloc[:, 3:].to_numpy(np.float64).astype(np.float32))


# --- imzML -------------------------------------------------------------------------------
@PROPERTIES
@given(change=damage, which=st.sampled_from([".imzML", ".ibd"]))
@example(change=("overwrite", 3295, 8, b" "), which=".imzML")  # the intensities' data type, blanked
def test_imzml_damaged_bytes(change, which):
    with scratch() as folder:
        path = folder / "scan.imzML"
        for suffix in (".imzML", ".ibd"):
            data = CONTINUOUS.with_suffix(suffix).read_bytes()
            path.with_suffix(suffix).write_bytes(damaged(data, *change) if suffix == which else data)
        adata = outcome(lambda: read_imzml(path, bin_width=5.0), "scan.imzML", "scan.ibd")
        if adata is not None:
            assert_sound_msi(adata, 100.0)


@PROPERTIES
@given(xml=st.binary(max_size=400), ibd=st.binary(max_size=64))
def test_imzml_random_bytes(xml, ibd):
    with scratch() as folder:
        path = folder / "noise.imzML"
        path.write_bytes(xml)
        path.with_suffix(".ibd").write_bytes(ibd)
        adata = outcome(lambda: read_imzml(path, bin_width=1.0, pixel_size_um=10.0), "noise.imzML", "noise.ibd")
        if adata is not None:
            assert_sound_msi(adata, 10.0)


@PROPERTIES
@example(intensities=[1.0] * 6, mzs=[100.0, float("inf")] * 3, binning={"bin_width": 10.0}, normalize=None)
@example(intensities=[1.0] * 6, mzs=[100.0, 1e300] * 3, binning={"bin_width": 10.0}, normalize=None)
@example(intensities=[1.0] * 6, mzs=[100.0, float("nan")] * 3, binning={"mz_bins": [100.0, 250.0], "ppm": 50.0}, normalize=None)
@example(intensities=[1e300, 1.0] * 3, mzs=[100.0, 250.0] * 3, binning={"mz_bins": [250.0], "ppm": 50.0}, normalize="rms")
@given(
    intensities=st.lists(extreme_floats(), min_size=6, max_size=6),
    mzs=st.lists(st.sampled_from([100.0, 100.0 + 1e-9, 0.0, -5.0, 1e300, float("nan"), float("inf"), 250.0]), min_size=6, max_size=6),
    binning=st.sampled_from([{"bin_width": 10.0}, {"mz_bins": [100.0, 250.0], "ppm": 50.0}, {"bin_width": 1.0, "mz_range": (90.0, 300.0)}]),
    normalize=st.sampled_from([None, "tic", "rms"]),
)
def test_imzml_extreme_numbers(intensities, mzs, binning, normalize):
    from pyimzml.ImzMLWriter import ImzMLWriter

    with scratch() as folder:
        path = folder / "extreme.imzML"
        # float64 on disk, so values beyond float32 reach the reader as they are
        with ImzMLWriter(str(path), mode="processed", intensity_dtype=np.float64) as writer:
            for k, (x, y) in enumerate([(1, 1), (2, 1), (1, 2)]):
                order = np.argsort(mzs[2 * k : 2 * k + 2])
                writer.addSpectrum(np.asarray(mzs[2 * k : 2 * k + 2])[order], np.asarray(intensities[2 * k : 2 * k + 2])[order], (x, y))
        read = lambda: read_imzml(path, pixel_size_um=10.0, normalize=normalize, **binning)  # noqa: E731
        adata = outcome(read, "extreme.imzML", "extreme.ibd")
        if adata is not None:
            assert_sound_msi(adata, 10.0)


# --- Visium ------------------------------------------------------------------------------
def _visium_copy(folder: Path) -> Path:
    outs = folder / "outs"
    (outs / "spatial").mkdir(parents=True)
    for name in VISIUM_FILES:
        shutil.copy(VISIUM / name, outs / name)
    return outs


@functools.cache
def fixture_um_per_px() -> float:
    return read_visium(VISIUM, load_images=False).uns["spatial_mg"]["um_per_fullres_px"]


def assert_sound_visium(adata) -> None:
    assert adata.n_obs > 0 and adata.n_vars > 0
    assert np.issubdtype(adata.X.dtype, np.integer) and (adata.X.data >= 0).all()
    assert np.isfinite(adata.obsm["spatial"]).all() and adata.obs_names.is_unique
    assert set(adata.obs["in_tissue"]) <= {0, 1}
    # whatever was damaged, a result keeps the run's micrometres (its spots lie on the 100 um grid)
    assert abs(adata.uns["spatial_mg"]["um_per_fullres_px"] / fixture_um_per_px() - 1) < 0.02


@PROPERTIES
@given(change=damage, which=st.sampled_from(VISIUM_FILES))
@example(change=("overwrite", 873, 8, b"\x00" * 8), which=VISIUM_FILES[0])  # h5py's RuntimeError
@example(change=("overwrite", 40, 1, b"\xff"), which=VISIUM_FILES[1])  # UnicodeDecodeError
@example(change=("overwrite", 5, 1, b"\xff"), which=VISIUM_FILES[2])
def test_visium_damaged_bytes(change, which):
    with scratch() as folder:
        outs = _visium_copy(folder)
        target = outs / which
        target.write_bytes(damaged(target.read_bytes(), *change))
        adata = outcome(lambda: read_visium(outs, load_images=False), Path(which).name, str(outs))
        if adata is not None:
            assert_sound_visium(adata)


@PROPERTIES
@example(column=4, rows=[3], value=float("inf"))  # a pixel position
@example(column=2, rows=[3, 50], value=1e39)  # array_row: bends the grid fit
@example(column=3, rows=[3], value=0.5)
@example(column=1, rows=[3], value=2.0)  # in_tissue
@given(
    column=st.sampled_from([1, 2, 3, 4, 5]),
    rows=st.lists(st.integers(0, 99), min_size=1, max_size=3),
    value=extreme_floats(),
)
def test_visium_extreme_positions(column, rows, value):
    with scratch() as folder:
        outs = _visium_copy(folder)
        positions = outs / "spatial" / "tissue_positions_list.csv"
        table = pd.read_csv(positions, header=None)
        table[column] = table[column].astype(np.float64)
        table.loc[rows, column] = value
        table.to_csv(positions, header=False, index=False, float_format="%.17g")
        adata = outcome(lambda: read_visium(outs, load_images=False), "tissue_positions_list.csv", str(outs))
        if adata is not None:
            assert_sound_visium(adata)


@PROPERTIES
@given(entries=st.lists(st.integers(0, 655), min_size=1, max_size=3), value=extreme_floats())
def test_visium_extreme_counts(entries, value):
    import h5py

    with scratch() as folder:
        outs = _visium_copy(folder)
        with h5py.File(outs / VISIUM_FILES[0], "r+") as f:
            data = f["matrix"]["data"][:]
            data[entries] = value
            del f["matrix"]["data"]
            f["matrix"].create_dataset("data", data=data)
        adata = outcome(lambda: read_visium(outs, load_images=False), VISIUM_FILES[0])
        if adata is not None:
            assert_sound_visium(adata)


@PROPERTIES
@example(value=None, key="spot_diameter_fullres")
@example(value="ab", key="tissue_hires_scalef")
@example(value=0.0, key="spot_diameter_fullres")
@example(value=5e-324, key="spot_diameter_fullres")
@given(value=st.one_of(extreme_floats(), st.text(max_size=5), st.none(), st.booleans()), key=st.sampled_from(["spot_diameter_fullres", "tissue_hires_scalef"]))
def test_visium_extreme_scalefactors(value, key):
    import json

    with scratch() as folder:
        outs = _visium_copy(folder)
        path = outs / "spatial" / "scalefactors_json.json"
        factors = json.loads(path.read_text())
        factors[key] = value
        path.write_text(json.dumps(factors))  # NaN and inf as JSON's NaN and Infinity, as Python writes them
        adata = outcome(lambda: read_visium(outs, load_images=False), "scalefactors_json.json", str(outs))
        if adata is not None:
            assert_sound_visium(adata)
