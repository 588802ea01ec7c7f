"""``Pose``: a plane affine transform from MSI micrometres to STR micrometres, as a value.

A pose is a 3 x 3 homogeneous matrix acting on column vectors,
``y = A[:2, :2] @ x + A[:2, 2]``, read once as a similarity
``scale * R(rotation_deg) @ diag(1, -1 if reflection else 1)`` plus ``shift`` (a mirror
about the source x axis, then a turn, then a shift). For a general affine the reading is
the closest such similarity and ``anisotropy`` (the ratio of the linear part's singular
values) says how far from one it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._geometry import rotation_matrix

# a bottom row this close to (0, 0, 1) is taken for it (an inverse leaves ~1e-17 there)
_BOTTOM_ROW_TOLERANCE = 1e-9
# singular values this close count as equal: a similarity, up to rounding
_SIMILARITY_TOLERANCE = 1e-9


class Pose:
    """An immutable plane transform, MSI micrometres -> STR micrometres.

    Parameters
    ----------
    matrix
        3 x 3 homogeneous matrix (column vectors: ``y = A[:2, :2] @ x + A[:2, 2]``); its
        bottom row must be ``(0, 0, 1)``. Anything ``numpy.asarray`` turns into one works,
        a ``Pose`` too.

    Attributes
    ----------
    scale
        ``sqrt(|det A[:2, :2]|)``.
    rotation_deg
        Turn of the closest similarity, in [-180, 180] degrees.
    reflection
        Whether the linear part mirrors (negative determinant).
    anisotropy
        Ratio of the linear part's singular values: 1 for a similarity.
    """

    __slots__ = ("_matrix", "scale", "rotation_deg", "reflection", "anisotropy")

    def __init__(self, matrix):
        m = np.array(matrix, dtype=np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"A pose is a 3 x 3 homogeneous matrix; got shape {m.shape}.")
        if not np.isfinite(m).all():
            raise ValueError("The pose matrix has NaN or infinite entries.")
        if not np.allclose(m[2], [0.0, 0.0, 1.0], rtol=0.0, atol=_BOTTOM_ROW_TOLERANCE):
            raise ValueError(
                f"The pose matrix's bottom row is {m[2].tolist()}, not (0, 0, 1): it is not a plane affine transform."
            )
        m[2] = (0.0, 0.0, 1.0)
        m.setflags(write=False)
        linear = m[:2, :2]
        det = float(np.linalg.det(linear))
        reflection = det < 0
        sv = np.linalg.svd(linear, compute_uv=False)
        unflipped = linear @ np.diag([1.0, -1.0 if reflection else 1.0])
        # angle of the closest rotation: exact for [[a, -b], [b, a]]-like parts
        angle = np.degrees(np.arctan2(unflipped[1, 0] - unflipped[0, 1], unflipped[0, 0] + unflipped[1, 1]))
        set_ = object.__setattr__
        set_(self, "_matrix", m)
        set_(self, "scale", float(np.sqrt(abs(det))))
        set_(self, "rotation_deg", float(angle))
        set_(self, "reflection", bool(reflection))
        set_(self, "anisotropy", float(sv[0] / sv[1]) if sv[1] > 0 else float("inf"))

    def __setattr__(self, name, value):
        raise AttributeError("A Pose is immutable: build a new one (Pose.similarity, a @ b, inverse()).")

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_matrix(cls, matrix) -> Pose:
        """The pose of a 3 x 3 homogeneous matrix (the same as ``Pose(matrix)``)."""
        return cls(matrix)

    @classmethod
    def similarity(cls, scale: float = 1.0, rotation_deg: float = 0.0, reflection: bool = False, shift=(0.0, 0.0)) -> Pose:
        """``scale * R(rotation_deg) @ diag(1, -1 if reflection else 1)``, then ``shift``."""
        out = np.eye(3)
        out[:2, :2] = scale * rotation_matrix(np.deg2rad(rotation_deg)) @ np.diag([1.0, -1.0 if reflection else 1.0])
        out[:2, 2] = shift
        return cls(out)

    @classmethod
    def identity(cls) -> Pose:
        """The pose that moves nothing."""
        return cls(np.eye(3))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pose:
        """Rebuild a pose written by :meth:`to_dict` (only its matrix is read)."""
        return cls(data["matrix"])

    # --- reading --------------------------------------------------------------------

    @property
    def matrix(self) -> np.ndarray:
        """The 3 x 3 homogeneous matrix (a copy)."""
        return self._matrix.copy()

    @property
    def linear(self) -> np.ndarray:
        """The 2 x 2 linear part (a copy)."""
        return self._matrix[:2, :2].copy()

    @property
    def shift(self) -> np.ndarray:
        """The translation, ``A[:2, 2]`` (a copy)."""
        return self._matrix[:2, 2].copy()

    @property
    def is_similarity(self) -> bool:
        """Whether the linear part is a turn (and mirror) times one scale, up to rounding."""
        return abs(self.anisotropy - 1.0) <= _SIMILARITY_TOLERANCE

    def parts(self) -> dict[str, float | bool]:
        """``scale``, ``rotation_deg``, ``reflection`` and ``anisotropy`` as a dict."""
        return {
            "scale": self.scale,
            "rotation_deg": self.rotation_deg,
            "reflection": self.reflection,
            "anisotropy": self.anisotropy,
        }

    # --- acting ---------------------------------------------------------------------

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``points`` (n x 2, MSI um) to STR um."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self._matrix[:2, :2].T + self._matrix[:2, 2]

    def inverse(self) -> Pose:
        """The pose that undoes this one (STR um -> MSI um)."""
        return Pose(np.linalg.inv(self._matrix))

    def __matmul__(self, other: Pose) -> Pose:
        """``a @ b``: ``b`` first, then ``a``."""
        if not isinstance(other, Pose):
            return NotImplemented
        return Pose(self._matrix @ other._matrix)

    def displacement(self, other: Pose, points: np.ndarray) -> float:
        """Mean distance (um) between where this pose and ``other`` put ``points``."""
        return float(np.linalg.norm(self.apply(points) - other.apply(points), axis=1).mean())

    # --- conversion -----------------------------------------------------------------

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The matrix for numpy: a writable copy, or the read-only matrix itself when ``copy=False``."""
        if copy is False and dtype in (None, self._matrix.dtype):
            return self._matrix
        return self._matrix.astype(dtype or self._matrix.dtype, copy=True)

    def to_spatialdata(self):
        """The pose as a ``spatialdata.transformations.Affine`` on the axes ``x, y``."""
        from spatialdata.transformations import Affine

        return Affine(self.matrix, input_axes=("x", "y"), output_axes=("x", "y"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the matrix, and its reading for people."""
        return {"matrix": self._matrix.tolist(), **self.parts(), "shift": self._matrix[:2, 2].tolist()}

    def __eq__(self, other) -> bool:
        if not isinstance(other, Pose):
            return NotImplemented
        return bool(np.array_equal(self._matrix, other._matrix))

    def __hash__(self) -> int:
        return hash(self._matrix.tobytes())

    def __repr__(self) -> str:
        x, y = self._matrix[:2, 2]
        text = f"Pose(scale={self.scale:.4f}, rotation_deg={self.rotation_deg:.2f}, reflection={self.reflection}, shift=({x:.1f}, {y:.1f})"
        if not self.is_similarity:
            text += f", anisotropy={self.anisotropy:.4f}"
        return text + ")"
