"""Training from disk: peak resident memory and cells/s of epochs read a chunk at a time.

Writes (once, ``--write``) a synthetic paired set to an ``.h5mu`` file in chunks, never
holding the counts whole: ``--n-cells`` spots x ``--n-genes`` NB counts (CSR, few counts
per spot, like Visium HD 8 um bins) + ``--n-metabolites`` Gaussian metabolites. Then (in
a fresh process, so the peak is training's own) reads it with ``backed="r"``, sets it up,
builds the model and trains ``--epochs`` epochs; prints one JSON line with the peak RSS
of the whole process (``ru_maxrss``) and the cells/s. Examples::

    python benchmarks/disk.py --write --path /tmp/hd.h5mu --n-cells 2000000
    python benchmarks/disk.py --path /tmp/hd.h5mu --epochs 1
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
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BLOCK = 50_000  # spots generated and written at a time


def write(path: Path, n_cells: int, n_genes: int, n_metabolites: int, seed: int) -> dict:
    """The synthetic set, written block by block (placeholders first, then filled with h5py)."""
    import anndata as ad
    import h5py
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_hidden = 10
    w = rng.normal(0, 0.5, size=(n_hidden, n_genes))
    base = rng.normal(-4.0, 1.2, size=n_genes)  # a few percent non-zero: sparse 8 um bins
    v = rng.normal(0, 0.5, size=(n_hidden, n_metabolites))
    cells = pd.Index([f"c{i}" for i in range(n_cells)])
    rna = ad.AnnData(sp.csr_matrix((n_cells, n_genes), dtype=np.float32), obs=pd.DataFrame(index=cells))
    rna.var_names = [f"g{i}" for i in range(n_genes)]
    msi = ad.AnnData(np.zeros((n_cells, n_metabolites), dtype=np.float32), obs=pd.DataFrame(index=cells))
    msi.var_names = [f"m{i}" for i in range(n_metabolites)]
    md.MuData({"rna": rna, "msi": msi}).write(path)
    del rna, msi
    nnz = 0
    with h5py.File(path, "r+") as f:
        x = f["mod/rna/X"]
        for key in ("data", "indices"):
            del x[key]
        data = x.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 18,))
        indices = x.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 18,))
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        for start in range(0, n_cells, BLOCK):
            h = rng.normal(size=(min(BLOCK, n_cells - start), n_hidden))
            counts = sp.csr_matrix(rng.poisson(np.exp(base + h @ w * 0.5)).astype(np.float32))
            data.resize((nnz + counts.nnz,))
            indices.resize((nnz + counts.nnz,))
            data[nnz:] = counts.data
            indices[nnz:] = counts.indices
            indptr[start + 1 : start + 1 + h.shape[0]] = nnz + counts.indptr[1:]
            nnz += counts.nnz
            f["mod/msi/X"][start : start + h.shape[0]] = np.tanh(h @ v) + 0.3 * rng.normal(size=(h.shape[0], n_metabolites))
        del x["indptr"]
        x.create_dataset("indptr", data=indptr)
    return {"n_cells": n_cells, "n_genes": n_genes, "n_metabolites": n_metabolites, "density": nnz / (n_cells * n_genes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/tmp/spatial_mg_disk.h5mu")
    parser.add_argument("--write", action="store_true", help="write the synthetic set to --path and stop")
    parser.add_argument("--n-cells", type=int, default=2_000_000)
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-metabolites", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's")
    parser.add_argument("--chunk-size", type=int, default=None, help="cells on the device at a time (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    if args.write:
        t0 = time.perf_counter()
        info = write(Path(args.path), args.n_cells, args.n_genes, args.n_metabolites, args.seed)
        info.update(write_s=round(time.perf_counter() - t0, 1), file_gb=round(Path(args.path).stat().st_size / 1e9, 2),
                    command=command)
        print(json.dumps(info), flush=True)
        return

    import mudata as md
    import torch

    from spatial_mg.model import PoEVAE

    t0 = time.perf_counter()
    mdata = md.read_h5mu(args.path, backed="r")
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(mdata)
    t_setup = time.perf_counter() - t0
    extra = {k: v for k, v in {"batch_size": args.batch_size, "chunk_size": args.chunk_size}.items() if v is not None}
    model.train(max_epochs=args.epochs, accelerator="cpu", validation_fraction=0.0, early_stopping=False,
                kl_warmup_epochs=0, progress_bar=False, **extra)
    seconds = model.history["seconds"].to_numpy()
    n = mdata.n_obs
    print(json.dumps({
        "benchmark": "disk",
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "cells_per_s": round(n * len(seconds) / float(seconds.sum()), 1),
        "seconds_per_epoch": round(float(seconds.mean()), 1),
        "setup_s": round(t_setup, 1),
        "n_cells": n,
        "n_genes": mdata["rna"].n_vars,
        "n_metabolites": mdata["msi"].n_vars,
        "epochs": args.epochs,
        **extra,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "command": command,
    }), flush=True)


if __name__ == "__main__":
    main()
