"""Download, verify and unpack the real datasets listed in the manifests, with pooch.

Cache layout, under ``<cache>/<dataset name>/``::

    downloads/<file name>       the files as downloaded (kept, so a second fetch is a no-op)
    unpacked/<file stem>/       each archive's contents (appears whole or not at all)
    checksums.json              sha256 of files whose manifest gives none, recorded on first download
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import zipfile
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pandas as pd

from .._atomic import atomic_dir, atomic_file
from .._claim import PathInUseError
from ._manifests import DatasetManifest, ManifestFile, _human, all_manifests, get_manifest

log = logging.getLogger(__name__)

CHECKSUMS_FILE = "checksums.json"
PROGRESS_BYTES = 256 * 2**20  # archives that unpack to more than this report their progress
_LOADABLE_LAYOUTS = ("sma_processed", "magpie")
_MAX_NESTING = 3  # archives inside archives inside archives; deeper is a malformed record
_MAX_LINK_STEPS = 64  # symlinks followed to resolve one member's path


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
    root = data_home(cache_dir) / _plain_name(manifest.name, "dataset name", manifest.name)
    files = manifest.files_for(section)
    for entry in files:
        _plain_name(entry.name, "file name", manifest.name)
        _plain_name(_stem(entry.name), "file name (without its archive suffix)", manifest.name)
    if section is not None and not manifest.per_section_files:
        log.warning(f"{manifest.name}: the record is only downloadable whole; fetching it all, then looking up '{section}'.")
    recorded = _read_recorded(root)
    for entry in files:
        archive = _download(entry, root, recorded, progress)
        if entry.unpack != "none":
            _unpack(archive, entry, root / "unpacked" / _stem(entry.name))
    if section is not None and manifest.layout.get("kind") in _LOADABLE_LAYOUTS:
        from ._sma_layout import sma_sections

        sma_sections(root, section=section)  # raises, naming the sections found, when it is absent
    elif section is not None:
        log.warning(f"{manifest.name}: its layout is not read by spatial_mg; look for '{section}' under {root}.")
    return root


def _plain_name(name: str, what: str, dataset: str) -> str:
    """``name`` if it names one entry of a folder (it becomes a path in the cache), else a clear error."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(
            f"The manifest of '{dataset}' gives the {what} '{name}', which is not a plain name; "
            "fix the manifest (names may not hold '/', '\\' or be '.' or '..')."
        )
    return name


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
        log.info(f"sha256 of '{entry.name}' (not in the manifest; recorded in '{record}'): {digest}")
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
    log.info(f"unpacking '{archive.name}' ({_human(archive.stat().st_size)}) into '{dest}'")
    try:
        with atomic_dir(dest) as tmp:
            _extract(archive, entry.unpack, tmp)
            if entry.unpack_nested:
                _extract_nested(tmp)
    except PathInUseError as err:
        raise PathInUseError(f"{err} (Another fetch of this dataset is unpacking it.)") from None
    except FileExistsError:
        if not dest.is_dir():  # unpacked meanwhile by another fetch: nothing left to do
            raise


