"""``register``: the pose from MSI micrometres to STR micrometres, with QC.

The default method (``"moscot"``) is a pipeline of stages over :class:`Pose`, each a
function that says what it decides and why:

1. :func:`prepare_section` (``_section``): both sides in micrometres, checked; pixels the
   MSI did not acquire (empty spectra) left out (``_acquired``); the MSI values read on
   whatever scale they come (``_intensity_scale``) and the background removed
   (``_background``), and each edge pixel's tissue share read from its signal
   (``_partial_volume``); where each modality measured; the RNA side's tissue outline: the
   H&E image's tissue when the spots carry an image that fits them (``_rna_outline``,
   ``_tissue_image``), else the spot centres'.
2. :func:`couple` (``_candidates``): moscot's ``AlignmentProblem`` couples an even
   subsample of each side by Gromov-Wasserstein (geometry only) or fused GW (with shared
   features), unbalanced so that partial overlap is allowed, with the solver settings of
   one :class:`TransportSettings`; a weighted Procrustes fit reads a similarity off the plan.
3. :func:`candidate_poses` (``_candidates``): that fit with either handedness, and the best
   poses of an exhaustive search over turns and translations of the tissue masks.
4. :func:`refine_candidates` and :func:`choose_pose` (``_choose``): each candidate refined
   on the soft tissue masks where both modalities measured (``_refine``); among the poses
   of plausible scale that match about as many pixels and spots as the best, the one whose
   outlines lie closest wins, and the best distinct rival is named.
5. :func:`settle` (``_settle``): the consensus of refits from nearby starts.
5b. :func:`content_move` (``_content``; ``content=True``, the default): the tissue's
   content (RNA and MSI principal components) gives a second estimate of the pose, and the
   pose moves towards it by the share its precision on this section earns (a block
   bootstrap). Where the outlines do not pin the settled pose (a round tissue, say), the
   content is first searched over every turn and shift (``_content_search``) and may
   place the pose itself; the QC then says so.
6. :func:`verify` (``_verify``): the checks every returned pose gets, whatever made it
   (``refine_fit=False`` returns moscot's fit as is, and it is checked the same way; so is
   a pose given to :func:`assess_pose`): how far refits from it end (``pose_drift_um``,
   ``pose_spread_um``), how far it slides before its outlines mismatch 20 % more
   (``pose_slack_um``), and the refined candidates that put the tissue elsewhere as
   rivals (``candidate_margin``, ``rival_score_gain``). The share of moscot's plan mass
   the pose maps within two match radii is ``plan_agreement``.
7. :func:`assess` (``_qc``): overlap, matched fraction, residual, scale, and the checks
   above, and the confidence with its reasons.

``coupling="nearest"`` replaces moscot's plan in step 2 by a nearest-neighbour coupling
under the outline search's best pose (the ablation, ``_nearest``). ``method="landmarks"``
replaces steps 2-6 by a least-squares fit through given point pairs.
"""

from __future__ import annotations

import logging
import time

import anndata as ad
import numpy as np

from .._errors import RegistrationFailedError
from .._logging import Stages
from ..io._spatialdata import as_anndata
from ._agreement import PoseScore
from ._candidates import Coupling, candidate_poses, couple, outline_search
from ._choose import choose_pose, refine_candidates
from ._content import Content, content_move, read_content
from ._content_search import outline_cannot_place, place_by_content
from ._inputs import shared_feature_matrices
from ._landmarks import landmark_pose
from ._moscot import RETRY_EPSILON_FACTOR, TransportSettings, jax_device
from ._nearest import nearest_coupling
from ._pose import Pose
from ._qc import assess
from ._refine import MaskAligner
from ._result import RegistrationResult, obs_fingerprint
from ._section import Section, prepare_section
from ._settle import settle
from ._verify import verify

METHODS = ("moscot", "landmarks")
COUPLINGS = ("moscot", "nearest")
MSI_EDGES = ("soft", "hard")
TRANSFORMS = ("similarity", "affine")

log = logging.getLogger(__name__)


