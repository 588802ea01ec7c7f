"""Calibration: quantiles of held-out residuals in units of the predictive std, saved with the model."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_mg.model import Calibration


def test_standard_normal_residuals_give_the_normal_factors():
    rng = np.random.default_rng(0)
    cal = Calibration.from_residuals("msi", ["a", "b"], rng.normal(size=(20000, 2)) * [1.0, 3.0], ["s1", "s2"])
    np.testing.assert_allclose(cal.factor(0.9), [1.645, 3 * 1.645], rtol=0.03)
    np.testing.assert_allclose(cal.factor(0.6827), [1.0, 3.0], rtol=0.03)
    assert np.all(np.diff(cal.quantiles, axis=0) >= 0)  # wider intervals for higher levels


def test_the_conformal_quantile_covers_at_least_the_level_on_few_values():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(300):  # exchangeable held-out and new values: coverage >= level on average
        held, new = rng.standard_t(3, size=(40, 1)), rng.standard_t(3, size=(1, 1))
        cal = Calibration.from_residuals("msi", ["a"], held, ["s"])
        covered.append(abs(new[0, 0]) <= cal.factor(0.9)[0])
    assert np.mean(covered) >= 0.87


def test_round_trip_reorder_and_refusals():
    rng = np.random.default_rng(2)
    cal = Calibration.from_residuals("msi", ["a", "b", "c"], rng.normal(size=(100, 3)) * [1, 2, 3], ["s1"])
    back = Calibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(back.quantiles, cal.quantiles)
    np.testing.assert_array_equal(cal.for_features(["c", "a"]).factor(0.9), cal.factor(0.9)[[2, 0]])
    with pytest.raises(KeyError, match="lacks features"):
        cal.for_features(["d"])
    with pytest.raises(ValueError, match="too few"):
        Calibration.from_residuals("msi", ["a"], np.ones((5, 1)), ["s1"])
    with pytest.raises(ValueError, match="between"):
        cal.factor(0.999)
