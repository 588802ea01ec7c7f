"""Every package that spatial_mg imports directly is declared in pyproject.toml (not left to arrive
as another package's dependency, which may drop it)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _imported_modules() -> dict[str, str]:
    """Top-level module -> a file of spatial_mg that imports it (absolute imports only)."""
    found = {}
    for path in sorted((ROOT / "spatial_mg").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_directly_imported_package_is_declared():
    declared = {
        _canonical(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
        for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    distributions = packages_distributions()
    third_party = {
        module: where
        for module, where in _imported_modules().items()
        if module not in sys.stdlib_module_names and module != "spatial_mg"
    }
    assert {"sklearn", "PIL", "geopandas", "shapely", "jax", "requests"} <= set(third_party)  # the check sees them
    undeclared = {
        module: where
        for module, where in third_party.items()
        if not {_canonical(d) for d in distributions.get(module, [module])} & declared
    }
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"
