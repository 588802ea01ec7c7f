"""The PoE-VAE (Multigrate in Pyro): integration, query mapping and cross-modal prediction.

Imports only numpy, scipy, pandas, torch, pyro, anndata and mudata, so a bare GPU machine
can train it. Names are imported on first use: the command line reads the defaults
(:class:`ModuleConfig`, :class:`TrainingConfig`) without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_NAMES = {
    "Calibration": "_calibration",
    "DEFAULT_SEED": "_config",
    "ModuleConfig": "_config",
    "TrainingConfig": "_config",
    "default_kl_warmup_epochs": "_config",
    "default_max_epochs": "_config",
    "PoEVAE": "_model",
    "predict_ensemble": "_ensemble",
}

__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # pragma: no cover
    from ._calibration import Calibration
    from ._config import DEFAULT_SEED, ModuleConfig, TrainingConfig, default_kl_warmup_epochs, default_max_epochs
    from ._ensemble import predict_ensemble
    from ._model import PoEVAE


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})
