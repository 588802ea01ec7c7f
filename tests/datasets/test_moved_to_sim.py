"""The simulator's old names in spatial_mg.datasets still work, warn, and are the spatial_mg.sim objects."""

from __future__ import annotations

import pytest

import spatial_mg
import spatial_mg.datasets as datasets
import spatial_mg.sim as sim

MOVED = ["SyntheticSection", "SyntheticVicari", "paired_truth", "synthetic_mosaic", "synthetic_vicari"]


@pytest.mark.parametrize("name", MOVED)
def test_old_name_warns_and_returns_the_sim_object(name):
    with pytest.warns(DeprecationWarning, match=rf"spatial_mg\.datasets\.{name} moved to spatial_mg\.sim"):
        old = getattr(datasets, name)
    assert old is getattr(sim, name)


def test_from_import_and_attribute_chain_still_work():
    with pytest.warns(DeprecationWarning, match="import it from there"):
        from spatial_mg.datasets import synthetic_vicari
    assert synthetic_vicari is sim.synthetic_vicari
    with pytest.warns(DeprecationWarning, match="moved to spatial_mg.sim"):
        assert spatial_mg.datasets.synthetic_mosaic is spatial_mg.sim.synthetic_mosaic


def test_datasets_keeps_the_real_data_names_without_warning(recwarn):
    for name in datasets.__all__:
        getattr(datasets, name)
    assert not [w for w in recwarn if "spatial_mg.sim" in str(w.message)]
    assert not set(MOVED) & set(datasets.__all__)


def test_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        datasets.no_such_name  # noqa: B018
