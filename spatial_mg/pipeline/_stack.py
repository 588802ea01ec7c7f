"""Stack several sections' pairs into one MuData, each spot named after its section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import mudata as md
import pandas as pd

from .._constants import SECTION_KEY, UNS_KEY
from ..io._section_files import MSI_ACQUISITION_KEYS
from ._sections import Section

PAIRED_MODALITIES = ("rna", "msi")


def stack_sections(sections: Sequence[Section] | Mapping[str, md.MuData], *, mix_matrices: bool = False) -> md.MuData:
    """One MuData of several sections' pairs, for training on all of them.

    Parameters
    ----------
    sections
        Aligned :class:`Section` objects (their ``pairs``), or ``{section name: pairs}``.
    mix_matrices
        Stack sections whose MSI was acquired with different MALDI matrices or ion modes
        (``uns["spatial_mg"]["matrix"]`` / ``["polarity"]`` of their MSI). By default that
        is an error: such sections measured different molecules, with different peak lists,
        so their m/z features barely overlap and a model of one says nothing of the other.
        Sections whose matrix is not recorded are stacked with any.

    Returns
    -------
    MuData ``{"rna", "msi"}``: spot names become ``section:barcode`` (barcodes repeat
    between Visium slides) and ``obs["section"]`` names each spot's section, in the
    MuData and in both modalities. The MSI's ``uns["spatial_mg"]`` keeps the matrix and
    polarity the sections share.
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
    read_from = {} if isinstance(sections, Mapping) else {s.name: s for s in sections}
    acquisitions = {name: _msi_acquisition(pairs, read_from.get(name)) for name, pairs in named}
    shared = _shared_acquisition(acquisitions, mix_matrices)
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
    if shared:
        stacked["msi"].uns[UNS_KEY] = shared
    return stacked


def _msi_acquisition(pairs: md.MuData, section: Section | None) -> dict[str, str]:
    """Matrix and polarity of a section's MSI: from its pairs, else from the MSI it was read with."""
    sources = [pairs["msi"].uns if "msi" in pairs.mod else {}]
    if section is not None and section.msi is not None:
        sources.append(section.msi.uns)
    found = {}
    for uns in sources:
        for key in MSI_ACQUISITION_KEYS:
            value = uns.get(UNS_KEY, {}).get(key)
            if value is not None:
                found.setdefault(key, str(value))
    return found


def _shared_acquisition(acquisitions: dict[str, dict[str, str]], mix_matrices: bool) -> dict[str, str]:
    """The matrix and polarity every section that records one shares; an error if they differ
    (unless ``mix_matrices``)."""
    shared = {}
    for key in MSI_ACQUISITION_KEYS:
        values: dict[str, str] = {}  # by spelling-blind name, the first spelling met
        for acquisition in acquisitions.values():
            if key in acquisition:
                values.setdefault(acquisition[key].casefold(), acquisition[key])
        if len(values) == 1:
            shared[key] = next(iter(values.values()))
        elif len(values) > 1 and not mix_matrices:
            listed = ", ".join(f"{name} ({a.get(key, 'unknown')})" for name, a in acquisitions.items())
            what = "MALDI matrices" if key == "matrix" else "ion modes (polarities)"
            raise ValueError(
                f"The sections were measured with different {what}: {listed}. They detect different molecules and "
                "have different peak lists, so a model trained on the mix shares few m/z features between them and "
                "its scores on a section of the other kind mean little. Train on sections of one matrix and "
                "polarity, or pass mix_matrices=True to stack them anyway."
            )
    return shared
