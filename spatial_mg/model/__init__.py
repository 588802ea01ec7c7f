"""The PoE-VAE (Multigrate in Pyro): integration, query mapping and cross-modal prediction.

Imports only numpy, scipy, pandas, torch, pyro, anndata and mudata, so a bare GPU machine
can train it.
"""

from ._ensemble import predict_ensemble
from ._model import PoEVAE

__all__ = ["PoEVAE", "predict_ensemble"]