def _extract(archive: Path, kind: str, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing it whole if any member would land or point outside ``dest``."""
    if kind == "zip":
        _extract_zip(archive, dest)
    else:
        _extract_tar(archive, dest)


def _refusal(archive: Path, member: str, reason: str) -> ValueError:
    return ValueError(
        f"'{archive}' was refused and nothing of it was unpacked: its member '{member}' {reason}. "
        "Such an archive is unsafe; report it to the dataset's maintainers."
    )


def _extract_zip(archive: Path, dest: Path) -> None:
    if not zipfile.is_zipfile(archive):
        raise ValueError(f"'{archive}' is not a zip archive; the manifest says unpack: zip.")
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            # zipfile itself would quietly rename such members into the folder; a record holding them is malformed
            parts = re.split(r"[/\\]", name)
            if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
                raise _refusal(archive, name, "points outside the archive (an absolute path)")
            if ".." in parts:
                raise _refusal(archive, name, "points outside the archive (through '..')")
        zf.extractall(dest, members=_reporting(archive, zf.infolist(), [info.file_size for info in zf.infolist()]))


def _extract_tar(archive: Path, dest: Path) -> None:
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"'{archive}' is not a tar archive; the manifest says unpack: tar.")
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            _check_tar_members(archive, members)
            # and the standard library's own check as it writes (real paths, modes, device files)
            tar.extractall(dest, members=_reporting(archive, members, [m.size for m in members]), filter="data")
    except tarfile.FilterError as err:
        raise _refusal(archive, err.tarinfo.name, f"was refused by tarfile's safety filter ({err})") from None
    except tarfile.TarError as err:
        raise ValueError(f"'{archive}' is damaged ({err}); delete it and fetch again.") from None


def _reporting(archive: Path, members: list, sizes: list[int]):
    """``members`` one by one, logging each further tenth of ``sizes`` unpacked where they
    add up to more than :data:`PROGRESS_BYTES` (a large archive takes minutes)."""
    total = sum(sizes)
    if total <= PROGRESS_BYTES:
        yield from members
        return
    done, shown = 0, 0
    for member, size in zip(members, sizes):
        yield member
        done += size
        if done * 10 // total > shown:
            shown = done * 10 // total
            log.info(f"unpacking '{archive.name}': {shown * 10}% ({_human(done)} of {_human(total)})")


class _Escape(Exception):
    """A path that leaves the extraction folder; its text says how."""


def _check_tar_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    """Refuse an archive any of whose members would be written, or point, outside the folder.

    Paths are resolved the way the file system will resolve them once the earlier members
    are on disk: through the archive's own symlinks, so a chain of links that each look
    harmless (``d1/d2 -> ..``, ``s1 -> d1/d2``, ``s2 -> s1/..``) is caught. Symlinks
    resolve from their own folder, hard links from the archive's root.
    """
    links: dict[tuple[str, ...], str] = {}  # symlinks so far: their resolved place -> their text
    for member in members:
        try:
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise _Escape("is a device or pipe, which no dataset needs")
            place = _resolve(member.name, links, follow_last=False)
            if place in links:
                raise _Escape(f"would be written through the link '{'/'.join(place)}' that an earlier member made")
            if member.issym():
                _resolve(member.linkname, links, base=place[:-1])
                links[place] = member.linkname
            elif member.islnk():
                _resolve(member.linkname, links)
        except _Escape as how:
            raise _refusal(archive, member.name, str(how)) from None


def _resolve(text: str, links: dict, base: tuple[str, ...] = (), follow_last: bool = True, budget: list | None = None) -> tuple[str, ...]:
    """Where ``text``, read from folder ``base``, lands inside the archive's root; raise _Escape if it leaves it."""
    budget = [_MAX_LINK_STEPS] if budget is None else budget
    if text.startswith("/") or re.match(r"[A-Za-z]:", text):
        raise _Escape(f"points outside the archive (the absolute path '{text}')")
    parts = list(base)
    pieces = [p for p in text.split("/") if p not in ("", ".")]
    for i, piece in enumerate(pieces):
        if piece == "..":
            if not parts:
                raise _Escape(f"points outside the archive ('{text}' climbs above its root)")
            parts.pop()
            continue
        parts.append(piece)
        key = tuple(parts)
        if key in links and (follow_last or i < len(pieces) - 1):
            budget[0] -= 1
            if budget[0] < 0:  # a loop, or a crafted maze of links
                raise _Escape("points through too many links (a loop?)")
            parts = list(_resolve(links[key], links, base=key[:-1], budget=budget))
    return tuple(parts)


def _extract_nested(folder: Path) -> None:
    """Unpack zip archives found inside an unpacked record into their own folder, then drop them."""
    for _ in range(_MAX_NESTING):
        inner = [p for p in folder.rglob("*.zip") if "__MACOSX" not in p.parts and not p.name.startswith("._")]
        if not inner:
            return
        for path in inner:
            _extract_zip(path, path.parent)
            path.unlink()  # our own extracted copy; the download itself is kept
    raise ValueError(f"'{folder}' still holds zip archives after {_MAX_NESTING} rounds of unpacking.")
