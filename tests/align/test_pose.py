"""Pose: a plane transform as a value; its reading, inverse, composition and conversions agree with its matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spatial_mg.align import Pose

POINTS = np.random.default_rng(0).uniform(-2000, 2000, size=(25, 2))


def _homogeneous(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The textbook product: [x, y, 1] through the matrix, as column vectors."""
    return (matrix @ np.column_stack([points, np.ones(len(points))]).T).T[:, :2]


@pytest.mark.parametrize("angle", [-179.0, -90.0, -12.5, 0.0, 33.0, 90.0, 180.0])
@pytest.mark.parametrize("reflection", [False, True])
@pytest.mark.parametrize("scale", [0.5, 1.0, 1.3])
def test_similarity_matrix_and_reading_round_trip(angle, reflection, scale):
    pose = Pose.similarity(scale, angle, reflection, (120.0, -45.0))
    again = Pose(pose.matrix)  # the reading comes from the matrix alone
    assert again == pose
    assert again.scale == pytest.approx(scale)
    assert again.reflection is reflection
    assert (again.rotation_deg - angle + 180) % 360 - 180 == pytest.approx(0.0, abs=1e-9)
    assert again.anisotropy == pytest.approx(1.0) and again.is_similarity
    np.testing.assert_allclose(again.shift, [120.0, -45.0])
    rebuilt = Pose.similarity(again.scale, again.rotation_deg, again.reflection, again.shift)
    np.testing.assert_allclose(rebuilt.matrix, pose.matrix, atol=1e-12)
    # the linear part is scale * R(angle) @ diag(1, -1 if mirrored): a mirror about x first
    t = np.deg2rad(angle)
    expected = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ np.diag([1, -1 if reflection else 1])
    np.testing.assert_allclose(pose.linear, expected, atol=1e-12)


def test_apply_is_the_homogeneous_product():
    pose = Pose([[1.1, 0.2, 5.0], [-0.1, 0.9, -7.0], [0, 0, 1]])
    np.testing.assert_allclose(pose.apply(POINTS), _homogeneous(pose.matrix, POINTS), rtol=1e-12, atol=1e-9)
    assert not pose.is_similarity and pose.anisotropy > 1.05
    assert "anisotropy" in repr(pose)


def test_inverse_and_composition():
    a = Pose.similarity(0.97, 117.0, True, (300.0, 5200.0))
    b = Pose([[1.1, 0.2, 5.0], [-0.1, 0.9, -7.0], [0, 0, 1]])
    np.testing.assert_allclose(a.inverse().apply(a.apply(POINTS)), POINTS, atol=1e-8)
    np.testing.assert_allclose((a @ a.inverse()).matrix, np.eye(3), atol=1e-12)
    # a @ b is b first, then a
    np.testing.assert_allclose((a @ b).apply(POINTS), a.apply(b.apply(POINTS)), atol=1e-8)
    assert not np.allclose((a @ b).matrix, (b @ a).matrix)
    assert (a @ Pose.identity()) == a and (Pose.identity() @ a) == a
    assert a.inverse().reflection and a.inverse().scale == pytest.approx(1 / 0.97)


def test_displacement_is_the_mean_distance_between_images():
    a = Pose.similarity(1.0, 20.0, False, (10.0, 20.0))
    shifted = Pose.similarity(shift=(3.0, 4.0)) @ a
    assert a.displacement(a, POINTS) == 0.0
    assert shifted.displacement(a, POINTS) == pytest.approx(5.0)
    b = Pose.similarity(1.1, -5.0, True)
    expected = np.linalg.norm(a.apply(POINTS) - b.apply(POINTS), axis=1).mean()
    assert a.displacement(b, POINTS) == pytest.approx(expected) == b.displacement(a, POINTS)


def test_a_pose_is_immutable_and_validated():
    pose = Pose.similarity(1.0, 30.0)
    m = pose.matrix
    m[0, 2] = 99.0  # a copy: the pose does not move
    assert pose.shift[0] == 0.0
    with pytest.raises(AttributeError, match="immutable"):
        pose.scale = 2.0
    with pytest.raises(ValueError, match="3 x 3"):
        Pose(np.eye(2))
    with pytest.raises(ValueError, match="bottom row"):
        Pose([[1, 0, 0], [0, 1, 0], [0.1, 0, 1]])
    with pytest.raises(ValueError, match="NaN"):
        Pose([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]])
    source = np.eye(3)
    Pose(source)
    np.testing.assert_array_equal(source, np.eye(3))  # the input is not touched


def test_conversions():
    pose = Pose.similarity(0.97, -65.0, True, (4000.0, 1000.0))
    np.testing.assert_array_equal(np.asarray(pose), pose.matrix)
    affine = pose.to_spatialdata()
    np.testing.assert_array_equal(affine.to_affine_matrix(("x", "y"), ("x", "y")), pose.matrix)
    data = json.loads(json.dumps(pose.to_dict()))
    assert Pose.from_dict(data) == pose
    assert data["reflection"] is True and data["scale"] == pytest.approx(0.97)
    assert Pose.from_matrix(pose.matrix) == pose and hash(Pose(pose)) == hash(pose)
    assert repr(pose) == "Pose(scale=0.9700, rotation_deg=-65.00, reflection=True, shift=(4000.0, 1000.0))"
