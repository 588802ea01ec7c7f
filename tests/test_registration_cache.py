"""The registration cache of tests/conftest.py reuses a registration only for the same content."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd


def _pair():
    rng = np.random.default_rng(0)
    rna = ad.AnnData(rng.poisson(3.0, (20, 4)).astype(np.float32), obs=pd.DataFrame(index=[f"s{i}" for i in range(20)]))
    rna.obsm["spatial"] = rng.uniform(0, 1000, (20, 2))
    rna.uns["spatial_mg"] = {"units": "um", "spot_radius_um": 27.5}
    msi = ad.AnnData(rng.lognormal(0, 1, (30, 3)).astype(np.float32), obs=pd.DataFrame({"in_tissue": rng.random(30) < 0.7}, index=[f"p{i}" for i in range(30)]))
    msi.obsm["spatial"] = rng.uniform(0, 1000, (30, 2))
    msi.uns["spatial_mg"] = {"units": "um", "pixel_size_um": [100.0, 100.0]}
    return rna, msi


def _one_intensity(rna, msi, kwargs):
    msi.X[3, 1] += 1e-3


def _one_position(rna, msi, kwargs):
    msi.obsm["spatial"][0, 0] = 1.0


def _an_obs_column(rna, msi, kwargs):
    msi.obs["in_tissue"] = ~msi.obs["in_tissue"].to_numpy()


def _the_pixel_size(rna, msi, kwargs):
    msi.uns["spatial_mg"]["pixel_size_um"] = [60.0, 60.0]


def _any_uns_entry(rna, msi, kwargs):
    rna.uns["spatial_mg"]["source"] = "another/outs"


def _an_argument(rna, msi, kwargs):
    kwargs["device"] = None


def _another_argument(rna, msi, kwargs):
    kwargs["n_subsample"] = 200


def test_the_key_is_the_content_and_the_arguments(registration_cache):
    key = registration_cache._key
    rna, msi = _pair()
    kwargs = {"method": "moscot", "device": "cpu"}
    same = key(rna, msi, kwargs)
    assert same is not None and key(rna.copy(), msi.copy(), dict(kwargs)) == same
    changed = []
    for change in (_one_intensity, _one_position, _an_obs_column, _the_pixel_size, _any_uns_entry, _an_argument, _another_argument):
        r, m, k = rna.copy(), msi.copy(), dict(kwargs)
        r.uns["spatial_mg"], m.uns["spatial_mg"] = dict(r.uns["spatial_mg"]), dict(m.uns["spatial_mg"])
        change(r, m, k)
        changed.append(key(r, m, k))
    assert same not in changed and len(set(changed)) == len(changed)
    assert key(rna, msi, kwargs) == same  # the copies were changed, not the originals
    assert key(object(), msi, kwargs) is None  # not AnnData (a SpatialData, say): always registered afresh
