"""The demo's cache of written sections is keyed by the generator's version."""

from __future__ import annotations

from spatial_mg.pipeline import _demo
from spatial_mg.pipeline._demo import DemoConfig


def _small() -> DemoConfig:
    return DemoConfig(n_sections=1, n_spots=60, n_genes=20, n_metabolites=4)  # one section: the key, not the data, is tested


def test_sections_of_an_older_generator_are_not_reused(tmp_path, monkeypatch):
    config = _small()
    files, _, _ = _demo._demo_files(config, tmp_path)
    first = files[0].visium.parents[1]
    again, _, _ = _demo._demo_files(config, tmp_path)
    assert again[0].visium.parents[1] == first  # the same generator: the files are reused
    monkeypatch.setattr("spatial_mg.sim.GENERATOR_VERSION", 999)
    newer, _, _ = _demo._demo_files(config, tmp_path)
    assert newer[0].visium.parents[1] != first and newer[0].visium.is_dir()  # written afresh beside the old
