"""How ``model_v1/`` was made: a tiny PoEVAE saved in the first format (``model.pt`` with
``format_version`` 1 and ``module_kwargs``), by the code of commit 69729af.

It stays in the tests so that :meth:`PoEVAE.load` keeps reading models saved before the
architecture config (``module_config``) was saved instead; ``expected.npz`` holds what
that code predicted with it. Rerunning this with newer code would write the new format:
check out 69729af first.

    PYTHONPATH=. python tests/model/data/make_model_v1.py
"""

import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from poevae_data import paired  # noqa: E402

from spatial_mg.model import PoEVAE  # noqa: E402

mdata = paired(n=24, n_genes=6, n_mets=3, seed=0)
PoEVAE.setup_mudata(mdata, modalities={"rna": "nb", "msi": "gaussian"}, batch_key="section")
model = PoEVAE(mdata, n_latent=2, n_hidden=4, n_layers=1, dispersion="feature-batch", seed=0)
model.train(max_epochs=2, batch_size=8, accelerator="cpu", progress_bar=False)
shutil.rmtree(HERE / "model_v1", ignore_errors=True)
model.save(HERE / "model_v1")
pred = model.predict(mdata["rna"], target="msi", return_std=True, n_samples=4)
np.savez(
    HERE / "model_v1" / "expected.npz",
    msi=pred.X,
    msi_std=pred.layers["std"],
    z=model.get_latent_representation(mdata),
)