def register(
    rna: ad.AnnData,
    msi: ad.AnnData,
    *,
    method: str = "moscot",
    shared_features: str | tuple[str, str] | None = None,
    alpha: float | None = None,
    landmarks=None,
    transform: str = "similarity",
    refine_fit: bool = True,
    scale: bool = True,
    msi_mask: np.ndarray | str | None = None,
    tic_threshold: float | None = None,
    msi_pixel_size_um: float | None = None,
    n_subsample: int = 500,
    epsilon: float = 1e-2,
    tau_a: float = 0.9,
    tau_b: float = 0.9,
    rank: int = -1,
    max_iterations: int | None = None,
    n_angles: int = 72,
    device: str | None = None,
    solve_kwargs: dict | None = None,
    coupling: str = "moscot",
    tissue_image: str | None = "auto",
    msi_edge: str = "soft",
    content: bool = True,
) -> RegistrationResult:
    """Register MSI pixels onto STR spots.

    Parameters
    ----------
    rna
        Spots (Visium or any STR), ``obsm["spatial"]`` in micrometres; or their SpatialData
        (what ``spatialdata_io.visium`` returns, or a store of :func:`to_spatialdata`), read
        by :func:`spatial_mg.io.section_from_spatialdata`.
    msi
        MSI pixels x m/z, ``obsm["spatial"]`` in micrometres and the pixel size recorded by
        the reader (``uns["spatial_mg"]["pixel_size_um"]``) or given as ``msi_pixel_size_um``;
        or a SpatialData holding them (:func:`spatial_mg.io.msi_from_spatialdata`).
    method
        ``"moscot"`` (optimal transport on the tissue geometry, see the module notes) or
        ``"landmarks"`` (a least-squares fit through ``landmarks``).
    shared_features
        Features measured on both sides (e.g. an image intensity sampled at spots and
        pixels) for fused GW: an ``obsm`` key or ``obs`` column present in both, or a
        ``(rna_key, msi_key)`` pair. ``None``: coordinates only (pure GW).
    alpha
        Weight of geometry against shared features in fused GW (default 0.5).
    landmarks
        For ``method="landmarks"``: ``(msi_points_um, rna_points_um)``, two (k, 2) arrays
        of matching points (k >= 3), or a table (DataFrame or csv path) with
        ``msi_x, msi_y, rna_x, rna_y`` in micrometres, or an SMA / MAGPIE landmark file as
        published (``X_left, Y_left`` on the MSI grid, ``X_right, Y_right`` in Visium
        hires-image pixels), converted with the MSI pixel size and the Visium scale factors
        (see :func:`landmarks_um`).
    transform
        ``"similarity"`` (rotation, reflection, uniform scale, translation) or ``"affine"``.
    refine_fit
        Check the transport fit against the other candidate poses and refine the best on all
        points (module notes); ``False`` returns the Procrustes fit of the plan as is.
    scale
        Fit the scale; ``False`` keeps it at 1 (trust both micrometre scales).
    msi_mask
        On-tissue MSI pixels (booleans or an ``obs`` column), replacing the background rule.
    tic_threshold
        Keep MSI pixels whose summed feature intensity exceeds this, replacing the rule.
    msi_pixel_size_um
        MSI pixel size when the AnnData does not record it.
    n_subsample
        Points per side for the transport solve (an even spatial subsample).
    epsilon, tau_a, tau_b, rank, max_iterations, solve_kwargs
        moscot ``AlignmentProblem.solve`` settings: entropic regularisation, unbalancedness
        on the MSI / STR side (< 1 tolerates partial overlap), low-rank rank (-1: full
        rank), outer iterations and anything else ``solve`` accepts.
    n_angles
        Turns per handedness in the outline search (72: every 5 degrees).
    device
        JAX device for moscot: ``None`` uses a GPU when JAX sees one, else the CPU;
        ``"cpu"`` or ``"gpu"`` to choose.
    coupling
        ``"moscot"`` (default): the optimal-transport coupling. ``"nearest"``: no optimal
        transport; each sampled pixel is coupled to the nearest sampled spot under the
        outline search's best pose (``_nearest``): the ablation that shows what moscot adds.
    tissue_image
        ``"auto"`` (default): when the spots carry their H&E image (``uns["spatial"]``, or
        an image element of the SpatialData) and it fits them, the RNA side's tissue
        outline is the image's (stain against glass, ``_tissue_image``) instead of the
        in-tissue spot centres'; an image without it, with scale factors that disagree
        with the spot grid, or of another section (a warning) falls back to the spots
        (``_rna_outline``). ``None``: the spots' outline. ``qc.details["rna_outline"]``
        says which was used and why.
    msi_edge
        ``"soft"`` (default): the MSI side's tissue outline counts each edge pixel by the
        share of it the tissue covers, read from its signal between the local background
        and tissue levels (``_partial_volume``); where that cannot be read (no
        intensities, a given ``msi_mask`` or ``tic_threshold``, intensities not bimodal)
        the pixels count 0 / 1 and ``qc.details["msi_edge"]`` says why. ``"hard"``: 0 / 1
        always.
    content
        ``True`` (default): after the outlines have settled the pose, move it towards the
        pose under which the spots' RNA best explains the pixels' MSI content, by the
        share that estimate's precision on this section earns (``_content``): about half
        way where the content is rich, hardly at all where it is thin or unrelated. On
        synthetic sections with 300 genes it lowered the error on 19 of 20 seeds; with 20
        genes it was about neutral. It needs both sides' values (RNA ``X``, MSI
        intensities in any scale); ``qc.details`` gives ``content`` (used, or why not),
        ``content_sd_um``, ``content_share`` and ``content_move_um``. Where the outlines do
        not pin the pose by the QC's own measures (a round tissue, say, whose outline says
        nothing of its turn), the content is first searched over every turn, handedness and
        shift (``_content_search``, ~20 s for 700 spots) and places the pose where it
        explains clearly more; ``qc.details["content_search"]`` says what it found, and the
        QC stays "low", naming the content as what placed the pose. ``False``: the
        outlines' pose as it is.

    Returns
    -------
    :class:`RegistrationResult` with ``pose`` (a :class:`Pose`, MSI um -> STR um; ``affine``
    is its 3 x 3 matrix), the frame it maps from (``msi_pixel_size_um``, ``msi_um(msi)``,
    ``check_pair(rna, msi)``), ``method`` and ``qc`` (overlap and matched fractions,
    residual, scale, rotation, reflection, confidence and its reason).
    """
    start = time.perf_counter()
    rna, msi = as_anndata(rna, "rna", load_images=tissue_image is not None), as_anndata(msi, "msi")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}.")
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}.")
    if msi_edge not in MSI_EDGES:
        raise ValueError(f"msi_edge must be one of {MSI_EDGES}, got {msi_edge!r}.")
    settings = TransportSettings(
        n_subsample=n_subsample,
        alpha=alpha,
        epsilon=epsilon,
        tau_a=tau_a,
        tau_b=tau_b,
        rank=rank,
        max_iterations=max_iterations,
        device=device,
        solve_kwargs=solve_kwargs,
    )
    if method == "moscot" and coupling == "moscot":
        jax_device(device)  # fail early on a device JAX does not see
    # one progress line per stage: a registration takes a minute or two on real sections
    stages = Stages(log, "registration", (8 + bool(content) if refine_fit else 6) if method == "moscot" else 3)
    with stages("prepare"):
        section = prepare_section(
            rna,
            msi,
            msi_pixel_size_um=msi_pixel_size_um,
            msi_mask=msi_mask,
            tic_threshold=tic_threshold,
            tissue_image=tissue_image,
            msi_edge=msi_edge,
        )
    notes = [] if section.rna_units_known else ["rna.uns['spatial_mg'] does not record micrometres (assumed)"]
    coupled = residual = None
    if method == "landmarks":
        with stages("landmark fit"):
            pose, info, doubts = landmark_pose(
                landmarks, rna=rna, msi=msi, msi_pixel_size_um=msi_pixel_size_um, transform=transform, scale=scale,
                pitch=section.pitch,
            )
        notes += doubts
        residual = info["landmark_rms_um"]
    else:
        features = shared_feature_matrices(rna, msi, shared_features, section.tissue.mask)
        tissue_content = read_content(rna, msi, section) if content and refine_fit else None
        pose, coupled, info = _moscot_pose(
            section,
            features,
            settings,
            stages,
            transform=transform,
            refine_fit=refine_fit,
            scale=scale,
            n_angles=n_angles,
            nearest=coupling == "nearest",
            content=tissue_content,
        )
        if content and not refine_fit:
            info["content"] = "not used: refine_fit=False returns the plan's fit as it is"
    details = {**section.details(), **info, "seconds": time.perf_counter() - start}
    with stages("assess"):
        qc = assess(pose, section, method=method, residual_um=residual, details=details, notes=notes)
    params = {
        "method": method,
        "transform": transform,
        "refine_fit": refine_fit,
        "scale": scale,
        "shared_features": shared_features,
        "alpha": alpha,
        "n_subsample": n_subsample,
        "epsilon": epsilon,
        "tau_a": tau_a,
        "tau_b": tau_b,
        "rank": rank,
        "n_angles": n_angles,
        "device": device,
        "coupling": coupling,
        "tissue_image": tissue_image,
        "msi_edge": msi_edge,
        "content": content,
    }
    return RegistrationResult(
        pose=pose,
        method=method,
        qc=qc,
        msi_tissue=section.tissue.mask,
        n_msi=section.n_msi,
        n_rna=section.n_rna,
        plan=None if coupled is None else coupled.plan,
        # positions in the full AnnData of the plan's rows / columns
        plan_msi_index=None if coupled is None else np.flatnonzero(section.tissue.mask)[coupled.msi_index],
        plan_rna_index=None if coupled is None else coupled.rna_index,
        params=params,
        msi_pixel_size_um=section.msi_pixel_size_um,
        rna_fingerprint=obs_fingerprint(rna),
        msi_fingerprint=obs_fingerprint(msi),
    )


