"""The registration result: the transform, its quality figures, and what pairing needs."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ._procrustes import apply_affine


@dataclass
class RegistrationQC:
    """How far to trust a registration.

    Attributes
    ----------
    overlap_fraction
        Share of the STR spots that lie under the registered MSI raster (inside the area
        the MSI measured, tissue or not): how much the two acquisitions overlap.
    matched_fraction
        Where both modalities measured, the share of registered MSI tissue pixels and STR
        spots (pooled) that have a counterpart within ``match_radius_um``: how well the two
        tissues agree where they overlap. Near 1 for a correct registration.
    residual_um
        ``method="landmarks"``: root mean square distance of the registered MSI landmarks
        from their STR partners. ``method="moscot"``: median distance from a matched
        registered pixel centre to the nearest spot centre; the two grids differ, so even a
        perfect fit leaves about a third of the coarser pitch.
    scale, rotation_deg, reflection, anisotropy
        The transform read as ``scale * R(rotation_deg) @ diag(1, -1 if reflection)``;
        anisotropy is 1 for a similarity. Both sides are in micrometres, so the scale
        should be near 1.
    confidence
        ``"high"`` or ``"low"``.
    reason
        Plain-language reasons for a low confidence, and what to check; empty when high.
    details
        Everything else measured on the way (counts, rules, timings, candidate scores).
    """

    overlap_fraction: float
    matched_fraction: float
    residual_um: float
    scale: float
    rotation_deg: float
    reflection: bool
    anisotropy: float
    confidence: str
    reason: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The QC as a JSON-serialisable dict."""
        return _jsonable(asdict(self))


@dataclass
class RegistrationResult:
    """The transform from MSI micrometres to STR micrometres, with its QC.

    Attributes
    ----------
    affine
        3 x 3 homogeneous matrix: ``str_um = affine[:2, :2] @ msi_um + affine[:2, 2]``.
    method
        ``"moscot"`` or ``"landmarks"``.
    qc
        :class:`RegistrationQC`.
    msi_tissue
        Boolean mask over the MSI pixels: those kept as tissue by the background rule.
    n_msi, n_rna
        Numbers of MSI pixels and STR spots registered (checked by :func:`pair`).
    plan
        The transport plan moscot returned (MSI subsample x STR subsample), or ``None``.
    plan_msi_index, plan_rna_index
        Row positions (in ``msi`` / ``rna``) of the plan's rows and columns.
    params
        The arguments the registration ran with.
    """

    affine: np.ndarray
    method: str
    qc: RegistrationQC
    msi_tissue: np.ndarray | None = None
    n_msi: int = 0
    n_rna: int = 0
    plan: np.ndarray | None = None
    plan_msi_index: np.ndarray | None = None
    plan_rna_index: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def transform(self, points: np.ndarray) -> np.ndarray:
        """Map MSI micrometres (n x 2) to STR micrometres."""
        return apply_affine(self.affine, points)

    def distance_to(self, affine: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Per point, how far apart (um) this registration and ``affine`` (3 x 3, MSI um ->
        STR um: a known truth, a landmark fit) put the MSI points ``points`` (n x 2, um)."""
        points = np.asarray(points, dtype=float)
        return np.linalg.norm(self.transform(points) - apply_affine(np.asarray(affine, dtype=float), points), axis=1)

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        """Map STR micrometres (n x 2) back to MSI micrometres."""
        return apply_affine(np.linalg.inv(self.affine), points)

    def to_dict(self, include_plan: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict (the plan only when asked: it can be large)."""
        out = {
            "affine": np.asarray(self.affine).tolist(),
            "method": self.method,
            "qc": _jsonable(asdict(self.qc)),
            "msi_tissue": _pack(self.msi_tissue),
            "n_msi": int(self.n_msi),
            "n_rna": int(self.n_rna),
            "params": _jsonable(self.params),
        }
        if include_plan and self.plan is not None:
            out["plan"] = np.asarray(self.plan).tolist()
            out["plan_msi_index"] = np.asarray(self.plan_msi_index).tolist()
            out["plan_rna_index"] = np.asarray(self.plan_rna_index).tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegistrationResult:
        """Rebuild a result written by :meth:`to_dict`."""
        affine = np.asarray(data["affine"], dtype=np.float64)
        if affine.shape != (3, 3):
            raise ValueError(f"'affine' must be 3 x 3, got shape {affine.shape}.")
        qc_fields = {f.name for f in fields(RegistrationQC)}
        qc = RegistrationQC(**{k: v for k, v in data["qc"].items() if k in qc_fields})
        plan = data.get("plan")
        return cls(
            affine=affine,
            method=data["method"],
            qc=qc,
            msi_tissue=_unpack(data.get("msi_tissue")),
            n_msi=int(data.get("n_msi", 0)),
            n_rna=int(data.get("n_rna", 0)),
            plan=None if plan is None else np.asarray(plan, dtype=np.float64),
            plan_msi_index=None if plan is None else np.asarray(data["plan_msi_index"], dtype=np.int64),
            plan_rna_index=None if plan is None else np.asarray(data["plan_rna_index"], dtype=np.int64),
            params=data.get("params", {}),
        )

    def to_json(self, include_plan: bool = False) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(include_plan=include_plan), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RegistrationResult:
        """Rebuild a result from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def __repr__(self) -> str:
        q = self.qc
        return (
            f"RegistrationResult(method={self.method!r}, scale={q.scale:.4f}, rotation={q.rotation_deg:.2f} deg, "
            f"reflection={q.reflection}, overlap={q.overlap_fraction:.2f}, matched={q.matched_fraction:.2f}, "
            f"residual={q.residual_um:.1f} um, confidence={q.confidence!r}"
            + (f", reason={q.reason!r})" if q.reason else ")")
        )


def _pack(mask: np.ndarray | None) -> dict | None:
    """A boolean mask as base64 bits (a million pixels take 170 kB of JSON)."""
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    return {"n": int(mask.size), "bits": base64.b64encode(np.packbits(mask).tobytes()).decode("ascii")}


def _unpack(packed: dict | None) -> np.ndarray | None:
    if packed is None:
        return None
    bits = np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8)
    return np.unpackbits(bits, count=int(packed["n"])).astype(bool)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
