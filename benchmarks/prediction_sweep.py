"""Metabolite prediction from RNA alone over training settings and seeds. One JSON line per run.

Each run is :func:`accuracy.metabolite_prediction` (train on the paired synthetic sections,
predict the held-out section from RNA only; PoE-VAE, ridge and kNN medians) with one named
setting; runs go to parallel worker processes, each with ``--threads`` torch threads.
This is how the model's built-in defaults were chosen (``md50_kl05_ema20``); the settings compared live in
``SETTINGS`` below, and the runs quoted in README in ``results/prediction_sweep_*.jsonl``. Examples::

    python benchmarks/prediction_sweep.py --seeds 0-5 --workers 8 --threads 2
    python benchmarks/prediction_sweep.py --settings defaults,md50 --seeds 0,1 --workers 1

A final line ``{"summary": ...}`` gives, per setting, the mean PoE-VAE median Pearson and
the number of seeds on which it beat both ridge and kNN.
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

# name -> (PoEVAE kwargs, train kwargs), each setting in full (the model's defaults change)
_BASE = dict(lr=3e-3, batch_size=128, weight_decay=1e-2, ema_epochs=None)
SETTINGS = {
    "old_defaults": ({"modality_dropout": 0.25}, dict(lr=1e-3, batch_size=256, weight_decay=0.0, kl_weight=1.0, ema_epochs=None)),
    "lr3e-3_b128_wd1e-2": ({"modality_dropout": 0.25}, dict(_BASE, kl_weight=1.0)),
    "kl05": ({"modality_dropout": 0.25}, dict(_BASE, kl_weight=0.5)),
    "md50": ({"modality_dropout": 0.5}, dict(_BASE, kl_weight=1.0)),
    "md50_kl05": ({"modality_dropout": 0.5}, dict(_BASE, kl_weight=0.5)),  # the defaults from 3aec7b8 to ema20
    "md50_kl05_mmd10": ({"modality_dropout": 0.5, "modality_mmd_weight": 10.0}, dict(_BASE, kl_weight=0.5)),
    "md50_kl05_mmd100": ({"modality_dropout": 0.5, "modality_mmd_weight": 100.0}, dict(_BASE, kl_weight=0.5)),
    "md50_kl05_plateau": ({"modality_dropout": 0.5}, dict(_BASE, kl_weight=0.5, lr_patience=8)),
    "md50_drop0": ({"modality_dropout": 0.5, "dropout_rate": 0.0}, dict(_BASE, kl_weight=1.0)),
    "md50_lat32": ({"modality_dropout": 0.5, "n_latent": 32}, dict(_BASE, kl_weight=1.0)),
    "md75": ({"modality_dropout": 0.75}, dict(_BASE, kl_weight=1.0)),
    "md50_lr1e-3": ({"modality_dropout": 0.5}, dict(_BASE, lr=1e-3, kl_weight=1.0)),
    "md50_kl05_ema20": ({"modality_dropout": 0.5}, dict(_BASE, kl_weight=0.5, ema_epochs=20)),  # the defaults now
}


def _parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def _run(name: str, seed: int, threads: int, accelerator: str) -> dict:
    import warnings

    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    import accuracy

    accuracy.ACCELERATOR = accelerator
    accuracy.PREDICTION_TRAIN = {}  # the setting alone decides
    model, train = SETTINGS[name]
    t0 = time.perf_counter()
    out = accuracy.metabolite_prediction(seed=seed, model=model, train=train)
    return {"setting": name, "seed": seed, **out, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names from SETTINGS")
    parser.add_argument("--seeds", default="0-3", help="'0-5' or '0,2,4'")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    jobs = [(n, s) for s in _parse_seeds(args.seeds) for n in names]
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(_run, n, s, args.threads, args.accelerator) for n, s in jobs]
        for f in as_completed(futures):
            row = f.result()
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for n in names:
        mine = [r for r in rows if r["setting"] == n]
        wins = sum(r["poevae"]["pearson"] > max(r["ridge"]["pearson"], r["knn15"]["pearson"]) for r in mine)
        summary[n] = {
            "mean_pearson": round(sum(r["poevae"]["pearson"] for r in mine) / len(mine), 4),
            "mean_margin_over_best_baseline": round(
                sum(r["poevae"]["pearson"] - max(r["ridge"]["pearson"], r["knn15"]["pearson"]) for r in mine) / len(mine), 4
            ),
            "wins": f"{wins}/{len(mine)}",
        }
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
