"""Weighted Procrustes: every rotation, reflection and scale is recovered exactly."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_mg.align import Pose, fit_affine, fit_plan, fit_similarity


@pytest.mark.parametrize("angle", [-180.0, -135.0, -30.0, 0.0, 45.0, 91.0, 179.0])
@pytest.mark.parametrize("reflection", [False, True])
def test_similarity_recovers_any_rotation_and_reflection(angle, reflection):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 3000, size=(40, 2))
    truth = Pose.similarity(1.07, angle, reflection, (250.0, -900.0))
    fit = fit_similarity(src, truth.apply(src))
    np.testing.assert_allclose(fit, truth, atol=1e-8)
    assert fit.reflection is reflection
    assert fit.scale == pytest.approx(1.07)
    assert (fit.rotation_deg - angle + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-8)


def test_forced_handedness_and_weights():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 2)) * 500
    truth = Pose.similarity(0.9, 20.0, False, (10.0, 20.0))
    dst = truth.apply(src)
    mirrored = fit_similarity(src, dst, reflection=True)
    assert mirrored.reflection and not fit_similarity(src, dst).reflection
    # a zero-weight outlier does not move the fit; unweighted it would
    bad = dst.copy()
    bad[0] += 5000
    w = np.ones(len(src))
    w[0] = 0
    np.testing.assert_allclose(fit_similarity(src, bad, w), truth, atol=1e-8)
    assert not np.allclose(fit_similarity(src, bad), truth, atol=1e-3)


def test_rigid_keeps_unit_scale():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(20, 2)) * 100
    fit = fit_similarity(src, Pose.similarity(1.3, 10.0).apply(src), scale=False)
    assert fit.scale == pytest.approx(1.0)


def test_affine_recovers_shear():
    rng = np.random.default_rng(4)
    src = rng.uniform(-1000, 1000, size=(25, 2))
    truth = Pose([[1.1, 0.2, 5.0], [-0.1, 0.9, -7.0], [0, 0, 1]])
    np.testing.assert_allclose(fit_affine(src, truth.apply(src)), truth, atol=1e-8)
    assert truth.anisotropy > 1.05 and not truth.is_similarity


def test_plan_fit_is_not_shrunk_by_a_blurred_plan():
    """An entropic plan spreads each point over its neighbours; the scale must survive it."""
    g = np.stack(np.meshgrid(np.arange(30), np.arange(30)), -1).reshape(-1, 2) * 50.0
    truth = Pose.similarity(1.04, 63.0, True, (100.0, 200.0))
    dst = truth.apply(g)
    d2 = ((truth.apply(g)[:, None] - dst[None]) ** 2).sum(-1)
    plan = np.exp(-d2 / (2 * 60.0**2))  # every point spread over ~2 neighbours each way
    plan /= plan.sum()
    naive = fit_similarity(g, dst, plan=plan)
    fit = fit_plan(g, dst, plan)
    assert naive.scale < 1.035  # entry-by-entry fitting shrinks
    assert fit.scale == pytest.approx(1.04, rel=2e-3)
    assert fit.reflection
