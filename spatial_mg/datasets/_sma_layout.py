"""Turn an unpacked SMA dataset folder into the readers' inputs (one SectionFiles per section).

Two layouts are recognised anywhere below the folder:

- the processed Mendeley deposit (``sma_mendeley``)::

      <section>/output_data/<section>_RNA/outs/          spaceranger outs (h5 + spatial/)
      <section>/output_data/<section>_MSI/*_smamsi.csv   SCiLS csv export (x, y, m/z columns)

- the MAGPIE inputs (``magpie_sma``)::

      <section>/visium/                                  spaceranger-like (h5 + spatial/)
      <section>/msi/MSI_intensities.csv, MSI_metadata.csv

MAGPIE splits the MSI table in two with ``mz-<value>`` column names; it is joined into one
SMA csv under ``<root>/.spatial_mg/`` (the inputs are never modified) for
:func:`spatial_mg.io.read_sma_csv`. MAGPIE's hand-placed landmarks
(``<section>/landmarks_noHE.csv``) are named as they are, for ``register(method="landmarks")``.

Each section's MALDI matrix and ion mode come from the dataset manifests, by section id
(:func:`spatial_mg.datasets._manifests.msi_acquisitions`); a section no manifest lists has
them unknown (``None``), never guessed from a file name.
"""

from __future__ import annotations

import dataclasses
import os
from os import PathLike
from pathlib import Path

import pandas as pd

from .._atomic import atomic_file
from .._validation import existing_dir
from ..io import SectionFiles
from ._manifests import msi_acquisitions

DERIVED_DIR = ".spatial_mg"
MAGPIE_LANDMARKS = "landmarks_noHE.csv"
_COUNTS = "filtered_feature_bc_matrix.h5"
_SKIP = ("__MACOSX", DERIVED_DIR, "downloads")


def sma_sections(
    root: str | PathLike,
    section: str | None = None,
    derived_dir: str | PathLike | None = None,
) -> list[SectionFiles]:
    """Find the sections of an unpacked SMA dataset.

    Parameters
    ----------
    root
        The folder returned by :func:`spatial_mg.datasets.fetch`, or any folder holding the
        Mendeley or MAGPIE layout (at any depth).
    section
        Return only this section (for example ``"V11L12-038_D1"``).
    derived_dir
        Where joined MAGPIE MSI tables are written; defaults to ``<root>/.spatial_mg``.

    Returns
    -------
    One :class:`~spatial_mg.io.SectionFiles` per section, sorted by name:
    ``visium`` is a spaceranger ``outs/``-like folder for :func:`spatial_mg.io.read_visium`,
    ``msi`` an SMA csv for :func:`spatial_mg.io.read_sma_csv` (pixel size about 100 um; the
    csv records none), an ``.imzML`` file, or ``None`` for an RNA-only section;
    ``msi_matrix`` and ``msi_polarity`` the MALDI matrix and ion mode where a manifest
    records them (else ``None``); ``landmarks`` MAGPIE's landmark file, where there is one.
    Train on sections of one matrix: the others measured other molecules.
    """
    root = existing_dir(root, "SMA dataset folder")
    derived = Path(derived_dir) if derived_dir is not None else root / DERIVED_DIR
    found: dict[str, SectionFiles] = {}
    problems: dict[str, str] = {}
    for name, files_or_problem in [*_mendeley(root), *_magpie(root, derived, wanted=section)]:
        if name in found or name in problems:
            problems.setdefault(name, f"section '{name}' appears twice below '{root}'")
            found.pop(name, None)
        elif isinstance(files_or_problem, str):
            problems[name] = files_or_problem
        else:
            found[name] = files_or_problem

    acquisitions = msi_acquisitions()
    for name, files in found.items():
        known = acquisitions.get(name, {})
        found[name] = dataclasses.replace(files, msi_matrix=known.get("matrix"), msi_polarity=known.get("polarity"))

    if section is not None:
        if section in found:
            return [found[section]]
        if section in problems:
            raise ValueError(f"Section '{section}' below '{root}' cannot be used: {problems[section]}.")
        listed = ", ".join(sorted(found)) or "none"
        raise ValueError(f"No section '{section}' below '{root}'; sections found: {listed}.")
    if not found:
        detail = "".join(f"\n  {name}: {why}" for name, why in sorted(problems.items()))
        raise ValueError(
            f"'{root}' is not laid out as SMA data. Expected the Mendeley layout "
            "(<section>/output_data/<section>_RNA/outs and <section>_MSI/*_smamsi.csv) or the MAGPIE layout "
            "(<section>/visium/ and <section>/msi/MSI_intensities.csv, MSI_metadata.csv)." + detail
        )
    return [found[name] for name in sorted(found)]


