"""Stack several sections' pairs into one MuData, each spot named after its section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import mudata as md
import pandas as pd

from .._constants import SECTION_KEY
from ._sections import Section

PAIRED_MODALITIES = ("rna", "msi")


def stack_sections(sections: Sequence[Section] | Mapping[str, md.MuData]) -> md.MuData:
    """One MuData of several sections' pairs, for training on all of them.

    Parameters
    ----------
    sections
        Aligned :class:`Section` objects (their ``pairs``), or ``{section name: pairs}``.

    Returns
    -------
    MuData ``{"rna", "msi"}``: spot names become ``section:barcode`` (barcodes repeat
    between Visium slides) and ``obs["section"]`` names each spot's section, in the
    MuData and in both modalities.
    """
    if isinstance(sections, Mapping):
        named = list(sections.items())
    else:
        unpaired = [s.name for s in sections if s.pairs is None]
        if unpaired:
            raise ValueError(f"Sections {unpaired} have not been paired yet; run align_section on them first.")
        named = [(s.name, s.pairs) for s in sections]
    if not named:
        raise ValueError("No sections to stack; give at least one section's pairs.")
    names = [name for name, _ in named]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"Sections {repeated} appear more than once: every section needs its own name "
            "(read_section(..., name=...)), or one of them is given twice."
        )
    parts: dict[str, list[ad.AnnData]] = {mod: [] for mod in PAIRED_MODALITIES}
    for name, pairs in named:
        for mod, store in parts.items():
            if mod not in pairs.mod:
                raise KeyError(f"Section '{name}' has no '{mod}' modality; give pairs made by align_section or 'spatial-mg align'.")
            adata = pairs[mod].copy()
            adata.obs_names = [f"{name}:{barcode}" for barcode in adata.obs_names]
            adata.obs[SECTION_KEY] = name
            store.append(adata)
    stacked = md.MuData({mod: ad.concat(group, merge="same") for mod, group in parts.items()})
    stacked.obs[SECTION_KEY] = pd.Categorical(stacked["rna"].obs[SECTION_KEY].reindex(stacked.obs_names))
    return stacked
