"""Shared fixtures: paths to the real test data in tests/data (see PROVENANCE.md there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def imzml_continuous() -> Path:
    return DATA / "imzml_example" / "Example_Continuous.imzML"


@pytest.fixture
def imzml_processed() -> Path:
    return DATA / "imzml_example" / "Example_Processed.imzML"


@pytest.fixture
def visium_dir() -> Path:
    return DATA / "visium_squidpy_test"


@pytest.fixture
def visium_copy(tmp_path, visium_dir) -> Path:
    """A writable copy of the real Visium subset, for tests that break it."""
    dest = tmp_path / "outs"
    shutil.copytree(visium_dir, dest)
    return dest
