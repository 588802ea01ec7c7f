"""spatial_mg: spatial multi-omics with a Product-of-Experts VAE.

Public names only; each stage lives in its own subpackage and is imported on first use,
so ``import spatial_mg`` stays fast for the command line. ``settings`` (e.g.
``smg.settings.verbosity``) is the one object made on import; it sets up the package's
logger (see ``spatial_mg._logging``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._settings import settings

__version__ = "0.1.0"

_SUBPACKAGES = ("io", "sim", "datasets", "align", "model", "baselines", "metrics", "pl", "pipeline")
_NAMES = {
    "PoEVAE": "spatial_mg.model",
    "DeviceUnavailableError": "spatial_mg._errors",
    "RegistrationFailedError": "spatial_mg._errors",
}

__all__ = [*_SUBPACKAGES, *_NAMES, "settings", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from . import align, baselines, datasets, io, metrics, model, pipeline, pl, sim
    from ._errors import DeviceUnavailableError, RegistrationFailedError
    from .model import PoEVAE


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"spatial_mg.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'spatial_mg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
