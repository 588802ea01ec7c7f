"""Config files for the command line: TOML or YAML, keys named like the flags."""

from __future__ import annotations

from pathlib import Path

from .._validation import existing_file


def read_config(path) -> dict:
    """Read a flat mapping of settings from ``path`` (``.toml``, ``.yaml`` or ``.yml``)."""
    path = existing_file(path, "config file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            values = tomllib.loads(path.read_text())
        elif suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(path.read_text()) or {}
        else:
            raise ValueError(f"Config file '{path}' must end in .toml, .yaml or .yml.")
    except (ValueError, ImportError) as err:
        if isinstance(err, ValueError) and str(err).startswith("Config file"):
            raise
        raise ValueError(f"Could not read config file '{path}': {err}") from err
    if not isinstance(values, dict):
        raise ValueError(f"Config file '{path}' must hold key = value settings at its top level.")
    return {str(k): (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
