"""Dataset manifests: YAML files that say where a real dataset lives and how to cite it.

One file per dataset in ``data_manifests/`` (installed as ``spatial_mg.data_manifests``).
Parsing validates every field up front, so a broken manifest fails with the file and key
named rather than halfway through a multi-gigabyte download.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from urllib.parse import urlparse

import yaml

from ..io._section_files import POLARITIES

UNPACK_KINDS = ("zip", "tar", "none")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_URL_SCHEMES = ("https", "http", "ftp", "file")


class ManifestError(ValueError):
    """A manifest file is missing a field or has one of the wrong kind."""


@dataclass(frozen=True)
class ManifestFile:
    """One downloadable file of a dataset."""

    name: str  # file name in the cache
    url: str
    size_bytes: int | None  # exact size, when known
    sha256: str | None  # None: computed on first download and recorded in the cache
    unpack: str  # "zip", "tar" or "none"
    unpack_nested: bool = False  # also unpack the zip archives found inside
    section: str | None = None  # the section this file belongs to; None: shared by all
    approx_size_mb: float | None = None  # a rounded size shown by the repository


@dataclass(frozen=True)
class DatasetManifest:
    """A parsed, validated manifest."""

    name: str
    title: str
    description: str
    licence: str
    citation: str
    landing_page: str
    files: tuple[ManifestFile, ...]
    layout: dict
    sections: tuple[dict, ...] | None = None  # None: not established
    doi: str | None = None
    notes: str | None = None
    source: Path | None = field(default=None, compare=False)  # the YAML file it came from

    @property
    def section_ids(self) -> list[str]:
        """Section identifiers the manifest lists (possibly not all the dataset holds)."""
        return [s["id"] for s in self.sections or ()]

    @property
    def per_section_files(self) -> bool:
        """Whether single sections can be downloaded on their own."""
        return any(f.section is not None for f in self.files)

    def files_for(self, section: str | None = None) -> list[ManifestFile]:
        """The files to download for ``section`` (all files when ``None``).

        Files shared by every section are always included; where the manifest has no
        per-section files the whole dataset is returned whatever the section.
        """
        if section is None or not self.per_section_files:
            return list(self.files)
        known = sorted({f.section for f in self.files if f.section is not None})
        if section not in known:
            raise ManifestError(
                f"Dataset '{self.name}' has no section '{section}'; its sections are {', '.join(known)}."
            )
        return [f for f in self.files if f.section in (None, section)]

    def size_text(self) -> str:
        """Total download size for humans: exact when every size is known, else approximate."""
        exact = [f.size_bytes for f in self.files]
        if all(s is not None for s in exact):
            return _human(sum(exact))
        approx = [f.size_bytes if f.size_bytes is not None else (f.approx_size_mb or 0) * 1e6 for f in self.files]
        if all(f.size_bytes is not None or f.approx_size_mb for f in self.files):
            return f"~{_human(sum(approx))}"
        return "unknown"


def _human(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError  # pragma: no cover


def load_manifest(path: str | PathLike) -> DatasetManifest:
    """Parse and validate one manifest file.

    Parameters
    ----------
    path
        A ``.yaml`` manifest.

    Returns
    -------
    The manifest; a :class:`ManifestError` names the file and the key when a field is
    missing or malformed.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ManifestError(f"'{path}' is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"'{path}' must hold a mapping of manifest keys, not {type(data).__name__}.")
    where = f"manifest '{path}'"

    name = _text(data, "name", where)
    if not _NAME.match(name):
        raise ManifestError(f"{where}: 'name' must be lower-case letters, digits and '_', got '{name}'.")
    if name != path.stem:
        raise ManifestError(f"{where}: 'name' is '{name}' but the file is called '{path.name}'; make them agree.")
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise ManifestError(f"{where}: 'files' must be a non-empty list of files to download.")
    parsed_files = tuple(_file(entry, f"{where}, files[{i}]") for i, entry in enumerate(files))
    names = [f.name for f in parsed_files]
    if len(set(names)) != len(names):
        raise ManifestError(f"{where}: two entries of 'files' have the same 'name'.")
    layout = data.get("layout")
    if not isinstance(layout, dict) or not isinstance(layout.get("kind"), str):
        raise ManifestError(f"{where}: 'layout' must be a mapping with a 'kind' (e.g. sma_processed, magpie).")

    return DatasetManifest(
        name=name,
        title=_text(data, "title", where),
        description=_text(data, "description", where),
        licence=_text(data, "licence", where),
        citation=_text(data, "citation", where),
        landing_page=_url(_text(data, "landing_page", where), f"{where}, 'landing_page'"),
        files=parsed_files,
        layout=layout,
        sections=_sections(data, where),
        doi=_optional_text(data, "doi", where),
        notes=_optional_text(data, "notes", where),
        source=path,
    )


def _text(data: dict, key: str, where: str) -> str:
    if key not in data:
        raise ManifestError(f"{where}: missing key '{key}'.")
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: '{key}' must be non-empty text.")
    return " ".join(value.split())


def _optional_text(data: dict, key: str, where: str) -> str | None:
    return None if data.get(key) is None else _text(data, key, where)


def _url(url: str, where: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in _URL_SCHEMES or not (parsed.netloc or parsed.scheme == "file"):
        raise ManifestError(f"{where}: '{url}' is not an http(s), ftp or file URL.")
    return url


def _file(entry: object, where: str) -> ManifestFile:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} must be a mapping with url, name, size_bytes, sha256 and unpack.")
    for key in ("url", "name", "size_bytes", "sha256", "unpack"):
        if key not in entry:
            raise ManifestError(f"{where}: missing key '{key}' (write null where the value is unknown).")
    name = _text(entry, "name", where)
    if Path(name).name != name or name in (".", ".."):
        raise ManifestError(f"{where}: 'name' must be a plain file name, got '{name}'.")
    size = entry["size_bytes"]
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ManifestError(f"{where}: 'size_bytes' must be a positive whole number of bytes, or null.")
    sha = entry["sha256"]
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha.lower())):
        raise ManifestError(f"{where}: 'sha256' must be 64 hexadecimal digits, or null when unknown.")
    unpack = entry["unpack"]
    if unpack not in UNPACK_KINDS:
        raise ManifestError(f"{where}: 'unpack' must be one of {', '.join(UNPACK_KINDS)}, got {unpack!r}.")
    nested = entry.get("unpack_nested", False)
    if not isinstance(nested, bool) or (nested and unpack == "none"):
        raise ManifestError(f"{where}: 'unpack_nested' must be true or false, and true only for an archive.")
    approx = entry.get("approx_size_mb")
    if approx is not None and (isinstance(approx, bool) or not isinstance(approx, int | float) or approx <= 0):
        raise ManifestError(f"{where}: 'approx_size_mb' must be a positive number, or absent.")
    section = entry.get("section")
    if section is not None and not isinstance(section, str):
        raise ManifestError(f"{where}: 'section' must be a section id or null.")
    return ManifestFile(
        name=name,
        url=_url(_text(entry, "url", where), f"{where}, 'url'"),
        size_bytes=size,
        sha256=sha.lower() if sha else None,
        unpack=unpack,
        unpack_nested=nested,
        section=section,
        approx_size_mb=approx,
    )


