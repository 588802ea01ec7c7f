"""Data-parallel training: 1 rank against N ranks on the same data. Prints one JSON line.

Both runs train the same model with the same seed and the same global minibatch
(``--batch-size`` cells a step, shared out among the ranks), so the N-rank run takes the
steps of the 1-rank run up to the order of float sums; their final validation losses
should agree to well within 2 %. Throughput counts the epochs after the first (which pays
for start-up and, for N ranks, for starting the processes), validation included:
``cells_per_s`` is training cells per second of the whole group, ``per_rank_cells_per_s``
what each rank gets through.

Data: those of ``benchmarks/throughput.py`` (synthetic NB counts, sparse, and Gaussian
metabolites). On the CPU the ranks use gloo and split the torch threads of this process
between them. Examples::

    python benchmarks/ddp.py --device cpu --ranks 2
    python benchmarks/ddp.py --device cuda --ranks 1 --batch-size 4096 --n-cells 200000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _run(mdata, args, ranks: int) -> dict:
    import torch

    from spatial_mg.model import PoEVAE

    model = PoEVAE(mdata, n_latent=16, n_hidden=128, n_layers=2, layer_norm=True, seed=args.seed)
    t0 = time.perf_counter()
    model.train(
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        accelerator=args.device,
        early_stopping=False,
        progress_bar=False,
        strategy="ddp" if ranks > 1 else "single",
        devices=ranks if ranks > 1 else None,
    )
    wall = time.perf_counter() - t0
    history = model.history
    seconds = history["seconds"].to_numpy()
    timed = seconds[1:] if len(seconds) > 1 else seconds
    n_train = mdata.n_obs - int(round(0.1 * mdata.n_obs))
    device = model.device
    return {
        "ranks": ranks,
        "final_val_loss": round(float(history["val_loss"].iloc[-1]), 5),
        "final_train_loss": round(float(history["train_loss"].iloc[-1]), 5),
        "cells_per_s": round(n_train * len(timed) / float(timed.sum()), 1),
        "per_rank_cells_per_s": round(n_train / ranks * len(timed) / float(timed.sum()), 1),
        "seconds_per_epoch": round(float(timed.mean()), 3),
        "wall_s": round(wall, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads_per_rank": max(1, torch.get_num_threads() // ranks) if device.type == "cpu" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the data-parallel run (compared with 1)")
    parser.add_argument("--batch-size", type=int, default=256, help="global minibatch, shared out among the ranks")
    parser.add_argument("--n-cells", type=int, default=10000)
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-metabolites", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs are all but the first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads of the whole run, shared out among the ranks (default torch's)")
    args = parser.parse_args()

    import os

    import torch
    from throughput import make_data

    if args.threads:
        torch.set_num_threads(args.threads)

    from spatial_mg.model import PoEVAE

    warnings.filterwarnings("ignore")
    mdata = make_data(args.n_cells, args.n_genes, args.n_metabolites, args.seed)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    one = _run(mdata, args, 1)
    many = _run(mdata, args, args.ranks)
    gap = abs(many["final_val_loss"] - one["final_val_loss"]) / abs(one["final_val_loss"])
    out = {
        "benchmark": "ddp",
        "val_loss_1_rank": one["final_val_loss"],
        f"val_loss_{args.ranks}_ranks": many["final_val_loss"],
        "val_loss_relative_gap": float(f"{gap:.3g}"),
        "within_2_percent": gap <= 0.02,
        "runs": [one, many],
        "batch_size": args.batch_size,
        "n_cells": args.n_cells,
        "n_genes": args.n_genes,
        "n_metabolites": args.n_metabolites,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),  # others' work on a shared machine slows both runs
        "torch": torch.__version__,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