def _moscot_pose(
    section: Section,
    features: tuple[np.ndarray, np.ndarray] | None,
    settings: TransportSettings,
    stages: Stages,
    *,
    transform: str,
    refine_fit: bool,
    scale: bool,
    n_angles: int,
    nearest: bool = False,
    content: tuple[Content | None, str] | None = None,
) -> tuple[Pose, Coupling | None, dict]:
    """Stages 2-6 of the module notes: the pose, the coupling (``None`` if it diverged) and QC details.

    ``refine_fit=False`` returns the plan's fit as it is; it is checked like any pose
    (``_verify``), against the same refined candidates. ``content``: the tissue's content
    (``read_content``'s result), which moves the settled pose (step 5b) before it is
    checked; ``None``: not asked for.
    """
    hits = None
    with stages("transport coupling"):
        if nearest:  # the ablation: no optimal transport (``_nearest``)
            hits = outline_search(section, n_angles=n_angles)
            coupling, info = nearest_coupling(section, hits[0].pose, settings, scale=scale)
        else:
            coupling, info = couple(section, features, settings, scale=scale)
    if not refine_fit and coupling is None:
        raise RegistrationFailedError(
            f"{info['gw_failed']} (also with a {RETRY_EPSILON_FACTOR} times larger epsilon); "
            "refine_fit=False has nothing else to use."
        )
    start = time.perf_counter()
    with stages("candidate poses"):
        candidates = candidate_poses(section, coupling, n_angles=n_angles, hits=hits)
    info["search_seconds"] = time.perf_counter() - start
    aligner = MaskAligner.for_section(section)
    score = PoseScore.for_section(section, features)
    affine = transform == "affine"
    with stages("refine"):
        refined = refine_candidates(candidates, aligner, score, scale=scale)
    if refine_fit:
        with stages("choose"):
            choice = choose_pose(refined, section.msi_um, pitch=section.pitch)
        with stages("settle"):
            settled = settle(choice.chosen.pose, aligner, section.msi_um, pitch=section.pitch, scale=scale, affine=affine)
            pose = settled.pose
        info |= choice.details()
        if content is not None:  # before verify: the pose returned is the pose checked
            with stages("content"):
                tissue_content, why = content
                if tissue_content is None:
                    info["content"] = f"not used: {why}"
                else:
                    try:
                        unpinned = outline_cannot_place(settled, choice, section)
                        outline_sd = None
                        if unpinned is not None:  # a round tissue, say: the content searched everywhere
                            placed = place_by_content(pose, section, tissue_content)
                            info |= {"outline_unpinned": unpinned, **placed.details}
                            pose = placed.pose or pose
                            outline_sd = settled.slack_um  # where the outlines' pose stands, it is that loose
                        move = content_move(pose, section, tissue_content, outline_sd_um=outline_sd)
                        pose = move.pose
                        info |= move.details
                    except (np.linalg.LinAlgError, ValueError) as err:  # the outlines' pose stands
                        info["content"] = f"not used: the content's optimum could not be found ({err})"
    else:
        pose = coupling.affine_fit() if affine else coupling.fit
        info["chosen"] = "transport plan (refine_fit=False)"
    info["refine_seconds"] = time.perf_counter() - start
    with stages("verify"):
        checks = verify(pose, refined, aligner, score, section.msi_um, pitch=section.pitch, scale=scale, affine=affine)
    info |= checks.details()
    if coupling is not None:
        info["plan_agreement"] = coupling.agreement(pose, section)
    return pose, coupling, info