def _sections(data: dict, where: str) -> tuple[dict, ...] | None:
    sections = data.get("sections")
    if sections is None:
        return None
    if not isinstance(sections, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in sections):
        raise ManifestError(f"{where}: 'sections' must be a list of mappings each with an 'id', or null.")
    for entry in sections:
        matrix, polarity = entry.get("matrix"), entry.get("polarity")
        if matrix is not None and (not isinstance(matrix, str) or not matrix.strip()):
            raise ManifestError(f"{where}: section '{entry['id']}' has 'matrix' {matrix!r}; give the MALDI matrix's name, or null.")
        if polarity not in (None, *POLARITIES):
            raise ManifestError(
                f"{where}: section '{entry['id']}' has 'polarity' {polarity!r}; it must be one of {POLARITIES}, or null."
            )
    return tuple(sections)


def _manifest_dir() -> Path:
    """Where the manifests are: the checkout's data_manifests/ when this module runs from a
    source checkout, else the installed package ``spatial_mg.data_manifests``."""
    # A checkout's own manifests first: an editable install (or another worktree's) may map
    # spatial_mg.data_manifests to a different checkout than the one this code comes from.
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "data_manifests").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "data_manifests"
    try:
        return Path(str(importlib.resources.files("spatial_mg.data_manifests")))
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "The dataset manifests are not installed (package spatial_mg.data_manifests); reinstall spatial-mg."
        ) from None


def manifest_names() -> list[str]:
    """Names of the packaged dataset manifests, sorted."""
    return sorted(p.stem for p in _manifest_dir().glob("*.yaml"))


def get_manifest(name: str) -> DatasetManifest:
    """The packaged manifest called ``name`` (see :func:`manifest_names`)."""
    path = _manifest_dir() / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"No dataset called '{name}'; known datasets: {', '.join(manifest_names())}.")
    return load_manifest(path)


def all_manifests() -> list[DatasetManifest]:
    """Every packaged manifest, parsed and validated."""
    return [get_manifest(name) for name in manifest_names()]


def msi_acquisitions() -> dict[str, dict[str, str | None]]:
    """Per section id, the MALDI ``matrix`` and ion mode (``polarity``) the manifests record
    (``None`` where no manifest says).

    A section of the SMA study keeps its id in every repackaging (MAGPIE's inputs list no
    sections, the Mendeley manifest does), so every manifest that lists it is asked; two
    that disagree are an error.
    """
    found: dict[str, dict[str, str | None]] = {}
    for manifest in all_manifests():
        for entry in manifest.sections or ():
            known = found.setdefault(entry["id"], {"matrix": None, "polarity": None})
            for key, value in known.items():
                new = entry.get(key)
                if new is not None and value not in (None, new):
                    raise ManifestError(
                        f"The manifests disagree on the {key} of section '{entry['id']}' ({value!r}, and {new!r} in "
                        f"'{manifest.source}'); fix the one that is wrong."
                    )
                known[key] = value if new is None else new
    return found
