"""What ``PoEVAE.setup_mudata`` registered, as text for people (scvi-tools' ``view_anndata_setup``)."""

from __future__ import annotations

from ._registry import Registry

_SHOWN_CATEGORIES = 8  # more are summarised as "... and N more"


def describe_setup(registry: Registry) -> str:
    """Modalities (likelihood, where the values are, feature count), covariates with their
    categories, and the batch and MMD keys, one line each."""
    lines = ["PoEVAE setup", "  modalities:"]
    width = max(len(name) for name in registry.modalities)
    for name, entry in registry.modalities.items():
        where = "X" if entry.layer is None else f"layers[{entry.layer!r}]"
        mask = "" if entry.mask_key is None else f", present where obs[{entry.mask_key!r}]"
        lines.append(f"    {name:<{width}}  {entry.likelihood:<9} {where}, {len(entry.features)} features{mask}")
    lines.append("  covariates:" if registry.covariates else "  covariates: none")
    for key, categories in registry.covariates.items():
        role = " (batch)" if key == registry.batch_key else ""
        lines.append(f"    {key}{role}: {len(categories)} categories: {_listed(categories)}")
    lines.append(f"  batch key: {registry.batch_key or 'none'}")
    if registry.mmd_key is None:
        lines.append("  MMD key: none")
    else:
        lines.append(f"  MMD key: {registry.mmd_key} ({len(registry.mmd_categories)} groups)")
    return "\n".join(lines)


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:_SHOWN_CATEGORIES])
    more = len(values) - _SHOWN_CATEGORIES
    return shown + (f", ... and {more} more" if more > 0 else "")
