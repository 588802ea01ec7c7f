"""What ``PoEVAE.setup_mudata`` records about a MuData: modalities, features, covariates.

The registry is plain data (JSON round-trip). Setup stores it in the MuData's ``uns`` as
a JSON string (scvi-tools' habit), so it travels with copies and with the h5mu file; a
model saves it beside the weights, so a loaded model can check and align any query
without the training data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._constants import LIKELIHOODS, SETUP_UNS_KEY

# var columns that say what a feature *is*, kept per feature with the model so that its
# predictions carry them: the m/z of an MSI feature and its bin (readers write all three;
# figures label by m/z, and peak lists of other runs match by it), and a gene's stable id
# (symbols repeat and change between references). Statistics of the training data
# (means, highly-variable flags) are left out: they describe the data, not the feature.
FEATURE_ANNOTATIONS = ("mz", "mz_min", "mz_max", "gene_ids")


@dataclass
class ModalityEntry:
    """One modality: observation model, where its values are, its features in order, and
    the :data:`FEATURE_ANNOTATIONS` its ``var`` had (one value per feature; registries
    written before they were recorded have none)."""

    likelihood: str
    layer: str | None
    features: list[str]
    mask_key: str | None = None
    annotations: dict[str, list] = field(default_factory=dict)

    def var(self) -> pd.DataFrame:
        """The features as a ``var`` table: names as the index, the kept annotations as columns."""
        var = pd.DataFrame(index=pd.Index(self.features))
        for column, values in self.annotations.items():
            var[column] = np.array([np.nan if v is None else v for v in values], np.float64) if _numeric(values) else values
        return var


@dataclass
class Registry:
    """Modalities (in model order), categorical covariates with their categories, MMD key,
    and the spatial context: modality -> neighbourhood radius in micrometres, with the
    ``obsm`` key of the spots' coordinates (spots of different ``batch_key`` groups, the
    sections, are never neighbours)."""

    modalities: dict[str, ModalityEntry]
    covariates: dict[str, list[str]] = field(default_factory=dict)
    batch_key: str | None = None
    mmd_key: str | None = None
    mmd_categories: list[str] = field(default_factory=list)
    spatial_context: dict[str, float] = field(default_factory=dict)
    spatial_key: str = "spatial"

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def to_json(self) -> str:
        raw = asdict(self)
        if not self.spatial_context:  # as registries of before the spatial context, byte for byte
            for key in ("spatial_context", "spatial_key"):
                del raw[key]
        return json.dumps(raw, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Registry:
        raw = json.loads(text)
        raw["modalities"] = {k: ModalityEntry(**v) for k, v in raw["modalities"].items()}
        return cls(**raw)

    def with_categories_of(self, data) -> Registry:
        """A copy whose covariates also have the categories of ``data`` that are new, after
        the known ones (in the order the embedding tables grow)."""
        covariates = {}
        for key, known in self.covariates.items():
            covariates[key] = [*known, *(c for c in categories_of(data, key) if c not in known)]
        new = Registry.from_json(self.to_json())
        new.covariates = covariates
        if new.mmd_key in covariates:
            new.mmd_categories = list(covariates[new.mmd_key])
        return new


def obs_column(data, key: str, fill=None) -> pd.Series:
    """An obs column of an AnnData, or of a MuData (global obs, else pooled from modalities).

    A MuData keeps per-modality obs apart unless pulled; a key found only in modality
    tables (e.g. ``section`` in ``rna.obs``) is pooled over them, and cells where the
    modalities disagree are an error, as are cells that no modality labels unless
    ``fill`` gives their value.
    """
    if key in data.obs.columns:
        return data.obs[key]
    mods = getattr(data, "mod", None)
    if mods is None:
        raise KeyError(f"obs column '{key}' not found; available: {sorted(map(str, data.obs.columns))}")
    pooled = pd.Series(pd.NA, index=data.obs_names, dtype=object)
    found = False
    for name, mod in mods.items():
        if key not in mod.obs.columns:
            continue
        found = True
        values = mod.obs[key].astype(object)
        current = pooled.loc[values.index]
        clash = current.notna() & (current.astype(str) != values.astype(str))
        if clash.any():
            raise ValueError(f"obs column '{key}' disagrees between modalities for cell '{clash.index[clash][0]}'")
        pooled.loc[values.index] = values.to_numpy()
    if not found:
        raise KeyError(f"obs column '{key}' is neither in mdata.obs nor in any modality's obs")
    if fill is not None:
        pooled = pooled.fillna(fill).infer_objects()
    if pooled.isna().any():
        raise ValueError(
            f"obs column '{key}' has no value for {int(pooled.isna().sum())} cell(s), e.g. "
            f"'{pooled.index[pooled.isna()][0]}': put the column in mdata.obs for all cells"
        )
    return pooled


def categories_of(data, key: str) -> list[str]:
    """Sorted category labels (as strings) of an obs column; NaN is an error."""
    values = obs_column(data, key)
    if values.isna().any():
        raise ValueError(f"obs column '{key}' has missing values; fill or drop those cells first")
    return sorted(pd.unique(values.astype(str)))


def build_registry(
    mdata,
    likelihoods: Mapping[str, str],
    batch_key: str | None,
    layers: dict[str, str | None] | None,
    categorical_covariate_keys: list[str] | None,
    mask_keys: dict[str, str] | None,
    mmd_key: str | None,
    spatial_context: Mapping[str, float] | None = None,
    spatial_key: str = "spatial",
) -> Registry:
    """Validate the setup arguments against ``mdata`` and record them."""
    if not isinstance(likelihoods, Mapping) or not likelihoods:
        raise TypeError('likelihoods must be a non-empty dict such as {"rna": "nb", "msi": "gaussian"}')
    mods = getattr(mdata, "mod", None)
    if mods is None:
        raise TypeError(f"setup_mudata needs a MuData, got {type(mdata).__name__}; wrap it: mudata.MuData({{'rna': adata}})")
    layers, mask_keys = dict(layers or {}), dict(mask_keys or {})
    for extra, what in ((layers, "layers"), (mask_keys, "mask_keys")):
        unknown = set(extra) - set(likelihoods)
        if unknown:
            raise KeyError(f"{what} names modalities not in `likelihoods`: {sorted(unknown)}")
    entries = {}
    for name, likelihood in likelihoods.items():
        if name not in mods:
            raise KeyError(f"modality '{name}' is not in the MuData; it has {sorted(mods)}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"modality '{name}': likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
        layer = layers.get(name)
        if layer is not None and layer not in mods[name].layers:
            raise KeyError(f"modality '{name}' has no layer '{layer}'; layers: {sorted(mods[name].layers)}")
        features = [str(f) for f in mods[name].var_names]
        if len(set(features)) != len(features):
            raise ValueError(f"modality '{name}' has duplicate feature names; run .var_names_make_unique()")
        if mods[name].n_obs == 0 or not features:
            raise ValueError(f"modality '{name}' is empty ({mods[name].n_obs} cells x {len(features)} features)")
        mask_key = mask_keys.get(name)
        if mask_key is not None:
            column = obs_column(mdata, mask_key, fill=False)
            if column.dtype != bool:
                raise TypeError(f"mask key '{mask_key}' of modality '{name}' must be a boolean obs column, not {column.dtype}")
        entries[name] = ModalityEntry(likelihood, layer, features, mask_key, feature_annotations(mods[name].var))
    keys = ([batch_key] if batch_key is not None else []) + [
        k for k in (categorical_covariate_keys or []) if k != batch_key
    ]
    covariates = {k: categories_of(mdata, k) for k in keys}
    mmd_key = mmd_key if mmd_key is not None else batch_key
    mmd_categories = covariates[mmd_key] if mmd_key in covariates else (categories_of(mdata, mmd_key) if mmd_key else [])
    context = _check_spatial_context(mods, spatial_context, spatial_key, likelihoods)
    return Registry(entries, covariates, batch_key, mmd_key, mmd_categories, context, spatial_key)


def _check_spatial_context(mods, spatial_context, spatial_key: str, likelihoods) -> dict[str, float]:
    """``spatial_context`` as modality -> radius (um), each modality with coordinates."""
    if not spatial_context:
        return {}
    if not isinstance(spatial_context, Mapping):
        raise TypeError(f'spatial_context must be a dict such as {{"rna": 150.0}} (modality -> radius in um), not {spatial_context!r}')
    context = {}
    for name, radius in spatial_context.items():
        if name not in likelihoods:
            raise KeyError(f"spatial_context names modality '{name}', which is not in `likelihoods` {sorted(likelihoods)}")
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"spatial_context['{name}'] must be a radius in micrometres > 0 (e.g. 150 for Visium), not {radius!r}")
        if spatial_key not in mods[name].obsm:
            raise KeyError(
                f"spatial_context needs the spots' coordinates in micrometres in mdata['{name}'].obsm['{spatial_key}']; "
                "it is missing (single-cell data have no neighbourhood: set up without spatial_context)"
            )
        context[name] = float(radius)
    return context


def feature_annotations(var: pd.DataFrame) -> dict[str, list]:
    """The :data:`FEATURE_ANNOTATIONS` columns of ``var`` as JSON-ready lists (NaN as None)."""
    kept = {}
    for column in FEATURE_ANNOTATIONS:
        if column not in var.columns:
            continue
        values = var[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            kept[column] = [None if not np.isfinite(v) else float(v) for v in values.to_numpy(np.float64)]
        else:
            kept[column] = [None if pd.isna(v) else str(v) for v in values]
    return kept


def _numeric(values: list) -> bool:
    return all(v is None or isinstance(v, (int, float)) for v in values)


# --- the registry saved beside the weights ------------------------------------------------
def read_saved_registry(path: Path) -> Registry:
    """The registry a model folder holds in ``path``, or an error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"'{path}' is missing: a saved PoEVAE needs it beside its weights; copy the whole model folder"
        )
    try:
        return Registry.from_json(path.read_text())
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(
            f"'{path}' is not a registry written by PoEVAE.save ({type(err).__name__}: {err}); copy the model "
            "folder again, or save the model again"
        ) from err


