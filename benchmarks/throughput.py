"""Training throughput of the PoE-VAE: cells per second, and peak memory. Prints one JSON line.

Data: synthetic NB counts (``--n-genes``, sparse, about 30 % non-zero, like Visium highly
variable genes) and Gaussian metabolites (``--n-metabolites``); model: n_latent 16, two
hidden layers of 128, layer norm. Throughput counts the epochs after the first (which pays
for start-up), with no validation split, so it measures the training step itself.

Needs only numpy, scipy, pandas, torch, pyro, anndata and mudata, so it runs on a bare GPU
machine. Examples::

    python benchmarks/throughput.py --device cpu --batch-size 128 --compare traced,bare \
        --multigrate-python /path/to/env-with-multigrate/bin/python
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


def _cells_per_s(n_cells: int, seconds) -> dict:
    """Throughput over the epochs after the first (which pays for start-up)."""
    seconds = [float(s) for s in seconds]
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return {
        "cells_per_s": round(n_cells * len(timed) / sum(timed), 1),
        # the fastest epoch: the machine's capability when the CPU is shared and busy
        "best_epoch_cells_per_s": round(n_cells / min(timed), 1),
        "seconds_per_epoch": round(sum(timed) / len(timed), 4),
        "first_epoch_s": round(seconds[0], 3),
    }


def _spatial_mg(mdata, batch_size: int, args, traced: bool) -> dict:
    import torch

    from spatial_mg.model import PoEVAE

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
            traced_elbo=traced,
        )
    device = model.device
    out = {
        "method": "spatial_mg (traced ELBO)" if traced else "spatial_mg",
        **_cells_per_s(args.n_cells, model.history["seconds"]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads",
        "peak_host_mb_training": round(rss.peak / 2**20, 1),  # data in memory included
        "peak_device_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
    }
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return out


def _bare(mdata, batch_size: int, args) -> dict:

    import bare_loop

    from spatial_mg.model._model import _device

    device = _device(args.device)
    return {"method": "bare torch loop", **_cells_per_s(args.n_cells, bare_loop.run(mdata, batch_size, args.epochs, device, args.seed))}


def _multigrate(mdata, args) -> dict:
    """The reference Multigrate in its own interpreter, on this run's data written to a file."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paired.h5mu"
        mdata.write(path)
        script = Path(__file__).with_name("multigrate_reference.py")
        cmd = [args.multigrate_python, str(script), str(path), "--epochs", str(args.epochs), "--seed", str(args.seed)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the Multigrate run failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--batch-size", default="128", help="one size, or several comma-separated (one JSON line each)")
    parser.add_argument("--n-cells", type=int, default=20000)
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-metabolites", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs are all but the first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare",
        default="",
        help="also run, side by side on the same data: 'traced' (the loss through Pyro's traces), "
        "'bare' (bare_loop.py: the same network and likelihoods in a bare torch loop), comma-separated",
    )
    parser.add_argument(
        "--multigrate-python",
        help="an interpreter with multigrate installed: also train the reference Multigrate at its own "
        "defaults on the same data (multigrate_reference.py)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run every method this many times, alternating")
    args = parser.parse_args()
    compare = {c for c in args.compare.split(",") if c}
    if compare - {"traced", "bare"}:
        parser.error(f"--compare takes 'traced' and 'bare', not {sorted(compare - {'traced', 'bare'})}")

    import torch

    from spatial_mg.model import PoEVAE

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    mdata = make_data(args.n_cells, args.n_genes, args.n_metabolites, args.seed)
    density = mdata.mod["rna"].X.nnz / (args.n_cells * args.n_genes)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    shared = {
        "n_cells": args.n_cells,
        "n_genes": args.n_genes,
        "n_metabolites": args.n_metabolites,
        "rna_density": round(density, 3),
        "epochs": args.epochs,
        "setup_s": round(time.perf_counter() - t0, 2),
        "torch": torch.__version__,
    }
    for run in range(1, args.repeat + 1):
        for batch_size in (int(b) for b in str(args.batch_size).split(",")):
            rows = [_spatial_mg(mdata, batch_size, args, traced=False)]
            if "traced" in compare:
                rows.append(_spatial_mg(mdata, batch_size, args, traced=True))
            if "bare" in compare:
                rows.append(_bare(mdata, batch_size, args))
            for row in rows:
                row["x_of_spatial_mg"] = round(row["cells_per_s"] / rows[0]["cells_per_s"], 3)
                print(json.dumps({**row, "batch_size": batch_size, "run": run, **shared}), flush=True)
        if args.multigrate_python:
            print(json.dumps({**_multigrate(mdata, args), "run": run, **shared}), flush=True)
        shared["peak_host_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    main()
