"""Registration and pairing: accuracy on synthetic and real sections, speed and memory.

Prints one JSON line per part (``--parts``, default all):

- ``synthetic``: ``spatial_mg.sim.synthetic_vicari`` sections over ``--seeds`` (random
  rotation over the whole circle, reflection on odd seeds, scale in [0.92, 1.06], raster
  partly off the tissue), registered from coordinates (and MSI intensities for the
  background) alone. Figures: per-seed median registration error over the MSI tissue
  pixels (distance between the registered and the true position), its median over seeds,
  and the share of paired spots (``spot_mean``) whose main pixel - the one with the
  largest overlap - truly lies within 60 um of the spot centre (also the share whose
  overlap-weighted mean true distance is within 60 um).
- ``partial``: the same sections with the MSI acquisition cut along a straight edge to
  cover ``--coverage`` of the tissue (``synthetic_vicari(msi_coverage=...)``; a range
  ``0.7-0.9`` spreads the seeds evenly over it). Both parts report, per seed, the error,
  the QC verdict and its figures; after them a ``qc_confusion`` line counts the poses
  within 20 um, 20-50 um and beyond 50 um of the truth by verdict (every pose within
  20 um should be "high", every one beyond 50 um "low"). ``--keep-unacquired`` keeps the
  pixels beyond the edge as empty spectra, as exports that fill the raster's rectangle do.
  ``--ablate`` registers every section a second time with moscot's coupling replaced by
  a nearest-neighbour coupling under the outline search's best pose
  (``register(coupling="nearest")``) and reports both errors per seed.
- ``qc``: the QC probe: on the same sections, the QC of the true pose, of the true pose
  shifted by 100 um or turned by 5 degrees (``assess_pose``) and of moscot's own fit
  (``register(refine_fit=False)``): poses of known error, far off ones among them, for
  the confusion table.
- ``real``: the SMA section in tests/data (Vicari et al. 2024, V11L12-038_D1): MSI pixel
  positions registered onto the in-tissue spots from coordinates alone, compared with the
  least-squares similarity through the 10 hand-placed landmarks (median over pixels).
- ``--msi-edge hard`` counts every MSI pixel as tissue or background (0 / 1) in the
  outline terms; the default ``soft`` counts each edge pixel by the share of it its
  signal shows the tissue covers (``register(msi_edge=...)``, partial volume).
- ``--tissue-image none`` registers every section of the parts above from the spots'
  outline alone (``register(tissue_image=None)``); the default ``auto`` uses the H&E
  image the spots carry (the generator's lowres image; the real section's lowres H&E)
  when it fits them. Each row says which outline was used (``rna_outline_source``).
  ``--he-resolution hires`` gives each synthetic section the 2,000 px image spaceranger
  would write beside the lowres one (rendered with the true edge), as ``read_visium``
  of the written outs would.
- ``--no-content`` registers the synthetic and speed parts with ``register(content=False)``
  (the outlines' pose, without the tissue's content as a second estimate, ``_content``;
  every part uses the content by default, as ``register`` does); ``--genes`` / ``--metabolites``
  set how rich that content is (20 / 10 by default, the sweeps' sections; the generator's
  defaults are 300 / 30).
- ``--tissue-outline disc`` gives the synthetic and partial parts round tissues
  (``synthetic_vicari(tissue_outline="disc")``: a tissue core or punch, whose outline
  says nothing of its turn), the case where only the content can place the pose.
- ``speed``: register + pair (``spot_mean``) wall time for the ``--sizes`` (spots x raster
  pixels, synthetic sections whose raster pitch gives about that many pixels).
- ``pairing``: ``pair`` alone on ``--pairing-size`` (bins x pixels) given a transform, with
  peak resident memory.

Needs spatial_mg importable with moscot, ott-jax, jax, scipy, anndata, mudata (and the
synthetic generator). ``--device gpu`` solves the transport on the GPU (JAX must see one).
Examples::

    python benchmarks/alignment.py
    python benchmarks/alignment.py --parts synthetic --seeds 0-9
    python benchmarks/alignment.py --parts synthetic,partial --seeds 0-9 --coverage 0.7-0.9
    python benchmarks/alignment.py --parts synthetic,partial,real --tissue-image none
    python benchmarks/alignment.py --parts speed --sizes 3000x3000,5000x50000 --device gpu
    python benchmarks/alignment.py --parts pairing --pairing-size 500000x1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split("x")) for part in text.split(",")]


def _sweep_dataset(
    seed: int,
    n_spots: int,
    cover: float | None,
    keep_unacquired: bool = False,
    n_genes: int = 20,
    n_metabolites: int = 10,
    tissue_outline: str = "blob",
):
    """One section of the accuracy sweeps: mirrored on odd seeds, the MSI over ``cover`` of the tissue."""
    import spatial_mg as smg

    return smg.sim.synthetic_vicari(
        n_sections=1,
        seed=seed,
        n_spots=n_spots,
        n_genes=n_genes,
        n_metabolites=n_metabolites,
        msi_reflect=bool(seed % 2),
        msi_coverage=cover,
        msi_keep_unacquired=keep_unacquired,
        tissue_outline=tissue_outline,
    )


def _with_hires(section):
    """``section.rna`` with the 2,000 px slide image as well (what read_visium reads from the written outs)."""
    from spatial_mg.io._he_image import HEImage, put_he_image

    rna = section.rna.copy()
    scalef = rna.uns["spatial"][section.name]["scalefactors"]["tissue_hires_scalef"]
    put_he_image(rna, HEImage(section.renderer.render(2000), scalef, "hires"), section.name)
    return rna


def _emit(part: str, figures: dict) -> None:
    print(json.dumps({"benchmark": "alignment", "part": part, **figures}), flush=True)


def pairing_truth(mdata, msi, reg, affine_true, rna) -> dict:
    """Share of paired spots whose pixels truly lie within 60 um (main pixel / weighted mean)."""
    from scipy.spatial import cKDTree

    from spatial_mg.align import Pose
    from spatial_mg.align._overlap import (
        disk_square_overlap,  # no public path: pair's own weights
    )

    pixel = reg.msi_pixel_size_um
    msi_um = reg.msi_um(msi)
    idx = np.flatnonzero(reg.msi_tissue)
    moved = reg.transform(msi_um[idx])
    truth = Pose(affine_true).apply(msi_um[idx])
    spots = np.asarray(rna[mdata.obs_names].obsm["spatial"], float)
    scale = reg.pose.scale
    radius = 27.5
    reach = radius + scale * pixel / np.sqrt(2)
    found = cKDTree(moved).query_ball_point(spots, reach)
    centres = reg.inverse_transform(spots)  # spot centres in MSI um, where pixels are squares
    main_ok = mean_ok = 0
    for k, cand in enumerate(found):
        cand = np.asarray(cand, dtype=np.int64)
        if cand.size == 0:
            continue
        off = centres[k] - msi_um[idx[cand]]
        w = disk_square_overlap(off[:, 0], off[:, 1], radius / scale, pixel / 2)
        if w.sum() <= 0:
            continue
        d_true = np.linalg.norm(truth[cand] - spots[k], axis=1)
        main_ok += d_true[np.argmax(w)] <= 60
        mean_ok += (w @ d_true) / w.sum() <= 60
    n = len(spots)
    return {"paired_within_60um_main": main_ok / n, "paired_within_60um_weighted": mean_ok / n}


# QC confusion bands: a pose this close to the truth (median over the MSI tissue) should be
# rated "high", one this far "low" (issue 12); in between either verdict is accepted
GOOD_UM, BAD_UM = 20.0, 50.0


def qc_confusion(rows: list[dict]) -> dict:
    """Poses by error band (<= 20 um, 20-50 um, > 50 um) and QC verdict, and the misrated seeds."""
    table = {band: {"high": 0, "low": 0} for band in ("within_20um", "20_to_50um", "beyond_50um")}
    misrated = []
    for r in rows:
        err, verdict = r["median_error_um"], r["confidence"]
        band = "within_20um" if err <= GOOD_UM else ("beyond_50um" if err > BAD_UM else "20_to_50um")
        table[band][verdict] += 1
        if (band == "within_20um" and verdict != "high") or (band == "beyond_50um" and verdict != "low"):
            misrated.append({"part": r.get("part"), "seed": r["seed"], "error_um": err, "confidence": verdict})
    return {"qc_confusion": table, "qc_misrated": misrated}


def _coverages(text: str | None, n: int) -> list[float | None]:
    """One MSI coverage per seed: ``"0.7-0.9"`` spreads them evenly over the range, ``"0.8"`` is one value."""
    if text is None:
        return [None] * n
    lo, _, hi = text.partition("-")
    lo, hi = float(lo), float(hi or lo)
    return [float(v) for v in np.linspace(lo, hi, n)] if n > 1 else [lo]


def run_synthetic(args, part: str = "synthetic", coverage: str | None = None) -> list[dict]:
    import spatial_mg as smg
    from spatial_mg.align import Pose
    from spatial_mg.align._window import (
        Window,  # no public path: where the MSI measured, as register decides it
    )

    rows = []
    seeds = _seeds(args.seeds)
    for seed, cover in zip(seeds, _coverages(coverage, len(seeds))):
        data = _sweep_dataset(
            seed, args.n_spots, cover, args.keep_unacquired and cover is not None, args.genes, args.metabolites,
            args.tissue_outline,
        )
        s = data.sections[0]
        if args.he_resolution == "hires":
            s.rna = _with_hires(s)
        start = time.perf_counter()
        reg = smg.align.register(
            s.rna, s.msi, device=args.device, tissue_image=args.tissue_image, msi_edge=args.msi_edge, content=args.content
        )
        seconds = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mdata = smg.align.pair(s.rna, s.msi, reg)
        acquired = s.msi.obs["acquired"].to_numpy(bool) if "acquired" in s.msi.obs else np.ones(s.msi.n_obs, bool)
        tissue = s.msi.obs["in_tissue"].to_numpy(bool) & acquired
        pts = np.asarray(s.msi.obsm["spatial"], float)[tissue]
        err = reg.distance_to(s.affine, pts)
        true = Pose(s.affine)
        msi_all = np.asarray(s.msi.obsm["spatial"], float)[acquired]
        spots_in_msi = Pose(s.affine).inverse().apply(np.asarray(s.rna.obsm["spatial"], float))
        rows.append(
            {
                "part": part,
                "seed": seed,
                "msi_coverage": cover,
                "spots_under_msi_true": float(Window(msi_all, reg.msi_pixel_size_um / 2).contains(spots_in_msi).mean()),
                "median_error_um": float(np.median(err)),
                "p90_error_um": float(np.percentile(err, 90)),
                "true_rotation_deg": true.rotation_deg,
                "true_reflection": true.reflection,
                "true_scale": true.scale,
                "scale": reg.qc.scale,
                "confidence": reg.qc.confidence,
                "reason": reg.qc.reason,
                "rna_outline_source": reg.qc.details.get("rna_outline_source"),
                "rna_outline": reg.qc.details.get("rna_outline"),
                "msi_edge_source": reg.qc.details.get("msi_edge_source"),
                "content_share": reg.qc.details.get("content_share"),
                "content_move_um": reg.qc.details.get("content_move_um"),
                "chosen": reg.qc.details.get("chosen"),
                "plan_agreement": reg.qc.details.get("plan_agreement"),
                "pose_drift_um": reg.qc.details.get("pose_drift_um"),
                "pose_slack_um": reg.qc.details.get("pose_slack_um"),
                "candidate_margin": reg.qc.details.get("candidate_margin"),
                "seconds": seconds,
                "n_spots": s.rna.n_obs,
                "n_paired": mdata.n_obs,
                **pairing_truth(mdata, s.msi, reg, s.affine, s.rna),
                **(ablation(s, reg, pts, args.device, args.tissue_image, args.msi_edge) if args.ablate else {}),
            }
        )
        print(json.dumps({"benchmark": "alignment", **rows[-1], "part": f"{part}_seed"}), file=sys.stderr, flush=True)
    errors = [r["median_error_um"] for r in rows]
    _emit(
        part,
        {
            "n_spots": args.n_spots,
            "msi_coverage": coverage,
            "keep_unacquired": args.keep_unacquired and coverage is not None,
            "ablate": args.ablate,
            "tissue_image": args.tissue_image,
            "he_resolution": args.he_resolution,
            "msi_edge": args.msi_edge,
            "content": args.content,
            "genes": args.genes,
            "metabolites": args.metabolites,
            "tissue_outline": args.tissue_outline,
            "rna_outline_sources": sorted({str(r["rna_outline_source"]) for r in rows}),
            **qc_confusion(rows),
            "seeds": [r["seed"] for r in rows],
            "median_error_um_per_seed": errors,
            "median_error_um": float(np.median(errors)),
            "max_median_error_um": float(np.max(errors)),
            "paired_within_60um_main_min": float(min(r["paired_within_60um_main"] for r in rows)),
            "paired_within_60um_weighted_min": float(min(r["paired_within_60um_weighted"] for r in rows)),
            "low_confidence_seeds": [r["seed"] for r in rows if r["confidence"] == "low"],
            "seconds_median": float(np.median([r["seconds"] for r in rows])),
            "seconds_max": float(np.max([r["seconds"] for r in rows])),
            **(_ablation_summary(rows) if args.ablate else {}),
        },
    )
    return rows


def _ablation_summary(rows: list[dict]) -> dict:
    errors = [r["nearest_median_error_um"] for r in rows]
    return {
        "nearest_median_error_um_per_seed": errors,
        "nearest_median_error_um": float(np.median(errors)),
        "nearest_max_median_error_um": float(np.max(errors)),
        "seeds_changed_by_ablation": [r["seed"] for r in rows if r["nearest_vs_moscot_um"] > 0.5],
    }


# hand-made wrong poses for the QC probe: the truth shifted, and turned about the tissue centre
PROBE_SHIFT_UM = 100.0
PROBE_TURN_DEG = 5.0


def run_qc_probe(args) -> list[dict]:
    """QC verdicts on poses of known error: the truth, the truth moved by hand, moscot's own fit.

    On the sections of the synthetic and the partial parts (same seeds and coverages), the
    true pose, the true pose shifted by ``PROBE_SHIFT_UM`` and turned by ``PROBE_TURN_DEG``
    are assessed with ``assess_pose``, and ``register(refine_fit=False)`` returns moscot's
    fit with its QC: poses the registration does not return by default, several far off.
    """
    import spatial_mg as smg
    from spatial_mg.align import Pose

    rows = []
    seeds = _seeds(args.seeds)
    for part, coverage in (("synthetic", None), ("partial", args.coverage)):
        for seed, cover in zip(seeds, _coverages(coverage, len(seeds))):
            s = _sweep_dataset(seed, args.n_spots, cover).sections[0]
            truth = Pose(s.affine)
            pts = np.asarray(s.msi.obsm["spatial"], float)[s.msi.obs["in_tissue"].to_numpy(bool)]
            centre = truth.apply(pts).mean(axis=0)
            turn = Pose.similarity(1.0, PROBE_TURN_DEG)
            poses = {
                "truth": truth,
                f"shift_{PROBE_SHIFT_UM:.0f}um": Pose.similarity(1.0, 0.0, False, (PROBE_SHIFT_UM, 0.0)) @ truth,
                f"turn_{PROBE_TURN_DEG:.0f}deg": Pose.similarity(1.0, PROBE_TURN_DEG, False, centre - turn.apply(centre[None])[0])
                @ truth,
            }
            qcs = {
                kind: smg.align.assess_pose(s.rna, s.msi, pose, tissue_image=args.tissue_image, msi_edge=args.msi_edge)
                for kind, pose in poses.items()
            }
            plan = smg.align.register(
                s.rna, s.msi, device=args.device, refine_fit=False, tissue_image=args.tissue_image, msi_edge=args.msi_edge
            )
            poses["plan_fit"], qcs["plan_fit"] = plan.pose, plan.qc
            for kind, pose in poses.items():
                err = np.linalg.norm(pose.apply(pts) - truth.apply(pts), axis=1)
                rows.append(
                    {
                        "part": f"qc_probe_{part}",
                        "seed": seed,
                        "msi_coverage": cover,
                        "pose": kind,
                        "median_error_um": float(np.median(err)),
                        "confidence": qcs[kind].confidence,
                        "pose_drift_um": qcs[kind].details.get("pose_drift_um"),
                        "candidate_margin": qcs[kind].details.get("candidate_margin"),
                        "reason": qcs[kind].reason,
                    }
                )
                print(json.dumps({"benchmark": "alignment", **rows[-1]}), file=sys.stderr, flush=True)
    _emit(
        "qc_probe",
        {
            "n_spots": args.n_spots,
            "msi_coverage": args.coverage,
            "tissue_image": args.tissue_image,
            "msi_edge": args.msi_edge,
            "n_poses": len(rows),
            **qc_confusion(rows),
        },
    )
    return rows


def run_partial(args) -> list[dict]:
    """The synthetic sweep with the MSI acquisition cut to cover ``--coverage`` of the tissue."""
    return run_synthetic(args, part="partial", coverage=args.coverage)


def ablation(section, reg, pts: np.ndarray, device, tissue_image: str | None = "auto", msi_edge: str = "soft") -> dict:
    """``--ablate``: the same section registered with moscot's coupling replaced by a nearest-neighbour one."""
    import spatial_mg as smg

    start = time.perf_counter()
    nearest = smg.align.register(
        section.rna, section.msi, device=device, coupling="nearest", tissue_image=tissue_image, msi_edge=msi_edge
    )
    err = nearest.distance_to(section.affine, pts)
    return {
        "nearest_median_error_um": float(np.median(err)),
        "nearest_confidence": nearest.qc.confidence,
        "nearest_chosen": nearest.qc.details.get("chosen"),
        "nearest_vs_moscot_um": float(np.median(np.linalg.norm(nearest.transform(pts) - reg.transform(pts), axis=1))),
        "nearest_seconds": time.perf_counter() - start,
    }


