"""Download, verify and unpack the real datasets listed in the manifests, with pooch.

Cache layout, under ``<cache>/<dataset name>/``::

    downloads/<file name>       the files as downloaded (kept, so a second fetch is a no-op)
    unpacked/<file stem>/       each archive's contents (appears whole or not at all)
    checksums.json              sha256 of files whose manifest gives none, recorded on first download
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import uuid
import zipfile
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pandas as pd

from .._atomic import atomic_file
from ._manifests import DatasetManifest, ManifestFile, all_manifests, get_manifest

CHECKSUMS_FILE = "checksums.json"
_LOADABLE_LAYOUTS = ("sma_processed", "magpie")
_MAX_NESTING = 3  # archives inside archives inside archives; deeper is a malformed record


def data_home(cache_dir: str | PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$SPATIAL_MG_DATA``, else ``~/.cache/spatial_mg``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("SPATIAL_MG_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spatial_mg"


def list_datasets() -> pd.DataFrame:
    """The datasets that :func:`fetch` knows.

    Returns
    -------
    DataFrame with one row per dataset and columns ``name``, ``title``, ``licence`` and
    ``size`` (download size; ``~`` marks a rounded figure, ``unknown`` where the
    repository does not state it).
    """
    rows = [
        {"name": m.name, "title": m.title, "licence": m.licence, "size": m.size_text()} for m in all_manifests()
    ]
    return pd.DataFrame(rows, columns=["name", "title", "licence", "size"])


def fetch(
    name: str | DatasetManifest,
    section: str | None = None,
    cache_dir: str | PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Download a dataset (or one section of it), verify it and unpack it.

    Parameters
    ----------
    name
        A dataset name (see :func:`list_datasets`) or a parsed manifest.
    section
        Fetch only the files of this section where the manifest lists per-section files;
        otherwise the whole record is fetched and the section is looked up in it.
    cache_dir
        Where datasets are kept; defaults to ``$SPATIAL_MG_DATA`` or ``~/.cache/spatial_mg``.
    progress
        Show download progress bars.

    Returns
    -------
    The dataset folder ``<cache>/<name>``; :func:`spatial_mg.datasets.sma_sections` turns it
    into the readers' inputs.

    Notes
    -----
    Files are checked against the manifest's sha256. Where the manifest has none, the
    sha256 is computed, printed and recorded in ``checksums.json`` of the dataset folder,
    and later fetches are checked against that record. Downloads are atomic (pooch writes
    to a temporary file and moves it in place only after the check), and so is unpacking.
    """
    manifest = name if isinstance(name, DatasetManifest) else get_manifest(name)
    root = data_home(cache_dir) / manifest.name
    files = manifest.files_for(section)
    if section is not None and not manifest.per_section_files:
        print(f"{manifest.name}: the record is only downloadable whole; fetching it all, then looking up '{section}'.")
    recorded = _read_recorded(root)
    for entry in files:
        archive = _download(entry, root, recorded, progress)
        if entry.unpack != "none":
            _unpack(archive, entry, root / "unpacked" / _stem(entry.name))
    if section is not None and manifest.layout.get("kind") in _LOADABLE_LAYOUTS:
        from ._sma_layout import sma_sections

        sma_sections(root, section=section)  # raises, naming the sections found, when it is absent
    elif section is not None:
        print(f"{manifest.name}: its layout is not read by spatial_mg; look for '{section}' under {root}.")
    return root


