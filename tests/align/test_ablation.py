"""register(coupling="nearest"): moscot's coupling replaced by a nearest-neighbour one (the ablation)."""

from __future__ import annotations

import numpy as np
import pytest
from align_data import median_error

from spatial_mg.align import register


def test_removing_the_coupling_changes_the_result(mirrored_pair, mirrored_registration):
    rna, msi, affine = mirrored_pair
    with_moscot = mirrored_registration
    without = register(rna, msi, device="cpu", n_subsample=250, coupling="nearest")
    assert without.params["coupling"] == "nearest" and with_moscot.params["coupling"] == "moscot"
    # the plan's candidates differ, so the refits do; on this fixture they all reach the same
    # optimum (mismatch equal to 5 digits since the masks spread points bilinearly), and
    # which of them wins is a tie that either coupling may break
    assert not np.array_equal(without.affine, with_moscot.affine)
    assert [c["pose"] for c in without.qc.details["candidates"]] != [c["pose"] for c in with_moscot.qc.details["candidates"]]
    # the nearest-neighbour plan pairs each sampled pixel with one spot at most; moscot's spreads it
    assert ((without.plan > 0).sum(axis=1) <= 1).all()
    assert ((with_moscot.plan > 1e-12).sum(axis=1) > 1).mean() > 0.5
    # both land on the right pose (the default's precision: benchmarks/alignment.py --ablate)
    assert median_error(without, msi, affine) < 15.0


def test_unknown_coupling_is_refused(mirrored_pair):
    rna, msi, _ = mirrored_pair
    with pytest.raises(ValueError, match="coupling must be one of"):
        register(rna, msi, coupling="random")
