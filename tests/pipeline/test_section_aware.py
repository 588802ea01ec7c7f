"""Section-aware defaults: the section as batch covariate, unseen sections mapped by surgery,
intervals calibrated across sections (issue 13's tests)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spatial_mg.pipeline import predict_section, train_model

QUICK = dict(max_epochs=12, accelerator="cpu", progress_bar=False)


@pytest.fixture(scope="module")
def four_sections():
    from spatial_mg.sim import paired_truth, synthetic_vicari

    data = synthetic_vicari(n_sections=4, n_spots=150, n_genes=40, n_metabolites=6, msi_section_sd=0.3, seed=4)
    return paired_truth(data, sections=[0, 1, 2], seed=5), paired_truth(data, sections=[3], seed=6)


@pytest.fixture(scope="module")
def section_model(four_sections):
    train, _ = four_sections
    return train_model(train, **QUICK)


def test_several_sections_make_the_section_the_batch_and_calibrate(section_model):
    assert section_model.registry.batch_key == "section"
    assert section_model.module_config.batch_mmd_weight > 0
    assert section_model.calibration is not None and section_model.calibration.groups == ("S1", "S2", "S3")


def test_an_unseen_section_is_mapped_first_and_the_reference_is_untouched(section_model, four_sections):
    _, test = four_sections
    before = {k: v.clone() for k, v in section_model.module.state_dict().items()}
    pred = predict_section(section_model, test["rna"], query_epochs=5)
    assert pred.uns["spatial_mg"]["prediction"]["mapped"] is True
    after = section_model.module.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    # without its section column the spots are still a new section, named "query"
    rna = test["rna"].copy()
    del rna.obs["section"]
    unnamed = predict_section(section_model, rna, query_epochs=5)
    assert unnamed.uns["spatial_mg"]["prediction"]["mapped"] is True and "section" not in rna.obs
    # a section the model knows is predicted directly
    known = predict_section(section_model, section_model.mdata["rna"][section_model.mdata.obs["section"] == "S1"])
    assert known.uns["spatial_mg"]["prediction"]["mapped"] is False


def test_calibrated_intervals_cover_a_new_section_better(section_model, four_sections):
    _, test = four_sections
    pred = predict_section(section_model, test["rna"], interval=0.9, query_epochs=5)
    y = np.asarray(test["msi"][pred.obs_names, pred.var_names].X)
    inside = (y >= pred.layers["lower"]) & (y <= pred.layers["upper"])
    z = np.abs(y - pred.X) / pred.layers["std_uncalibrated"]
    assert pred.uns["spatial_mg"]["prediction"]["calibrated"] is True
    assert inside.mean() > np.mean(z <= 1.645)  # wider than the model's own where those undercover
    assert 0.75 <= inside.mean() <= 0.99


def test_calibration_is_saved_with_the_model(section_model, tmp_path):
    from spatial_mg.model import PoEVAE

    section_model.save(tmp_path / "m")
    loaded = PoEVAE.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.calibration.quantiles, section_model.calibration.quantiles)


def test_one_section_says_it_cannot_calibrate(four_sections):
    train, test = four_sections
    one = train[train.obs["section"] == "S1"].copy()
    with pytest.warns(UserWarning, match="cannot be calibrated"):
        model = train_model(one, **QUICK)
    assert model.registry.batch_key is None and model.calibration is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = predict_section(model, test["rna"], interval=0.9)
    assert any("no calibration" in str(w.message) for w in caught)
    assert pred.uns["spatial_mg"]["prediction"]["calibrated"] is False


def test_sections_named_only_in_the_modalities_are_left_out_one_at_a_time(four_sections):
    from spatial_mg.pipeline._calibrate import calibrate_across_sections

    train, _ = four_sections
    pairs = train.copy()
    for name in pairs.mod:
        pairs[name].obs["section"] = pairs.obs["section"].reindex(pairs[name].obs_names).to_numpy()
    del pairs.obs["section"]  # as pairs stacked by hand often are: the label in rna.obs and msi.obs only
    seen = []

    def fit(data):
        seen.append(sorted(set(data["rna"].obs["section"].astype(str))))
        return train_model(data, batch_key=None, calibrate=False, **QUICK)

    cal = calibrate_across_sections(pairs, fit)
    assert seen == [["S2", "S3"], ["S1", "S3"], ["S1", "S2"]]
    assert cal.groups == ("S1", "S2", "S3")
