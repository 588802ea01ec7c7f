"""Real datasets: the SMA manifests (``data_manifests/``), fetching them, and laying them out for the readers.

The synthetic generators moved to :mod:`spatial_mg.sim`; their old names here still work,
with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._fetch import data_home, fetch, list_datasets
from ._manifests import DatasetManifest, ManifestError, get_manifest, load_manifest, manifest_names
from ._sma_layout import sma_sections

__all__ = [
    "DatasetManifest",
    "ManifestError",
    "data_home",
    "fetch",
    "get_manifest",
    "list_datasets",
    "load_manifest",
    "manifest_names",
    "sma_sections",
]

# imported from spatial_mg.sim only when asked for, so that the real-data side loads without the simulator
_MOVED_TO_SIM = ("SyntheticSection", "SyntheticVicari", "paired_truth", "synthetic_mosaic", "synthetic_vicari")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_SIM:
        warnings.warn(
            f"spatial_mg.datasets.{name} moved to spatial_mg.sim; import it from there.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("spatial_mg.sim"), name)
    raise AttributeError(f"module 'spatial_mg.datasets' has no attribute {name!r}")
