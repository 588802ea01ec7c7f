"""Training throughput of the PoE-VAE: cells per second, and peak memory. Prints one JSON line.

Data: synthetic NB counts (``--n-genes``, sparse, about 30 % non-zero, like Visium highly
variable genes) and Gaussian metabolites (``--n-metabolites``); model: n_latent 16, two
hidden layers of 128, layer norm. Throughput counts the epochs after the first (which pays
for start-up), with no validation split, so it measures the training step itself.

Needs only numpy, scipy, pandas, torch, pyro, anndata and mudata, so it runs on a bare GPU
machine. Examples::

    python benchmarks/throughput.py --device cpu --batch-size 256
    python benchmarks/throughput.py --device cuda --batch-size 4096,16384 --n-cells 200000
    python benchmarks/throughput.py --n-cells 50000 --n-genes 20000 --epochs 2   # memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_data(n_cells: int, n_genes: int, n_metabolites: int, seed: int = 0):
    """MuData {"rna": NB counts (CSR float32), "msi": Gaussian}, generated in chunks (low peak memory)."""
    import anndata as ad
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_hidden = 10
    w = rng.normal(0, 0.5, size=(n_hidden, n_genes))
    # per-gene mean counts spread over three orders of magnitude: about 30 % non-zero
    base = rng.normal(-1.4, 1.2, size=n_genes)
    v = rng.normal(0, 0.5, size=(n_hidden, n_metabolites))
    blocks, msi = [], []
    for start in range(0, n_cells, 2000):
        h = rng.normal(size=(min(2000, n_cells - start), n_hidden))
        mean = np.exp(base + h @ w * 0.5)
        counts = rng.poisson(rng.gamma(5.0, mean / 5.0)).astype(np.float32)
        blocks.append(sp.csr_matrix(counts))
        msi.append((np.tanh(h @ v) + 0.3 * rng.normal(size=(h.shape[0], n_metabolites))).astype(np.float32))
    cells = pd.Index([f"c{i}" for i in range(n_cells)])
    rna = ad.AnnData(sp.vstack(blocks, format="csr"), obs=pd.DataFrame(index=cells))
    rna.var_names = [f"g{i}" for i in range(n_genes)]
    del blocks
    met = ad.AnnData(np.vstack(msi), obs=pd.DataFrame(index=cells))
    met.var_names = [f"m{i}" for i in range(n_metabolites)]
    return md.MuData({"rna": rna, "msi": met})


class PeakRss:
    """Highest resident memory of this process while the block runs (sampled every 20 ms).

    ``ru_maxrss`` would also count building the synthetic data, which is not training.
    """

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                self.peak = max(self.peak, int(f.read().split()[1]) * page)
            self._stop.wait(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--batch-size", default="256", help="one size, or several comma-separated (one JSON line each)")
    parser.add_argument("--n-cells", type=int, default=20000)
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-metabolites", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs are all but the first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from spatial_mg.model import PoEVAE

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    mdata = make_data(args.n_cells, args.n_genes, args.n_metabolites, args.seed)
    density = mdata.mod["rna"].X.nnz / (args.n_cells * args.n_genes)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    t_setup = time.perf_counter() - t0
    for batch_size in (int(b) for b in str(args.batch_size).split(",")):
        with PeakRss() as rss:
            model = PoEVAE(mdata, n_latent=16, n_hidden=128, n_layers=2, layer_norm=True, seed=args.seed)
            model.train(
                max_epochs=args.epochs,
                batch_size=batch_size,
                accelerator=args.device,
                validation_fraction=0.0,
                early_stopping=False,
                kl_warmup_epochs=0,
                progress_bar=False,
            )
        seconds = model.history["seconds"].to_numpy()
        timed = seconds[1:] if len(seconds) > 1 else seconds
        device = model.device
        out = {
            "cells_per_s": round(args.n_cells * len(timed) / float(timed.sum()), 1),
            # the fastest epoch: the machine's capability when the CPU is shared and busy
            "best_epoch_cells_per_s": round(args.n_cells / float(timed.min()), 1),
            "seconds_per_epoch": round(float(timed.mean()), 4),
            "first_epoch_s": round(float(seconds[0]), 3),
            "setup_s": round(t_setup, 2),
            "batch_size": batch_size,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads",
            "n_cells": args.n_cells,
            "n_genes": args.n_genes,
            "n_metabolites": args.n_metabolites,
            "rna_density": round(density, 3),
            "epochs": args.epochs,
            "peak_host_mb_training": round(rss.peak / 2**20, 1),  # data in memory included
            "peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # data generation too
            "peak_device_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
            "torch": torch.__version__,
        }
        print(json.dumps(out), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

if __name__ == "__main__":
    main()
