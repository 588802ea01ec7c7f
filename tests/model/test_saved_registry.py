"""A saved model's registry.json must describe its weights: a registry whose features
disagree with model.pt (other count, other order, other names) would load and label the
predicted columns wrongly, so load refuses it, naming the modality and the feature."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spatial_mg.model import PoEVAE

from poevae_data import paired

V1 = Path(__file__).parent / "data" / "model_v1"


def _edit_registry(folder, edit):
    path = folder / "registry.json"
    registry = json.loads(path.read_text())
    edit(registry["modalities"])
    path.write_text(json.dumps(registry))


def _swap_two(mods):
    f = mods["msi"]["features"]
    f[2], f[3] = f[3], f[2]


def _drop_last(mods):
    mods["msi"]["features"].pop()


def _add_one(mods):
    mods["msi"]["features"].append("m_extra")


def _rename_one(mods):
    mods["rna"]["features"][5] = "g_other"


@pytest.fixture
def saved(trained, tmp_path):
    trained.save(tmp_path / "model")
    return tmp_path / "model"


def test_the_weights_record_their_feature_names(saved, trained):
    features = torch.load(saved / "model.pt", weights_only=True)["features"]
    assert features == {n: list(e.features) for n, e in trained.registry.modalities.items()}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_swap_two, r"modality 'msi': feature 2 is 'm3' in the registry but 'm2' in the weights"),
        (_rename_one, r"modality 'rna': feature 5 is 'g_other' in the registry but 'g5' in the weights"),
        (_drop_last, r"modality 'msi' has 7 features in the registry, 8 in the weights"),
        (_add_one, r"modality 'msi' has 9 features in the registry, 8 in the weights"),
    ],
    ids=["reordered", "renamed", "one_fewer", "one_more"],
)
def test_a_registry_that_disagrees_with_the_weights_is_refused(saved, edit, message):
    _edit_registry(saved, edit)
    with pytest.raises(ValueError, match=message + r".*registry\.json' and '.*model\.pt' come from different saves"):
        PoEVAE.load(saved)


def test_a_registry_of_other_modalities_is_refused(saved):
    _edit_registry(saved, lambda mods: mods.update({"prot": mods.pop("msi")}))
    with pytest.raises(ValueError, match=r"lists modalities \['rna', 'prot'\], the weights have \['rna', 'msi'\]"):
        PoEVAE.load(saved)


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda d: (d / "registry.json").write_text("{not json"), ValueError, r"registry\.json' is not a registry"),
        (lambda d: (d / "registry.json").write_text("[]"), ValueError, r"registry\.json' is not a registry"),
        (lambda d: (d / "registry.json").unlink(), FileNotFoundError, r"registry\.json' is missing"),
        (lambda d: (d / "model.pt").write_bytes(b"\x00" * 64), ValueError, r"model\.pt' cannot be read"),
        (lambda d: (d / "model.pt").write_bytes((d / "model.pt").read_bytes()[:500]), ValueError, r"model\.pt' cannot be read"),
        (lambda d: torch.save(torch.zeros(3), d / "model.pt"), ValueError, r"model\.pt' has format version None"),
    ],
    ids=["registry_not_json", "registry_not_a_dict", "registry_missing", "weights_garbage", "weights_truncated", "weights_not_a_model"],
)
def test_damaged_model_files_are_named(saved, damage, error, message):
    damage(saved)
    with pytest.raises(error, match=message):
        PoEVAE.load(saved)


def test_first_format_models_are_checked_by_count_and_still_load(tmp_path):
    copy = tmp_path / "v1"
    shutil.copytree(V1, copy)
    _edit_registry(copy, lambda mods: mods["msi"]["features"].reverse())
    # format 1 recorded no names: a reordered registry cannot be told apart, and still loads
    model = PoEVAE.load(copy)
    pred = model.predict(paired(n=24, n_genes=6, n_mets=3, seed=0)["rna"], target="msi", n_samples=4)
    np.testing.assert_allclose(pred.X, np.load(V1 / "expected.npz")["msi"], rtol=1e-5, atol=1e-6)
    _edit_registry(copy, _drop_last)
    with pytest.raises(ValueError, match="modality 'msi' has 2 features in the registry, 3 in the weights"):
        PoEVAE.load(copy)