def _walk_dirs(root: Path, name: str):
    """Folders called ``name`` below ``root``, skipping macOS resource forks and our own outputs."""
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP and not d.startswith("._"))
        if name in dirnames:
            yield Path(dirpath) / name


def _visium_problem(outs: Path) -> str | None:
    if not (outs / _COUNTS).is_file():
        return f"'{outs}' has no {_COUNTS}"
    if not (outs / "spatial").is_dir():
        return f"'{outs}' has no spatial/ folder"
    return None


def _mendeley(root: Path):
    for output_data in _walk_dirs(root, "output_data"):
        name = output_data.parent.name
        candidates = [output_data / f"{name}_RNA" / "outs", *sorted(output_data.glob(f"{name}*_RNA/outs"))]
        outs = next((c for c in candidates if c.is_dir()), None)
        if outs is None:
            yield name, f"'{output_data}' has no {name}_RNA/outs folder (an MSI-only section)"
            continue
        problem = _visium_problem(outs)
        if problem:
            yield name, problem
            continue
        msi_dir = output_data / f"{name}_MSI"
        if not msi_dir.is_dir():
            yield name, SectionFiles(name, outs, None)
            continue
        exports = [p for p in sorted(msi_dir.glob("*smamsi.csv")) if not p.name.startswith("._")]
        exports = exports or [p for p in sorted(msi_dir.glob("*.imzML")) if not p.name.startswith("._")]
        if len(exports) != 1:
            what = "no *_smamsi.csv or .imzML file" if not exports else f"several MSI files ({[p.name for p in exports]})"
            yield name, f"'{msi_dir}' has {what}"
            continue
        yield name, SectionFiles(name, outs, exports[0])


def _magpie(root: Path, derived: Path, wanted: str | None):
    for msi_dir in _walk_dirs(root, "msi"):
        section_dir = msi_dir.parent
        name = section_dir.name
        visium = section_dir / "visium"
        if not visium.is_dir():
            continue  # an msi/ folder of some other layout
        problem = _visium_problem(visium)
        if problem:
            yield name, problem
            continue
        missing = [f for f in ("MSI_intensities.csv", "MSI_metadata.csv") if not (msi_dir / f).is_file()]
        if missing:
            yield name, f"'{msi_dir}' has no {' or '.join(missing)}"
            continue
        marks = section_dir / MAGPIE_LANDMARKS
        landmarks = marks if marks.is_file() else None
        if wanted is not None and name != wanted:
            # Joining tables costs time; only the requested section needs its csv.
            yield name, SectionFiles(name, visium, derived / f"{name}_msi.csv", landmarks=landmarks)
            continue
        try:
            csv = _join_magpie_msi(msi_dir, derived / f"{name}_msi.csv")
        except ValueError as err:
            yield name, str(err)
            continue
        yield name, SectionFiles(name, visium, csv, landmarks=landmarks)


def _join_magpie_msi(msi_dir: Path, out: Path) -> Path:
    """One SMA csv (x, y, spot_id, then one column per m/z) from MAGPIE's two tables."""
    intensities, metadata = msi_dir / "MSI_intensities.csv", msi_dir / "MSI_metadata.csv"
    if out.is_file() and out.stat().st_mtime >= max(intensities.stat().st_mtime, metadata.stat().st_mtime):
        return out
    meta = pd.read_csv(metadata)
    values = pd.read_csv(intensities)
    for table, path, needed in ((meta, metadata, ("spot_id", "x", "y")), (values, intensities, ("spot_id",))):
        absent = [c for c in needed if c not in table.columns]
        if absent:
            raise ValueError(f"'{path}' has no column(s) {absent}")
    if meta["spot_id"].duplicated().any() or values["spot_id"].duplicated().any():
        raise ValueError(f"'{msi_dir}' has repeated spot_id values")
    if set(meta["spot_id"]) != set(values["spot_id"]):
        raise ValueError(f"the spot_id columns of '{metadata}' and '{intensities}' list different pixels")
    peaks = [c for c in values.columns if c != "spot_id"]
    renamed = {c: c[3:] if c.startswith("mz-") else c for c in peaks}
    joined = meta[["x", "y", "spot_id"]].merge(values.rename(columns=renamed), on="spot_id", how="left")
    with atomic_file(out) as tmp:
        joined.to_csv(tmp, index=False)
    return out