def load_sma():
    """The real SMA geometry: (rna, msi, landmark similarity, landmarks), as the tests load it."""
    sys.path.insert(0, str(ROOT / "tests" / "align"))
    from align_data import load_sma as load

    return load()


def run_real(args) -> None:
    import spatial_mg as smg

    rna, msi, landmark_fit, (msi_marks, rna_marks) = load_sma()
    start = time.perf_counter()
    reg = smg.align.register(rna, msi, device=args.device, tissue_image=args.tissue_image, msi_edge=args.msi_edge)
    seconds = time.perf_counter() - start
    pts = msi.obsm["spatial"]
    dist = reg.distance_to(landmark_fit, pts)
    resid = np.linalg.norm(reg.transform(msi_marks) - rna_marks, axis=1)
    _emit(
        "real",
        {
            "median_distance_to_landmark_fit_um": float(np.median(dist)),
            "p90_distance_to_landmark_fit_um": float(np.percentile(dist, 90)),
            "landmark_residual_median_um_ours": float(np.median(resid)),
            "landmark_residual_median_um_landmark_fit": float(
                np.median(np.linalg.norm(landmark_fit.apply(msi_marks) - rna_marks, axis=1))
            ),
            "ours": {k: getattr(reg.qc, k) for k in ("scale", "rotation_deg", "reflection", "confidence", "reason")},
            "tissue_image": args.tissue_image,
            "rna_outline": reg.qc.details.get("rna_outline"),
            "msi_edge": reg.qc.details.get("msi_edge"),
            "pose_spread_um": reg.qc.details.get("pose_spread_um"),
            "landmark_fit": landmark_fit.parts(),
            "seconds": seconds,
        },
    )


