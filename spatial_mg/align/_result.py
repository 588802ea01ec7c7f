"""The registration result: the pose, the frame it maps between, its quality figures."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import anndata as ad
import numpy as np

from .._json import jsonable
from ._inputs import msi_coordinates, stored_points
from ._pose import Pose


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
        return jsonable(asdict(self))


@dataclass
class RegistrationResult:
    """The pose from MSI micrometres to STR micrometres, its frame and its QC.

    Attributes
    ----------
    pose
        :class:`Pose` mapping MSI micrometres to STR micrometres (a 3 x 3 matrix is taken
        too); ``affine`` is its matrix.
    method
        ``"moscot"`` or ``"landmarks"``.
    qc
        :class:`RegistrationQC`.
    msi_tissue
        Boolean mask over the MSI pixels: those kept as tissue by the background rule.
    n_msi, n_rna
        Numbers of MSI pixels and STR spots registered (0: not recorded).
    plan
        The transport plan moscot returned (MSI subsample x RNA subsample), or ``None``.
    plan_msi_index, plan_rna_index
        Row positions (in ``msi`` / ``rna``) of the plan's rows and columns.
    params
        The arguments the registration ran with.
    msi_pixel_size_um
        The MSI raster step the registration used: with ``msi.obsm["spatial"]`` it gives
        MSI micrometres (default: ``qc.details["msi_pixel_size_um"]``, where results of
        older versions keep it).
    rna_fingerprint, msi_fingerprint
        Short digests of the obs names registered, so that :meth:`check_pair` can tell
        another pair of AnnData objects of the same sizes (``None``: not recorded).
    """

    pose: Pose
    method: str
    qc: RegistrationQC
    msi_tissue: np.ndarray | None = None
    n_msi: int = 0
    n_rna: int = 0
    plan: np.ndarray | None = None
    plan_msi_index: np.ndarray | None = None
    plan_rna_index: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    msi_pixel_size_um: float | None = field(default=None, kw_only=True)
    rna_fingerprint: str | None = field(default=None, kw_only=True)
    msi_fingerprint: str | None = field(default=None, kw_only=True)

    def __post_init__(self):
        if not isinstance(self.pose, Pose):
            self.pose = Pose(self.pose)
        if self.msi_pixel_size_um is None:
            self.msi_pixel_size_um = self.qc.details.get("msi_pixel_size_um")
        size = self.msi_pixel_size_um
        if size is None or not (np.isfinite(float(size)) and float(size) > 0):
            raise ValueError(
                f"A registration needs the MSI pixel size (positive micrometres), got {size!r}: pass "
                "msi_pixel_size_um=<micrometres>."
            )
        self.msi_pixel_size_um = float(size)

    # --- the frame ------------------------------------------------------------------

    @property
    def affine(self) -> np.ndarray:
        """The pose as a 3 x 3 homogeneous matrix: ``str_um = affine[:2, :2] @ msi_um + affine[:2, 2]``."""
        return self.pose.matrix

    def transform(self, points: np.ndarray) -> np.ndarray:
        """Map MSI micrometres (n x 2) to STR micrometres."""
        return self.pose.apply(points)

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        """Map STR micrometres (n x 2) back to MSI micrometres."""
        return self.pose.inverse().apply(points)

    def distance_to(self, truth: Pose | np.ndarray, points: np.ndarray) -> np.ndarray:
        """Per point, how far apart (um) this registration and ``truth`` (a :class:`Pose` or
        3 x 3 matrix, MSI um -> STR um: a known truth, a landmark fit) put the MSI points
        ``points`` (n x 2, um)."""
        truth = truth if isinstance(truth, Pose) else Pose(truth)
        return np.linalg.norm(self.transform(points) - truth.apply(points), axis=1)

    def check_pair(self, rna: ad.AnnData, msi: ad.AnnData) -> None:
        """Raise a ``ValueError`` unless ``rna`` and ``msi`` are the objects registered.

        Compares the numbers of spots and pixels and, where recorded, digests of their
        obs names (same names in the same order); a cheap guard against pairing a
        registration with another section's data.
        """
        if (self.n_msi and self.n_msi != msi.n_obs) or (self.n_rna and self.n_rna != rna.n_obs):
            found = f"rna has {rna.n_obs} spots and msi {msi.n_obs} pixels"
        else:
            recorded = (("rna", rna, self.rna_fingerprint), ("msi", msi, self.msi_fingerprint))
            renamed = [what for what, adata, digest in recorded if digest is not None and obs_fingerprint(adata) != digest]
            found = None
            if renamed:
                found = f"the obs names of {' and '.join(renamed)} are not those registered (other ones, or another order)"
        if found is not None:
            raise ValueError(
                f"This registration was computed for {self.n_rna} spots and {self.n_msi} MSI pixels, but {found}: "
                "pair the same objects you registered (or register these)."
            )
        if self.msi_tissue is not None and np.shape(self.msi_tissue) != (msi.n_obs,):
            raise ValueError(
                f"reg.msi_tissue has {np.size(self.msi_tissue)} entries for {msi.n_obs} pixels; register these objects again."
            )

    def msi_um(self, msi: ad.AnnData) -> np.ndarray:
        """The MSI pixel centres in MSI micrometres (``msi.obsm["spatial"]``, checked against the pixel size)."""
        return msi_coordinates(msi, self.msi_pixel_size_um)

    def registered_msi_um(self, msi: ad.AnnData) -> np.ndarray:
        """The MSI pixel centres mapped into STR micrometres."""
        return self.transform(self.msi_um(msi))

    def rna_um(self, rna: ad.AnnData) -> np.ndarray:
        """The spot centres in STR micrometres (``rna.obsm["spatial"]``, checked to be finite)."""
        return stored_points(rna, "rna")

    # --- storage --------------------------------------------------------------------

    def to_dict(self, include_plan: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict (the plan only when asked: it can be large)."""
        out = {
            "pose": self.pose.to_dict(),
            "affine": self.pose.matrix.tolist(),  # what versions before the Pose read
            "msi_pixel_size_um": self.msi_pixel_size_um,
            "method": self.method,
            "qc": jsonable(asdict(self.qc)),
            "msi_tissue": _pack(self.msi_tissue),
            "n_msi": int(self.n_msi),
            "n_rna": int(self.n_rna),
            "rna_fingerprint": self.rna_fingerprint,
            "msi_fingerprint": self.msi_fingerprint,
            "params": jsonable(self.params),
        }
        if include_plan and self.plan is not None:
            out["plan"] = np.asarray(self.plan).tolist()
            out["plan_msi_index"] = np.asarray(self.plan_msi_index).tolist()
            out["plan_rna_index"] = np.asarray(self.plan_rna_index).tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegistrationResult:
        """Rebuild a result written by :meth:`to_dict`, this version's or an older one's.

        Older results carry only ``"affine"``, keep the pixel size in the QC details and
        record no fingerprints (:meth:`check_pair` then compares the sizes alone).
        """
        matrix = np.asarray(data["pose"]["matrix"] if "pose" in data else data["affine"], dtype=np.float64)
        if matrix.shape != (3, 3):
            raise ValueError(f"'affine' must be 3 x 3, got shape {matrix.shape}.")
        qc_fields = {f.name for f in fields(RegistrationQC)}
        qc = RegistrationQC(**{k: v for k, v in data["qc"].items() if k in qc_fields})
        plan = data.get("plan")
        return cls(
            pose=Pose(matrix),
            method=data["method"],
            qc=qc,
            msi_tissue=_unpack(data.get("msi_tissue")),
            n_msi=int(data.get("n_msi", 0)),
            n_rna=int(data.get("n_rna", 0)),
            plan=None if plan is None else np.asarray(plan, dtype=np.float64),
            plan_msi_index=None if plan is None else np.asarray(data["plan_msi_index"], dtype=np.int64),
            plan_rna_index=None if plan is None else np.asarray(data["plan_rna_index"], dtype=np.int64),
            params=data.get("params", {}),
            msi_pixel_size_um=data.get("msi_pixel_size_um"),
            rna_fingerprint=data.get("rna_fingerprint"),
            msi_fingerprint=data.get("msi_fingerprint"),
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


def obs_fingerprint(adata: ad.AnnData) -> str:
    """A short digest of ``adata``'s obs names in order (16 hex digits)."""
    text = "\n".join(map(str, adata.obs_names)).encode("utf-8")
    return hashlib.blake2b(text, digest_size=8).hexdigest()


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
