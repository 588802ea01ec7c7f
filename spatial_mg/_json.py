"""JSON for numbers that numpy, paths and floats like NaN make awkward: one converter for every writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, paths as text,
    tuples as lists and non-finite floats as ``None`` (JSON has no NaN); nested containers too."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
