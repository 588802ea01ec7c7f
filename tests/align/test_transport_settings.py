"""TransportSettings: register's solver arguments in one object, turned into moscot's solve arguments."""

from __future__ import annotations

import pytest

from spatial_mg.align._moscot import TransportSettings


def test_solve_arguments_follow_the_settings():
    settings = TransportSettings(epsilon=0.02, tau_a=0.8, tau_b=0.7, max_iterations=7.0)
    pure = settings.solve_arguments(fused=False)
    assert pure == {"alpha": 1.0, "epsilon": 0.02, "tau_a": 0.8, "tau_b": 0.7, "rank": -1, "scale_cost": 1.0, "max_iterations": 7}
    assert settings.solve_arguments(fused=True)["alpha"] == 0.5  # fused GW: half geometry, half features by default
    assert TransportSettings(alpha=0.3).solve_arguments(fused=True)["alpha"] == 0.3
    with pytest.raises(ValueError, match="alpha must be in"):
        TransportSettings(alpha=1.0).solve_arguments(fused=True)
    assert TransportSettings(rank=20, epsilon=None).solve_arguments(fused=False)["epsilon"] == 0.0
    # anything else solve accepts goes through, and wins
    assert TransportSettings(solve_kwargs={"epsilon": 0.5, "threshold": 1e-4}).solve_arguments(fused=False)["epsilon"] == 0.5


def test_settings_are_a_value():
    given = {"threshold": 1e-4}
    settings = TransportSettings(solve_kwargs=given)
    given["threshold"] = 1.0  # the caller's dict changing later does not reach the settings
    assert settings.solve_kwargs == {"threshold": 1e-4}
    with pytest.raises(AttributeError):
        settings.epsilon = 1.0
    smoother = settings.smoother()
    assert smoother.epsilon == 5 * settings.epsilon and smoother.solve_kwargs == settings.solve_kwargs
    assert TransportSettings().solve_kwargs == {} and TransportSettings(solve_kwargs=None).solve_kwargs == {}
