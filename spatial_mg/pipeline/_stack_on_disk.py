"""Stacking sections' pairs into files that training reads a chunk of cells at a time.

:func:`stack_sections` holds every section in memory at once; an atlas of tens of
sections (or Visium HD bins) does not fit. Here one section at a time is read, given the
names :func:`stack_sections` gives it, and written out; anndata's
``concat_on_disk`` then joins the parts of each modality into one file without loading
them, and the result opens backed (``backed="r"``), which :meth:`spatial_mg.PoEVAE.train`
reads a chunk at a time (:mod:`spatial_mg.model._disk`). The spots, their names, order,
obs columns and values are those of :func:`stack_sections` on the same sections.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import anndata as ad
import mudata as md
import pandas as pd
import scipy.sparse as sp

from .._constants import SECTION_KEY, UNS_KEY
from ._stack import PAIRED_MODALITIES, _msi_acquisition, _shared_acquisition, stack_sections


def stack_sections_on_disk(sections: Iterable[tuple[str, md.MuData]], folder: str | Path, *, mix_matrices: bool = False) -> md.MuData:
    """Stack sections' pairs into ``folder`` (one ``.h5ad`` per modality) and open them backed.

    Parameters
    ----------
    sections
        ``(section name, pairs)`` one at a time, e.g. a generator that reads each pairs file
        when asked: only one section is held in memory.
    folder
        An empty or new folder for the stacked files (and, while stacking, each section's
        parts); it must outlive the returned MuData, whose matrices stay in its files.
    mix_matrices
        As for :func:`stack_sections`.

    Returns
    -------
    MuData ``{"rna", "msi"}`` as :func:`stack_sections` returns it, its modalities backed
    by ``folder/rna.h5ad`` and ``folder/msi.h5ad``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[Path]] = {mod: [] for mod in PAIRED_MODALITIES}
    acquisitions: dict[str, dict[str, str]] = {}
    shared: dict[str, str] = {}
    for k, (name, pairs) in enumerate(sections):
        if name in acquisitions:
            raise ValueError(f"Section '{name}' appears more than once: every section needs its own name.")
        acquisitions[name] = _msi_acquisition(pairs, None)
        shared = _shared_acquisition(acquisitions, mix_matrices)  # refuses a second matrix before writing more
        single = stack_sections({name: pairs}, mix_matrices=mix_matrices)
        for mod, paths in parts.items():
            adata = single[mod]
            if sp.issparse(adata.X) and adata.X.format != "csr":  # read by rows: CSR
                adata.X = sp.csr_matrix(adata.X)
            paths.append(folder / f".{mod}_part{k}.h5ad")
            adata.write_h5ad(paths[-1])
        del single, pairs
    if not acquisitions:
        raise ValueError("No sections to stack; give at least one section's pairs.")
    modalities = {}
    for mod, paths in parts.items():
        target = folder / f"{mod}.h5ad"
        if len(paths) == 1:
            paths[0].replace(target)
        else:
            ad.experimental.concat_on_disk(paths, target, merge="same")
            for path in paths:
                path.unlink()
        modalities[mod] = ad.read_h5ad(target, backed="r")
    stacked = md.MuData(modalities)
    stacked.obs[SECTION_KEY] = pd.Categorical(stacked["rna"].obs[SECTION_KEY].reindex(stacked.obs_names))
    if shared:
        stacked["msi"].uns[UNS_KEY] = shared
    return stacked


def close_backed(mdata: md.MuData) -> None:
    """Close the files behind a MuData's backed modalities (before their folder is removed)."""
    for adata in mdata.mod.values():
        if adata.isbacked:
            adata.file.close()
