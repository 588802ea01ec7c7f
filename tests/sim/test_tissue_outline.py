"""synthetic_vicari(tissue_outline=...): an irregular tissue, or a round one whose outline says nothing of its turn."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_mg.sim import synthetic_vicari


def _edge_radii(xy: np.ndarray, n_sectors: int = 24) -> np.ndarray:
    """The farthest spot from the tissue's centre in each angular sector."""
    d = xy - xy.mean(axis=0)
    angle = np.arctan2(d[:, 1], d[:, 0])
    sector = ((angle + np.pi) / (2 * np.pi) * n_sectors).astype(int) % n_sectors
    radius = np.linalg.norm(d, axis=1)
    return np.array([radius[sector == k].max() for k in range(n_sectors)])


@pytest.mark.parametrize("seed", [0, 3])
def test_a_disc_is_round_and_a_blob_is_not(seed):
    kwargs = {"n_sections": 1, "n_spots": 400, "n_genes": 20, "n_metabolites": 5, "seed": seed}
    disc = synthetic_vicari(tissue_outline="disc", **kwargs).sections[0]
    blob = synthetic_vicari(**kwargs).sections[0]
    spread = {}
    for name, s in (("disc", disc), ("blob", blob)):
        radii = _edge_radii(np.asarray(s.rna.obsm["spatial"], float))
        spread[name] = radii.std() / radii.mean()
    # a disc's edge lies within the spot lattice's step of one circle; the blob's bulges and dents do not
    assert spread["disc"] < 0.05 < spread["blob"]
    assert abs(disc.rna.n_obs - blob.rna.n_obs) < 0.1 * blob.rna.n_obs  # about the same area


def test_an_unknown_outline_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"tissue_outline must be one of \('blob', 'disc'\), got 'square'"):
        synthetic_vicari(n_sections=1, tissue_outline="square")