def check_registry_matches(
    registry: Registry,
    modalities: tuple[tuple[str, str, int], ...],
    features: Mapping[str, list[str]] | None,
    registry_file: Path,
    weights_file: Path,
) -> None:
    """Raise unless ``registry`` describes the weights: the modalities, their likelihoods and
    feature counts of ``ModuleConfig.modalities`` and, where the weights file records the
    feature names (``features``; models saved before it did have None), the same names in
    the same order. A registry that disagrees would label the predicted columns wrongly."""
    mismatch = (
        f"'{registry_file}' and '{weights_file}' come from different saves: copy one model's folder whole, "
        "or save the model again"
    )
    trained = [name for name, _, _ in modalities]
    if registry.names != trained:
        raise ValueError(f"'{registry_file}' lists modalities {registry.names}, the weights have {trained}; {mismatch}")
    for name, likelihood, n_features in modalities:
        entry = registry.modalities[name]
        if entry.likelihood != likelihood:
            raise ValueError(
                f"modality '{name}' is '{entry.likelihood}' in the registry, '{likelihood}' in the weights; {mismatch}"
            )
        if len(entry.features) != n_features:
            raise ValueError(
                f"modality '{name}' has {len(entry.features)} features in the registry, {n_features} in the "
                f"weights; {mismatch}"
            )
        if features is None:
            continue
        saved = [str(f) for f in features.get(name, [])]
        if saved != list(entry.features):
            at = next((i for i, (a, b) in enumerate(zip(entry.features, saved)) if a != b), min(len(saved), n_features))
            ours, got = (repr(names[at]) if at < len(names) else "nothing" for names in (entry.features, saved))
            raise ValueError(
                f"modality '{name}': feature {at} is {ours} in the registry but {got} in the weights "
                f"({n_features} features in the registry, {len(saved)} named in the weights); {mismatch}"
            )


