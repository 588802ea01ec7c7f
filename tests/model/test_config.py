"""The settings and their defaults: one place, read by the model class and the command line."""

import dataclasses
import inspect
import json
import subprocess
import sys

import pytest

from spatial_mg.model import ModuleConfig, PoEVAE, TrainingConfig, default_kl_warmup_epochs, default_max_epochs
from spatial_mg.model._registry import ModalityEntry, Registry


def _defaults(function, skip=()):
    params = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty and p.name not in skip}


def test_train_takes_every_training_setting_with_its_default():
    config = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    config.pop("eval_batch_size")  # not the user's to set
    assert _defaults(PoEVAE.train) == config


def test_the_model_takes_every_architecture_setting_with_its_default():
    from_setup = {"modalities", "covariate_sizes", "batch_covariate", "n_mmd_groups", "context_modalities"}
    config = {f.name: f.default for f in dataclasses.fields(ModuleConfig) if f.name not in from_setup}
    assert _defaults(PoEVAE.__init__, skip={"seed"}) == config


def test_the_defaults_are_read_without_importing_torch():
    code = "import sys; from spatial_mg.model import TrainingConfig, ModuleConfig; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resolve_applies_the_rules_for_what_is_left_to_them():
    config = TrainingConfig().resolve(n_obs=1000, model_seed=7)
    assert config.max_epochs == default_max_epochs(1000) == 400 and config.kl_warmup_epochs == 100
    assert config.seed == 7 and config.batch_size == TrainingConfig.batch_size
    assert default_max_epochs(40_000) == 200 and default_max_epochs(10**7) == 20
    assert default_kl_warmup_epochs(30) == 7
    given = TrainingConfig(max_epochs=9, kl_warmup_epochs=0, seed=1, batch_size=None).resolve(1000, 7)
    assert (given.max_epochs, given.kl_warmup_epochs, given.seed, given.batch_size) == (9, 0, 1, 128)
    with pytest.raises(ValueError, match="validation_fraction"):
        TrainingConfig(validation_fraction=1.0).resolve(1000, 0)


def _registry(batches):
    mods = {"rna": ModalityEntry("nb", None, ["a", "b", "c"]), "msi": ModalityEntry("gaussian", None, ["m"])}
    return Registry(mods, {"batch": batches}, "batch", "batch", list(batches))


def test_module_config_is_json_and_grows_for_a_query():
    config = ModuleConfig.for_registry(_registry(["b0", "b1"]), n_latent=3, dispersion="feature-batch")
    assert config.modalities == (("rna", "nb", 3), ("msi", "gaussian", 1)) and config.covariate_sizes == ((2, 0),)
    assert ModuleConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    frozen = config.for_query(_registry(["b0", "b1", "q0", "q1"]))
    assert frozen.covariate_sizes == ((2, 2),) and frozen.n_mmd_groups == 4
    # a second query on the mapped model: the first query's rows join the reference
    assert frozen.for_query(_registry(["b0", "b1", "q0", "q1", "q2"])).covariate_sizes == ((4, 1),)
    assert config.for_query(_registry(["b0", "b1", "q0"]), query_in_train=True).covariate_sizes == ((3, 0),)
    module = config.build(seed=0)
    assert module.n_latent == 3 and module.blocks[0].per_batch_dispersion


def test_modality_weights_and_context_round_trip_and_are_checked():
    config = ModuleConfig.for_registry(_registry(["b0"]), modality_weights={"msi": 3})
    assert config.modality_weights == (("msi", 3),)
    again = ModuleConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.build(seed=0).modality_weights == [1.0, 3.0]
    with_context = dataclasses.replace(config, context_modalities=("rna",))
    assert ModuleConfig.from_dict(json.loads(json.dumps(with_context.to_dict()))).context_modalities == ("rna",)
    with pytest.raises(KeyError, match="'atac', which is not a modality"):
        ModuleConfig.for_registry(_registry(["b0"]), modality_weights={"atac": 2.0})
    with pytest.raises(ValueError, match=r"modality_weights\['msi'\] must be a number > 0"):
        ModuleConfig.for_registry(_registry(["b0"]), modality_weights={"msi": 0.0})


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_epochs", 0),
        ("max_epochs", -1),
        ("max_epochs", 2.5),
        ("batch_size", 0),
        ("batch_size", -32),
        ("batch_size", True),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("weight_decay", -0.01),
        ("validation_fraction", 1.0),
        ("validation_fraction", -0.1),
        ("patience", 0),
        ("min_delta", -1.0),
        ("lr_patience", -1),
        ("lr_factor", 0.0),
        ("lr_factor", 1.0),
        ("ema_epochs", 0.0),
        ("gradient_clip", 0.0),
        ("kl_warmup_epochs", -1),
        ("kl_weight", -0.5),
        ("kl_weight", float("inf")),
        ("checkpoint_every", 0),
        ("seed", -1),
        ("eval_batch_size", 0),
    ],
)
def test_training_settings_out_of_range_are_refused_naming_the_setting(setting, value):
    with pytest.raises(ValueError, match=rf"^{setting} must be .*, not {value!r}"):
        TrainingConfig(**{setting: value})


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("n_latent", 0),
        ("n_latent", -2),
        ("n_latent", 4.0),
        ("n_hidden", 0),
        ("n_layers", -1),
        ("dropout_rate", 1.0),
        ("dropout_rate", -0.1),
        ("embedding_dim", 0),
        ("batch_mmd_weight", -1.0),
        ("modality_mmd_weight", float("nan")),
        ("modality_dropout", 1.5),
        ("modality_dropout", -0.5),
    ],
)
def test_architecture_out_of_range_is_refused_naming_the_setting(setting, value):
    with pytest.raises(ValueError, match=rf"^{setting} must be .*, not {value!r}"):
        ModuleConfig(modalities=(("rna", "nb", 3),), **{setting: value})


def test_the_edges_of_each_range_are_accepted():
    TrainingConfig(
        max_epochs=1, batch_size=1, lr=1e-12, weight_decay=0, validation_fraction=0.0, patience=1, min_delta=0,
        lr_patience=0, lr_factor=0.999, ema_epochs=None, gradient_clip=None, kl_warmup_epochs=0, kl_weight=0,
        checkpoint_every=1, seed=0, eval_batch_size=1,
    ).resolve(10, 0)
    ModuleConfig(modalities=(("rna", "nb", 3),), n_latent=1, n_hidden=1, n_layers=0, dropout_rate=0.0, modality_dropout=1.0)