def run_speed(args) -> None:
    import spatial_mg as smg

    for n_spots, n_pixels in _sizes(args.sizes):
        # raster side is about 2.1 tissue radii: choose the pitch that gives ~n_pixels pixels
        radius = np.sqrt(n_spots * 100.0**2 * np.sqrt(3) / 2 / np.pi)
        pitch = float(np.clip(2.1 * radius / np.sqrt(n_pixels), 5, 500))
        s = smg.sim.synthetic_vicari(
            n_sections=1, seed=1, n_spots=n_spots, n_genes=20, n_metabolites=20, msi_pitch_um=pitch
        ).sections[0]
        start = time.perf_counter()
        reg = smg.align.register(s.rna, s.msi, device=args.device, n_subsample=args.n_subsample, content=args.content)
        t_reg = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mdata = smg.align.pair(s.rna, s.msi, reg)
        t_all = time.perf_counter() - start
        details = reg.qc.details
        _emit(
            "speed",
            {
                "n_spots": s.rna.n_obs,
                "n_pixels": s.msi.n_obs,
                "n_tissue_pixels": int(reg.msi_tissue.sum()),
                "msi_pitch_um": pitch,
                "register_s": t_reg,
                "register_and_pair_s": t_all,
                "gw_s": details.get("gw_seconds"),
                "search_s": details.get("search_seconds"),
                "refine_s": details.get("refine_seconds"),
                "device": details.get("device"),
                "n_paired": mdata.n_obs,
                "n_subsample": args.n_subsample,
                "gw_converged": details.get("gw_converged"),
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            },
        )


