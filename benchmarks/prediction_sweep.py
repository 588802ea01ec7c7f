"""A held-out section's metabolites from RNA alone, over data presets, settings and seeds. One JSON line per run.

Each run is :func:`section_prediction.held_out_section` (train on all but the last synthetic
section, predict the last from its RNA; the model against ridge and kNN, plain and on
spatially smoothed RNA, and the noise ceiling) with one named setting; runs go to parallel
worker processes, each with ``--threads`` torch threads. ``default`` is the pipeline as a
user runs it; the other settings change the model's or the training's keyword arguments.
Runs quoted in README and in issue notes are kept in ``results/``. Examples::

    python benchmarks/prediction_sweep.py --data vicari,hard --seeds 0-9 --settings default
    python benchmarks/prediction_sweep.py --data hard --seeds 0-3 --settings default,batch_section --workers 2

A final line ``{"summary": ...}`` gives, per data preset and setting: the mean and worst
ratio of the model's median Pearson to the noise ceiling, the margin over the best baseline
(mean and worst), and the 90 % interval coverage (mean, min, max).

Earlier sweeps (``results/prediction_sweep_*_2026-11-2[67].jsonl``) ran the previous
version of this script, on ``accuracy.metabolite_prediction``, which had no ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> (train_model kwargs, predict_section kwargs), over the pipeline's defaults
SETTINGS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "plain": ({"batch_key": None, "calibrate": False}, {}),  # the defaults before issue 13
    "section_mmd0": ({"batch_mmd_weight": 0.0}, {}),
    "section_mmd10": ({"batch_mmd_weight": 10.0}, {}),
    "context150": ({"context_radius_um": 150.0}, {}),  # the RNA encoder reads the spot and its six neighbours
    "context250": ({"context_radius_um": 250.0}, {}),  # ... and the next ring
    "msi_weight3": ({"msi_weight": 3.0}, {}),  # the metabolites' likelihood weighs 3x against the RNA's
    "msi_weight10": ({"msi_weight": 10.0}, {}),
    "latent32": ({"n_latent": 32}, {}),
}


def _parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def _run(data: str, name: str, seed: int, threads: int, accelerator: str) -> dict:
    import warnings

    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    import section_prediction

    train, predict = SETTINGS[name]
    t0 = time.perf_counter()
    out = section_prediction.held_out_section(seed=seed, data=data, train=train, predict=predict, accelerator=accelerator)
    return {"setting": name, **out, "seconds": round(time.perf_counter() - t0, 1)}


def summarise(rows: list[dict]) -> dict:
    """Per data preset and setting: ratio to the ceiling, margin over the best baseline, coverage."""
    out: dict = {}
    for key in sorted({(r["data"], r["setting"]) for r in rows}):
        mine = [r for r in rows if (r["data"], r["setting"]) == key]
        ratio = [r["ratio_to_ceiling"] for r in mine]
        margin = [r["margin_over_best_baseline"] for r in mine]
        cover = [r["coverage90"] for r in mine if r.get("coverage90") is not None]
        out[f"{key[0]}/{key[1]}"] = {
            "n_seeds": len(mine),
            "ratio_mean": round(sum(ratio) / len(ratio), 4),
            "ratio_min": min(ratio),
            "margin_mean": round(sum(margin) / len(margin), 4),
            "margin_min": min(margin),
            **({"coverage90_mean": round(sum(cover) / len(cover), 4), "coverage90_min": min(cover),
                "coverage90_max": max(cover)} if cover else {}),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="vicari,hard", help="comma-separated presets: vicari, hard")
    parser.add_argument("--settings", default="default", help=f"comma-separated names from {list(SETTINGS)}")
    parser.add_argument("--seeds", default="0-9", help="'0-9' or '0,2,4'")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    names, presets = args.settings.split(","), args.data.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    jobs = [(d, n, s) for s in _parse_seeds(args.seeds) for d in presets for n in names]
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(_run, d, n, s, args.threads, args.accelerator) for d, n, s in jobs]
        for f in as_completed(futures):
            row = f.result()
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"summary": summarise(rows)}), flush=True)


if __name__ == "__main__":
    main()
