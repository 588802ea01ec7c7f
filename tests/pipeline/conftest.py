"""Two small synthetic sections written in the real formats, read and aligned once per session
(``sections_seed3`` and ``sections_seed3_aligned`` in tests/conftest.py, which the CLI tests share)."""

from __future__ import annotations

import pytest

from spatial_mg.io import SectionFiles


@pytest.fixture(scope="package")
def written(sections_seed3):
    root, data = sections_seed3
    files = [SectionFiles(s.name, root / s.name / "outs", root / s.name / "msi" / f"{s.name}.imzML") for s in data.sections]
    return root, data, files


@pytest.fixture(scope="package")
def aligned(sections_seed3_aligned):
    return sections_seed3_aligned


@pytest.fixture(scope="package")
def pairs_files(aligned, tmp_path_factory):
    """Each aligned section's pairs written as ``<section>/pairs.h5mu``, as 'spatial-mg align' writes them."""
    root = tmp_path_factory.mktemp("pairs")
    paths = []
    for section in aligned:
        (root / section.name).mkdir()
        section.pairs.write(root / section.name / "pairs.h5mu")
        paths.append(root / section.name / "pairs.h5mu")
    return paths
