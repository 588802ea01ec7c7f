"""What ``PoEVAE.setup_mudata`` records about a MuData: modalities, features, covariates.

The registry is plain data (JSON round-trip) and is saved beside the weights, so a loaded
model can check and align any query without the training data. It is kept outside the
MuData (inputs are never modified): a class-level store keyed by the object's identity,
as long as the object lives.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .._constants import LIKELIHOODS


@dataclass
class ModalityEntry:
    """One modality: observation model, where its values are, its features in order."""

    likelihood: str
    layer: str | None
    features: list[str]
    mask_key: str | None = None


@dataclass
class Registry:
    """Modalities (in model order), categorical covariates with their categories, MMD key."""

    modalities: dict[str, ModalityEntry]
    covariates: dict[str, list[str]] = field(default_factory=dict)
    batch_key: str | None = None
    mmd_key: str | None = None
    mmd_categories: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Registry:
        raw = json.loads(text)
        raw["modalities"] = {k: ModalityEntry(**v) for k, v in raw["modalities"].items()}
        return cls(**raw)

    def with_categories(self, covariates: dict[str, list[str]]) -> Registry:
        """A copy whose covariates have these (extended) category lists."""
        new = Registry.from_json(self.to_json())
        new.covariates = {k: list(v) for k, v in covariates.items()}
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
    modalities: dict[str, str],
    batch_key: str | None,
    layers: dict[str, str | None] | None,
    categorical_covariate_keys: list[str] | None,
    mask_keys: dict[str, str] | None,
    mmd_key: str | None,
) -> Registry:
    """Validate the setup arguments against ``mdata`` and record them."""
    if not isinstance(modalities, dict) or not modalities:
        raise TypeError('modalities must be a non-empty dict such as {"rna": "nb", "msi": "gaussian"}')
    mods = getattr(mdata, "mod", None)
    if mods is None:
        raise TypeError(f"setup_mudata needs a MuData, got {type(mdata).__name__}; wrap it: mudata.MuData({{'rna': adata}})")
    layers, mask_keys = dict(layers or {}), dict(mask_keys or {})
    for extra, what in ((layers, "layers"), (mask_keys, "mask_keys")):
        unknown = set(extra) - set(modalities)
        if unknown:
            raise KeyError(f"{what} names modalities not in `modalities`: {sorted(unknown)}")
    entries = {}
    for name, likelihood in modalities.items():
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
        entries[name] = ModalityEntry(likelihood, layer, features, mask_key)
    keys = ([batch_key] if batch_key is not None else []) + [
        k for k in (categorical_covariate_keys or []) if k != batch_key
    ]
    covariates = {k: categories_of(mdata, k) for k in keys}
    mmd_key = mmd_key if mmd_key is not None else batch_key
    mmd_categories = covariates[mmd_key] if mmd_key in covariates else (categories_of(mdata, mmd_key) if mmd_key else [])
    return Registry(entries, covariates, batch_key, mmd_key, mmd_categories)


# --- the store: registries of live MuData objects, keyed by identity ----------------------
_STORE: dict[int, tuple[weakref.ref, Registry]] = {}


def remember(mdata, registry: Registry) -> None:
    key = id(mdata)
    _STORE[key] = (weakref.ref(mdata, lambda _: _STORE.pop(key, None)), registry)


def lookup(mdata) -> Registry | None:
    entry = _STORE.get(id(mdata))
    if entry is None or entry[0]() is not mdata:
        return None
    return entry[1]


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
