"""Two small synthetic sections written in the real formats, read and aligned once per module."""

from __future__ import annotations

import pytest

from spatial_mg.io import SectionFiles


@pytest.fixture(scope="package")
def written(tmp_path_factory):
    from spatial_mg.sim import synthetic_vicari

    root = tmp_path_factory.mktemp("sections")
    data = synthetic_vicari(n_sections=2, n_spots=200, n_genes=60, n_metabolites=6, msi_pitch_um=100.0, seed=3)
    data.write(root)
    files = [SectionFiles(s.name, root / s.name / "outs", root / s.name / "msi" / f"{s.name}.imzML") for s in data.sections]
    return root, data, files


@pytest.fixture(scope="package")
def aligned(written):
    from spatial_mg.pipeline import align_section, read_peak_list, read_section

    root, _, files = written
    peaks = read_peak_list(root / "peaks.csv")
    return [align_section(read_section(f, mz_bins=peaks), device="cpu") for f in files]


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
