"""The demo's latent figure: comparable (RNA-only) latents of all sections, coloured by what the files carry."""

from __future__ import annotations

import numpy as np

from spatial_mg.pipeline import stack_sections, train_model
from spatial_mg.pipeline._demo import MSI_CLUSTER_KEY, SPLIT_KEY, latent_frame


def test_every_section_is_drawn_from_its_rna_alone_with_msi_clusters(aligned):
    train, held_out = aligned
    mdata = stack_sections([train])
    model = train_model(mdata, n_latent=4, max_epochs=2, accelerator="cpu", progress_bar=False)
    frame = latent_frame(model, aligned, held_out, n_clusters=3)

    assert frame.n_obs == train.pairs.n_obs + held_out.pairs.n_obs
    assert dict(frame.obs["section"].value_counts()) == {s.name: s.pairs.n_obs for s in aligned}
    assert set(frame.obs.loc[frame.obs["section"] == held_out.name, SPLIT_KEY]) == {"held-out"}
    assert set(frame.obs.loc[frame.obs["section"] == train.name, SPLIT_KEY]) == {"training"}
    # the training spots are drawn from their RNA alone too, like the held-out ones: not the joint latent
    mine = (frame.obs["section"] == train.name).to_numpy()
    rna_only = model.get_latent_representation(train.pairs["rna"], modality="rna")
    np.testing.assert_allclose(frame.obsm["X_poe"][mine], rna_only, rtol=1e-6)
    assert not np.allclose(frame.obsm["X_poe"][mine], model.get_latent_representation(mdata), atol=1e-3)
    # a colour the data have, in every section (no constant "unknown")
    assert frame.obs[MSI_CLUSTER_KEY].nunique() == 3 and "unknown" not in set(frame.obs[MSI_CLUSTER_KEY])
    assert all(frame.obs.loc[frame.obs["section"] == s.name, MSI_CLUSTER_KEY].nunique() > 1 for s in aligned)