def run_pairing(args) -> None:
    import anndata as ad
    import pandas as pd

    import spatial_mg as smg
    from spatial_mg.align import Pose, RegistrationQC, RegistrationResult

    n_bins, n_pixels = _sizes(args.pairing_size)[0]
    rng = np.random.default_rng(0)
    side = 5600.0  # um: a Visium HD-sized area
    nb, npx = int(np.ceil(np.sqrt(n_bins))), int(np.ceil(np.sqrt(n_pixels)))
    bin_um, pix_um = side / nb, side / npx
    by, bx = np.divmod(np.arange(nb * nb)[:n_bins], nb)
    rna = ad.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(n_bins).astype(str)))
    rna.obsm["spatial"] = np.column_stack([bx, by]) * bin_um
    rna.uns["spatial_mg"] = {"units": "um", "spot_radius_um": bin_um / 2}
    py, px = np.divmod(np.arange(npx * npx)[:n_pixels], npx)
    pose = Pose.similarity(1.0, 30.0, False, (2800.0, -1000.0))
    msi = ad.AnnData(
        X=rng.random((n_pixels, args.n_mz), dtype=np.float32),
        obs=pd.DataFrame({"x": px, "y": py}, index=pd.RangeIndex(n_pixels).astype(str)),
    )
    msi.obsm["spatial"] = np.column_stack([px, py]) * pix_um
    msi.uns["spatial_mg"] = {"units": "um", "pixel_size_um": [pix_um, pix_um]}
    qc = RegistrationQC(1.0, 1.0, 0.0, 1.0, 30.0, False, 1.0, "high", "", {})
    reg = RegistrationResult(pose, "given", qc, np.ones(n_pixels, bool), n_pixels, n_bins, msi_pixel_size_um=pix_um)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    mdata = smg.align.pair(rna, msi, reg, strategy=args.strategy)
    seconds = time.perf_counter() - start
    _emit(
        "pairing",
        {
            "n_bins": n_bins,
            "n_pixels": n_pixels,
            "n_mz": args.n_mz,
            "strategy": args.strategy,
            "bin_um": bin_um,
            "pixel_um": pix_um,
            "seconds": seconds,
            "n_paired": mdata.n_obs,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "peak_rss_before_gb": base / 1024**2,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="synthetic,partial,real,speed,pairing")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--n-spots", type=int, default=700, help="in-tissue spots of the synthetic accuracy sections")
    parser.add_argument("--sizes", default="3000x3000,5000x50000", help="spots x raster pixels for the speed part")
    parser.add_argument("--pairing-size", default="500000x1000000", help="bins x pixels for the pairing part")
    parser.add_argument("--n-mz", type=int, default=20, help="m/z features of the pairing part")
    parser.add_argument("--strategy", default="spot_mean", help="pairing strategy of the pairing part")
    parser.add_argument("--device", default=None, help="JAX device for moscot: cpu or gpu (default: GPU if seen)")
    parser.add_argument("--n-subsample", type=int, default=500, help="points per side of the GW solve (speed part)")
    parser.add_argument("--coverage", default="0.7-0.9", help="share of the tissue the MSI covers in the partial part")
    parser.add_argument(
        "--keep-unacquired",
        action="store_true",
        help="partial part: keep the pixels beyond the acquisition edge as empty spectra (TIC 0)",
    )
    parser.add_argument(
        "--ablate", action="store_true", help="also register with moscot's coupling replaced by a nearest-neighbour one"
    )
    parser.add_argument(
        "--tissue-image",
        default="auto",
        choices=("auto", "none"),
        help="auto: the RNA outline from the spots' H&E image when it fits them; none: from the spot centres",
    )
    parser.add_argument(
        "--msi-edge",
        default="soft",
        choices=("soft", "hard"),
        help="soft: MSI edge pixels count by the tissue share their signal shows (partial volume); hard: 0 / 1",
    )
    parser.add_argument(
        "--he-resolution",
        default="lowres",
        choices=("lowres", "hires"),
        help="synthetic parts: the generator's in-memory lowres image, or also its 2,000 px hires image",
    )
    parser.add_argument(
        "--no-content", dest="content", action="store_false", help="synthetic and speed parts: register(content=False)"
    )
    parser.add_argument("--genes", type=int, default=20, help="genes of the synthetic accuracy sections")
    parser.add_argument("--metabolites", type=int, default=10, help="metabolites of the synthetic accuracy sections")
    parser.add_argument(
        "--tissue-outline",
        default="blob",
        choices=("blob", "disc"),
        help="synthetic parts: an irregular tissue (blob) or a round one (disc: its outline says nothing of its turn)",
    )
    args = parser.parse_args()
    args.tissue_image = None if args.tissue_image == "none" else args.tissue_image
    parts = {
        "synthetic": run_synthetic,
        "partial": run_partial,
        "qc": run_qc_probe,
        "real": run_real,
        "speed": run_speed,
        "pairing": run_pairing,
    }
    rows = []
    for name in args.parts.split(","):
        out = parts[name](args)
        rows += out if isinstance(out, list) else []
    if rows:
        _emit("qc_confusion", {"parts": sorted({r["part"] for r in rows}), "n_poses": len(rows), **qc_confusion(rows)})


if __name__ == "__main__":
    main()
