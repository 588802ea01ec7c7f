import numpy as np
import pytest

from spatial_mg.sim import synthetic_mosaic


def test_layout_values_and_truth():
    m = synthetic_mosaic(n_cells_per_batch=20)
    assert set(m.mod) == {"rna", "atac", "protein"} and m.n_obs == 120
    for batch, mods in {"b_trimodal": {"rna", "atac", "protein"}, "b_rna": {"rna"}, "b_atac": {"atac"}}.items():
        cells = m.obs_names[m.obs["batch"] == batch]
        has = {k for k in m.mod if np.isin(cells, m[k].obs_names).all()}
        lacks = {k for k in m.mod if not np.isin(cells, m[k].obs_names).any()}
        assert has == mods and lacks == set(m.mod) - mods
        assert (m.obs.loc[cells, "modality"] == "+".join(sorted(mods))).all()
    rna, atac, prot = (m[k].X for k in ("rna", "atac", "protein"))
    assert (rna.data == np.round(rna.data)).all() and (rna.data >= 0).all()
    assert set(np.unique(atac.toarray())) == {0.0, 1.0}
    assert np.allclose(prot.mean(1), 0.0, atol=1e-5)  # CLR: centred per cell
    assert m.obs["cell_type"].nunique() == 6


def test_deterministic_and_a_new_batch_leaves_the_others_unchanged():
    a = synthetic_mosaic({"x": ("rna",)}, n_cells_per_batch=15, seed=3)
    b = synthetic_mosaic({"x": ("rna",), "q": ("rna", "protein")}, n_cells_per_batch=15, seed=3)
    assert (a["rna"].X != b["rna"][a.obs_names].X).nnz == 0
    assert a.obs.equals(b.obs.loc[a.obs_names])
    c = synthetic_mosaic({"x": ("rna",)}, n_cells_per_batch=15, seed=4)
    assert (a["rna"].X != c["rna"].X).nnz > 0
    with pytest.raises(ValueError, match="subset"):
        synthetic_mosaic({"x": ("rna", "hic")})
