"""The reference Multigrate (scvi-tools based) trained on a paired data file: cells per second.

Run by ``throughput.py --multigrate-python PYTHON`` in an environment that has
``multigrate`` (1.0.1 needs scvi-tools >= 1.4.3), on the same data file it just wrote, so
the two figures come from one run on the same data. Prints one JSON line.

Multigrate at its own defaults (batch 256, its networks, ``losses=["nb", "mse"]`` for
counts and metabolites), with two changes that make it time what ``throughput.py`` times:
no validation split and no early stopping, and the first epoch (start-up) not counted.

    python benchmarks/multigrate_reference.py data.h5mu --epochs 3

Its environment, once: multigrate 1.0.1 and scvi-tools 1.4.3 declare Python >= 3.12; on
3.11 they install and run with ``--ignore-requires-python``, held to this project's
versions of the shared packages (else pip reaches for releases that need 3.12)::

    python3.11 -m venv mgvenv
    .venv/bin/pip freeze | grep -v spatial > constraints.txt
    mgvenv/bin/pip install --ignore-requires-python -c constraints.txt \
        scvi-tools==1.4.3 multigrate==1.0.1 torch==2.13.0
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a MuData file with 'rna' (counts) and 'msi' (Gaussian) modalities")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs are all but the first")
    parser.add_argument("--batch-size", type=int, default=None, help="default: Multigrate's own (256)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    import lightning.pytorch as pl
    import mudata as md
    import multigrate as mtg
    import scvi
    import torch

    scvi.settings.seed = args.seed
    mdata = md.read_h5mu(args.data)
    rna, msi = mdata.mod["rna"].copy(), mdata.mod["msi"].copy()
    rna.layers["counts"] = rna.X.copy()
    adata = mtg.data.organize_multimodal_anndatas(adatas=[[rna], [msi]], layers=[["counts"], [None]])
    mtg.model.MultiVAE.setup_anndata(adata, rna_indices_end=rna.n_vars)
    model = mtg.model.MultiVAE(adata, losses=["nb", "mse"])

    class EpochClock(pl.Callback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, module):
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.seconds.append(time.perf_counter() - self._t0)

    clock = EpochClock()
    train = {"max_epochs": args.epochs, "accelerator": "cpu", "train_size": 1.0, "early_stopping": False}
    if args.batch_size:
        train["batch_size"] = args.batch_size
    model.train(**train, callbacks=[clock], enable_progress_bar=False)
    timed = clock.seconds[1:] if len(clock.seconds) > 1 else clock.seconds
    n = adata.n_obs
    print(
        json.dumps(
            {
                "method": "multigrate",
                "cells_per_s": round(n * len(timed) / sum(timed), 1),
                "best_epoch_cells_per_s": round(n / min(timed), 1),
                "batch_size": args.batch_size or 256,
                "device": f"cpu x{torch.get_num_threads()} threads",
                "epochs": args.epochs,
                "multigrate": mtg.__version__,
                "scvi_tools": scvi.__version__,
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
