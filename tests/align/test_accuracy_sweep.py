"""The 10-seed accuracy sweep on the project's generator (slow: run with ``-m slow``).

Same sections as ``benchmarks/alignment.py --parts synthetic``: random rotation over the
whole circle, mirrored on odd seeds, scale in [0.92, 1.06], raster partly off the tissue.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import spatial_mg as smg
from spatial_mg.align import Pose

SEEDS = range(10)


@pytest.fixture(scope="module")
def sweep():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "alignment_benchmark", Path(__file__).resolve().parents[2] / "benchmarks" / "alignment.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = []
    for seed in SEEDS:
        s = smg.sim.synthetic_vicari(
            n_sections=1, seed=seed, n_genes=20, n_metabolites=10, msi_reflect=bool(seed % 2)
        ).sections[0]
        reg = smg.align.register(s.rna, s.msi, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mdata = smg.align.pair(s.rna, s.msi, reg)
        tissue = s.msi.obs["in_tissue"].to_numpy(bool)
        pts = np.asarray(s.msi.obsm["spatial"])[tissue]
        err = np.linalg.norm(reg.transform(pts) - Pose(s.affine).apply(pts), axis=1)
        rows.append(
            {
                "median_error_um": float(np.median(err)),
                "pose_slack_um": reg.qc.details["pose_slack_um"],
                **bench.pairing_truth(mdata, s.msi, reg, s.affine, s.rna),
            }
        )
    return rows


@pytest.mark.slow
def test_every_pose_is_found_and_pairs_are_right(sweep):
    errors = [r["median_error_um"] for r in sweep]
    print(f"\nmedian registration error per seed (um): {np.round(errors, 1).tolist()}, median {np.median(errors):.1f}")
    assert max(errors) < 40.0  # no seed lands on a wrong turn or mirror (those are hundreds of um off)
    assert np.median(errors) < 15.0
    # >= 95 % of spots paired to pixels whose true position is within 60 um (overlap-weighted)
    assert min(r["paired_within_60um_weighted"] for r in sweep) >= 0.95


@pytest.mark.slow
@pytest.mark.xfail(
    reason="issue target not met: about 12 um median over seeds; the spots sample the tissue outline at a 100 um "
    "pitch, and outline-only registration of a 700-spot section lands 6-26 um off (benchmarks/alignment.py)",
    strict=False,
)
def test_median_error_within_10_um(sweep):
    assert np.median([r["median_error_um"] for r in sweep]) <= 10.0


def _register_2000_spots(seed: int):
    """A 2,000-spot section registered from coordinates; the result and its median error (um)."""
    s = smg.sim.synthetic_vicari(n_sections=1, seed=seed, n_spots=2000, n_genes=20, n_metabolites=10).sections[0]
    reg = smg.align.register(s.rna, s.msi, device="cpu")
    tissue = s.msi.obs["in_tissue"].to_numpy(bool)
    pts = np.asarray(s.msi.obsm["spatial"])[tissue]
    return reg, float(np.median(np.linalg.norm(reg.transform(pts) - Pose(s.affine).apply(pts), axis=1)))


@pytest.mark.slow
def test_a_loose_fit_is_flagged():
    """A 2,000-spot section whose raster leaves little outline to go by: refits disagree by ~50 um."""
    reg, err = _register_2000_spots(seed=0)
    assert err > 30.0  # the case this test is about (if registration improves, pick another)
    assert reg.qc.confidence == "low" and "the fit is loose" in reg.qc.reason
    assert reg.qc.details["pose_spread_um"] > 30.0


@pytest.mark.slow
def test_a_fit_that_can_slide_is_flagged():
    """2,000 spots, seed 4: refits from nearby starts agree (~8 um) yet the fit is ~32 um off.

    The common outline barely pins one combination of turn, scale and shift: the pose slides
    about 80 um along it before the outlines mismatch 20 % more (well pinned seeds of the
    700-spot sweep: 27-48 um), and the QC says so.
    """
    reg, err = _register_2000_spots(seed=4)
    assert err > 25.0  # the case this test is about (if registration improves, pick another)
    assert reg.qc.details["pose_spread_um"] < 30.0  # restarts alone do not reveal it
    assert reg.qc.confidence == "low" and "the fit is loose along one direction" in reg.qc.reason
    assert reg.qc.details["pose_slack_um"] > 70.0


@pytest.mark.slow
def test_well_pinned_sweep_fits_are_not_called_loose(sweep):
    assert all(r["pose_slack_um"] < 70.0 for r in sweep)