# --- the setup record in the MuData ----------------------------------------------------
def store_setup(mdata, registry: Registry) -> None:
    """Write ``registry`` into ``mdata.uns`` (the one change setup makes to the data)."""
    mdata.uns[SETUP_UNS_KEY] = registry.to_json()


def read_setup(data) -> Registry | None:
    """The registry that setup stored in ``data.uns``, or None if it was not set up."""
    text = getattr(data, "uns", {}).get(SETUP_UNS_KEY)
    if text is None:
        return None
    try:
        return Registry.from_json(str(text))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(
            f"uns['{SETUP_UNS_KEY}'] does not hold a setup of PoEVAE.setup_mudata ({err}); run setup_mudata again"
        ) from err


def codes_for(values: pd.Series, categories: list[str], key: str) -> np.ndarray:
    """Integer codes of ``values`` in ``categories``; an unseen category is an error."""
    if values.isna().any():
        raise ValueError(f"obs column '{key}' has missing values; fill or drop those cells first")
    labels = values.astype(str).to_numpy()
    codes = pd.Categorical(labels, categories=categories).codes.astype(np.int64)
    if (codes < 0).any():
        unseen = sorted(set(labels[codes < 0]))
        raise ValueError(
            f"obs column '{key}' has categories unseen in training: {unseen[:5]}"
            f"{' ...' if len(unseen) > 5 else ''}. Map such data with "
            "PoEVAE.load_query_data(query, model) (scArches surgery) first."
        )
    return codes