def _download(entry: ManifestFile, root: Path, recorded: dict, progress: bool) -> Path:
    import pooch  # imported on use: the package loads without it

    record = root / CHECKSUMS_FILE
    known = entry.sha256 or recorded.get(entry.name, {}).get("sha256")
    try:
        path = Path(
            pooch.retrieve(
                entry.url,
                known_hash=f"sha256:{known}" if known else None,
                fname=entry.name,
                path=root / "downloads",
                downloader=_downloader(entry.url, progress),
            )
        )
    except ValueError as err:
        if known and not entry.sha256:
            raise ValueError(
                f"{err} The expected sha256 was recorded in '{record}' on the first download of '{entry.name}'; "
                "if the repository has replaced the file, delete that entry and fetch again."
            ) from None
        raise
    if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        size = path.stat().st_size
        path.unlink()
        raise ValueError(
            f"'{entry.name}' from {entry.url} has {size} bytes, the manifest expects {entry.size_bytes}; "
            "the download was removed. Try again, or report the manifest as out of date."
        )
    if known is None:
        digest = pooch.file_hash(str(path), alg="sha256")
        recorded[entry.name] = {
            "sha256": digest,
            "size_bytes": path.stat().st_size,
            "url": entry.url,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _write_recorded(root, recorded)
        print(f"sha256 of '{entry.name}' (not in the manifest; recorded in '{record}'): {digest}")
    return path


def _downloader(url: str, progress: bool):
    """pooch's downloader for the URL; ``file://`` URLs (local mirrors) are copied."""
    import pooch  # imported on use: the package loads without it

    if urlparse(url).scheme == "file":
        return _copy_local
    return pooch.HTTPDownloader(progressbar=progress) if url.startswith("http") else None


def _copy_local(url: str, output_file, pooch_obj) -> None:
    """A pooch downloader for ``file://`` URLs: copy the file (pooch checks and moves it in place)."""
    source = Path(url2pathname(unquote(urlparse(url).path)))
    if not source.is_file():
        raise FileNotFoundError(f"Local file '{source}' (from {url}) does not exist.")
    if hasattr(output_file, "write"):
        with source.open("rb") as handle:
            shutil.copyfileobj(handle, output_file)
    else:
        shutil.copyfile(source, output_file)


def _read_recorded(root: Path) -> dict:
    path = root / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' is not valid JSON ({err}); delete it to record the checksums again.") from None
    return data if isinstance(data, dict) else {}


def _write_recorded(root: Path, recorded: dict) -> None:
    with atomic_file(root / CHECKSUMS_FILE) as tmp:
        tmp.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def _stem(file_name: str) -> str:
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar"):
        if file_name.lower().endswith(suffix):
            return file_name[: -len(suffix)]
    return file_name


def _unpack(archive: Path, entry: ManifestFile, dest: Path) -> None:
    """Unpack into ``dest`` through a temporary sibling, so a crash never leaves half a folder."""
    if dest.is_dir():
        return
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _extract(archive, entry.unpack, tmp)
        if entry.unpack_nested:
            _extract_nested(tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _extract(archive: Path, kind: str, dest: Path) -> None:
    import pooch

    if kind == "zip":
        if not zipfile.is_zipfile(archive):
            raise ValueError(f"'{archive}' is not a zip archive; the manifest says unpack: zip.")
        processor = pooch.Unzip(extract_dir=str(dest))
    else:
        _check_tar_members(archive)
        processor = pooch.Untar(extract_dir=str(dest))
    processor(str(archive), "download", None)


def _check_tar_members(archive: Path) -> None:
    """Refuse tar members that would land outside the folder (pooch filters only on Python >= 3.12)."""
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"'{archive}' is not a tar archive; the manifest says unpack: tar.")
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = member.linkname if (member.issym() or member.islnk()) else ""
            for path in (member.name, os.path.join(os.path.dirname(member.name), target) if target else ""):
                norm = os.path.normpath(path) if path else ""
                if norm and (os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep)):
                    raise ValueError(f"'{archive}' has a member '{member.name}' that points outside the archive.")


def _extract_nested(folder: Path) -> None:
    """Unpack zip archives found inside an unpacked record into their own folder, then drop them."""
    for _ in range(_MAX_NESTING):
        inner = [p for p in folder.rglob("*.zip") if "__MACOSX" not in p.parts and not p.name.startswith("._")]
        if not inner:
            return
        for path in inner:
            _extract(path, "zip", path.parent)
            path.unlink()  # our own extracted copy; the download itself is kept
    raise ValueError(f"'{folder}' still holds zip archives after {_MAX_NESTING} rounds of unpacking.")
