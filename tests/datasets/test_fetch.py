"""fetch() and sma_sections() on archives laid out like the real SMA records, served from local disk.

The archives are built from the real fixtures in tests/data: a spaceranger subset
(visium_squidpy_test) and the MSI pixel grid of SMA section V11L12-038_D1. No test touches
the network: the manifests point at file:// URLs, which fetch copies through pooch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spatial_mg.datasets._manifests as manifests_module
from spatial_mg.cli import main
from spatial_mg.datasets import data_home, fetch, load_manifest, sma_sections
from spatial_mg.io import read_sma_csv, read_visium

DATA = Path(__file__).resolve().parents[1] / "data"
VISIUM = DATA / "visium_squidpy_test"
MSI_GRID = DATA / "sma_V11L12-038_D1_geometry" / "msi" / "MSI_metadata.csv"
SECTION = "V11L12-038_D1"
TOP = "Spatial Multimodal Analysis of Transcriptomes and Metabolomes in Tissues"
MZ = (108.901945, 109.02966, 146.0459)


def _intensities(n: int) -> np.ndarray:
    return np.random.default_rng(0).gamma(2.0, 1e4, size=(n, len(MZ))).round(3)


def _mendeley_tree(base: Path) -> Path:
    """The processed Mendeley layout of one section: spaceranger outs and a *_smamsi.csv export."""
    output = base / "sma" / "V11L12-038" / SECTION / "output_data"
    shutil.copytree(VISIUM, output / f"{SECTION}_RNA" / "outs")
    grid = pd.read_csv(MSI_GRID)
    # The real exports start at grid position 0; MAGPIE's copy of the grid was shifted and flipped.
    csv = pd.DataFrame({"x": grid["x"] - grid["x"].min(), "y": grid["y"] - grid["y"].min()})
    csv[[str(mz) for mz in MZ]] = _intensities(len(grid))
    (output / f"{SECTION}_MSI").mkdir()
    csv.to_csv(output / f"{SECTION}_MSI" / "V11L12-038_Mouse_D1.Visium.9aa.220826_smamsi.csv", index=False)
    return base / "sma"


def _magpie_tree(base: Path, with_intensities: bool = True) -> Path:
    """MAGPIE's input layout of one section: visium/ and msi/MSI_metadata.csv + MSI_intensities.csv."""
    section = base / "input" / SECTION
    shutil.copytree(VISIUM, section / "visium")
    (section / "msi").mkdir()
    shutil.copy(MSI_GRID, section / "msi" / "MSI_metadata.csv")
    grid = pd.read_csv(MSI_GRID)
    values = pd.DataFrame(_intensities(len(grid)), columns=[f"mz-{mz}" for mz in MZ])
    values.insert(0, "spot_id", grid["spot_id"].to_numpy()[::-1])  # another row order than the metadata
    if with_intensities:
        values.to_csv(section / "msi" / "MSI_intensities.csv", index=False)
    return base / "input"


def _mendeley_zip(tmp_path: Path) -> Path:
    """Like the real record: one top folder holding sma.zip, which holds the sma/ tree."""
    tree = _mendeley_tree(tmp_path / "tree")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree.parent).as_posix())
    archive = tmp_path / "served" / "w7nw4km7xd-1.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{TOP}/sma.zip", inner.getvalue())
        zf.writestr(f"{TOP}/metadata.csv", "Sample.ID,Path.To.File\n")
    return archive


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path, name: str, archive: Path, sha256: str | None, unpack: str = "zip", **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "name": archive.name,
        "url": archive.resolve().as_uri(),
        "size_bytes": extra.pop("size_bytes", None),
        "sha256": sha256,
        "unpack": unpack,
        **extra,
    }
    text = {
        "name": name,
        "title": "test record",
        "description": "laid out like the real one",
        "licence": "CC BY 4.0",
        "citation": "Vicari et al. 2024, doi:10.1038/s41587-023-01937-y",
        "landing_page": "https://example.org/record",
        "files": [entry],
        "layout": {"kind": "magpie" if unpack == "tar" else "sma_processed"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(text))  # JSON is YAML
    return path


def test_fetch_verifies_unpacks_nested_archives_and_the_loader_finds_the_section(tmp_path):
    archive = _mendeley_zip(tmp_path)
    manifest = load_manifest(_manifest(tmp_path / "m", "sma_test", archive, _sha256(archive), unpack_nested=True))
    root = fetch(manifest, cache_dir=tmp_path / "cache", progress=False)

    assert root == tmp_path / "cache" / "sma_test"
    assert (root / "downloads" / archive.name).is_file()  # kept, so a second fetch is a no-op
    unpacked = root / "unpacked" / "w7nw4km7xd-1" / TOP
    assert (unpacked / "metadata.csv").is_file() and not (unpacked / "sma.zip").exists()  # inner zip unpacked, dropped

    (files,) = sma_sections(root)
    assert files.name == SECTION
    rna = read_visium(files.visium)
    assert rna.n_obs > 0 and np.isfinite(rna.obsm["spatial"]).all()
    msi = read_sma_csv(files.msi, pixel_size_um=100)
    assert msi.n_obs == len(pd.read_csv(MSI_GRID)) and np.allclose(np.sort(msi.var["mz"]), MZ)
    assert not (root / "checksums.json").exists()  # the manifest had the checksum; nothing to record


def test_a_wrong_checksum_fails_loudly_and_caches_nothing(tmp_path):
    archive = _mendeley_zip(tmp_path)
    manifest = load_manifest(_manifest(tmp_path / "m", "sma_test", archive, "0" * 64))
    with pytest.raises(ValueError, match="(?i)hash"):
        fetch(manifest, cache_dir=tmp_path / "cache", progress=False)
    root = tmp_path / "cache" / "sma_test"
    assert not (root / "downloads" / archive.name).exists() and not (root / "unpacked").exists()


def test_an_unknown_checksum_is_computed_logged_recorded_and_then_enforced(tmp_path, caplog):
    caplog.set_level("INFO", logger="spatial_mg")
    archive = _mendeley_zip(tmp_path)
    manifest = load_manifest(_manifest(tmp_path / "m", "sma_test", archive, None, unpack_nested=True))
    root = fetch(manifest, cache_dir=tmp_path / "cache", progress=False)
    digest = _sha256(archive)
    assert digest in caplog.text
    caplog.clear()
    record = json.loads((root / "checksums.json").read_text())
    assert record[archive.name]["sha256"] == digest and record[archive.name]["size_bytes"] == archive.stat().st_size

    fetch(manifest, cache_dir=tmp_path / "cache", progress=False)  # cached and matching: nothing new to say
    assert digest not in caplog.text

    # The repository now serves other bytes under the same name: the recorded checksum catches it.
    (root / "downloads" / archive.name).unlink()
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("extra.txt", "changed upstream")
    with pytest.raises(ValueError, match="checksums.json"):
        fetch(manifest, cache_dir=tmp_path / "cache", progress=False)


def test_a_wrong_size_removes_the_download(tmp_path):
    archive = _mendeley_zip(tmp_path)
    size = archive.stat().st_size + 1
    manifest = load_manifest(_manifest(tmp_path / "m", "sma_test", archive, None, size_bytes=size))
    with pytest.raises(ValueError, match=f"manifest expects {size}"):
        fetch(manifest, cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "sma_test" / "downloads" / archive.name).exists()


def test_a_section_that_the_record_lacks_is_named_with_those_it_has(tmp_path, caplog):
    archive = _mendeley_zip(tmp_path)
    manifest = load_manifest(_manifest(tmp_path / "m", "sma_test", archive, None, unpack_nested=True))
    with pytest.raises(ValueError, match=f"No section 'V11L12-038_A1'.*sections found: {SECTION}"):
        fetch(manifest, section="V11L12-038_A1", cache_dir=tmp_path / "cache", progress=False)
    assert "only downloadable whole" in caplog.text
    assert fetch(manifest, section=SECTION, cache_dir=tmp_path / "cache", progress=False).is_dir()


def test_tar_archive_with_the_magpie_layout(tmp_path):
    tree = _magpie_tree(tmp_path / "tree")
    archive = tmp_path / "served" / "magpie.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="input")
    manifest = load_manifest(_manifest(tmp_path / "m", "magpie_test", archive, _sha256(archive), unpack="tar"))
    root = fetch(manifest, section=SECTION, cache_dir=tmp_path / "cache", progress=False)

    (files,) = sma_sections(root, section=SECTION)
    assert files.visium == root / "unpacked" / "magpie" / "input" / SECTION / "visium"
    assert files.msi.parent == root / ".spatial_mg"  # the joined table is ours; MAGPIE's files are untouched
    msi = read_sma_csv(files.msi, pixel_size_um=100)
    grid = pd.read_csv(MSI_GRID)
    assert list(msi.obs_names) == list(grid["spot_id"])
    # The join follows spot_id, not row order: pixel_14's intensities are the last row written.
    written = pd.read_csv(root / "unpacked" / "magpie" / "input" / SECTION / "msi" / "MSI_intensities.csv")
    expected = written.set_index("spot_id").loc["pixel_14"].to_numpy()
    assert np.allclose(msi[msi.obs_names == "pixel_14"].X.ravel(), expected)
    assert read_visium(files.visium).n_obs > 0


# --- crafted archives: each refused with one line, and nothing around the cache changes ---------
def _tar(path: Path, members: list[tuple]) -> Path:
    """A tar of ``(name, "file", bytes)``, ``(name, "dir")``, ``(name, "sym", target)``, ``(name, "hard", target)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, kind, *rest in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(rest[0])
                tar.addfile(info, io.BytesIO(rest[0]))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.mode = 0o755
            info.linkname = rest[0] if rest else ""
            tar.addfile(info)
    return path


def _tree(folder: Path) -> dict:
    """Every path under ``folder`` with its bytes (files) or link text (links)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        out[key] = ("link", os.readlink(path)) if path.is_symlink() else path.read_bytes() if path.is_file() else "dir"
    return out


def _assert_refused_and_nothing_written(tmp_path: Path, archive: Path, unpack: str, match: str) -> str:
    """Fetch ``archive`` into a cache holding a victim file beside it and a checksums record in it."""
    root = tmp_path / "cache" / "evil_test"
    root.mkdir(parents=True)
    (root / "checksums.json").write_text('{"keep": {"sha256": "record"}}\n')
    (tmp_path / "victim.txt").write_text("do not touch")
    manifest = load_manifest(_manifest(tmp_path / "m", "evil_test", archive, _sha256(archive), unpack=unpack))
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=match) as err:
        fetch(manifest, cache_dir=tmp_path / "cache", progress=False)
    after = _tree(tmp_path)
    download = f"cache/evil_test/downloads/{archive.name}"
    assert after.pop(download) == archive.read_bytes()  # the download is kept, unchanged
    assert after.pop("cache/evil_test/downloads") == "dir"
    assert after.pop("cache/evil_test/unpacked", "dir") == "dir" and not any((root / "unpacked").glob("*"))
    assert after == before  # nothing else anywhere under tmp_path: no file written, changed or left behind
    message = str(err.value)
    assert "\n" not in message and archive.name in message and "nothing of it was unpacked" in message
    return message


def test_tar_members_escaping_the_folder_are_refused(tmp_path):
    archive = _tar(tmp_path / "served" / "evil.tar", [("../outside.txt", "file", b"hi")])
    _assert_refused_and_nothing_written(tmp_path, archive, "tar", "'../outside.txt' points outside the archive")


def test_a_chain_of_symlinks_that_each_look_harmless_is_refused(tmp_path):
    # From the folder it unpacks into (<cache>/evil_test/unpacked/<tmp>): d1/d2 and s1 are that
    # folder, s2 is unpacked/, s3 the dataset folder, s4 the cache, s5 the folder around it.
    chain = [("d1", "dir"), ("d1/d2", "sym", ".."), ("s1", "sym", "d1/d2"), ("s2", "sym", "s1/.."),
             ("s3", "sym", "s2/.."), ("s4", "sym", "s3/.."), ("s5", "sym", "s4/..")]
    archive = _tar(tmp_path / "served" / "chain.tar",
                   [*chain, ("s3/checksums.json", "file", b"{}"), ("s5/victim.txt", "file", b"overwritten")])
    message = _assert_refused_and_nothing_written(tmp_path, archive, "tar", "member 's2' points outside the archive")
    assert "'s1/..' climbs above its root" in message


def test_a_hard_link_is_resolved_from_the_archive_root(tmp_path):
    # A hard link's target is relative to the archive's root, so "../../../../victim.txt" is
    # tmp_path/victim.txt (from <cache>/evil_test/unpacked/<tmp>); read from the member's own
    # folder (a/b/c/d/e) it looks inside. The file member after it would write into the victim.
    archive = _tar(tmp_path / "served" / "hard.tar", [
        ("a/b/c/d/e", "dir"), ("a/b/c/d/e/h", "hard", "../../../../victim.txt"),
        ("a/b/c/d/e/h", "file", b"overwritten"),
    ])
    _assert_refused_and_nothing_written(tmp_path, archive, "tar", "'a/b/c/d/e/h' points outside the archive")


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("/abs/outside.txt", "file", b"x")], "absolute path '/abs/outside.txt'"),
        ([("ok", "dir"), ("ok/../../checksums.json", "file", b"{}")], "climbs above its root"),
        ([("up", "sym", "../.."), ("up/checksums.json", "file", b"{}")], "member 'up' points outside"),
        ([("abs", "sym", "/etc"), ("abs/passwd", "file", b"x")], "absolute path '/etc'"),
        ([("a", "sym", "b"), ("b", "sym", "a"), ("a/x", "file", b"x")], "too many links"),
        ([("inside", "file", b"x"), ("link", "sym", "inside"), ("link", "file", b"y")], "through the link 'link'"),
    ],
    ids=["absolute-name", "dotdot-name", "symlink-up", "symlink-absolute", "symlink-loop", "write-through-link"],
)
def test_other_escaping_tar_members_are_refused(tmp_path, members, match):
    archive = _tar(tmp_path / "served" / "evil.tar", members)
    _assert_refused_and_nothing_written(tmp_path, archive, "tar", match)


@pytest.mark.parametrize("name", ["../victim.txt", "a/../../victim.txt", "/abs.txt", "..\\victim.txt"])
def test_a_zip_whose_members_climb_out_is_refused(tmp_path, name):
    archive = tmp_path / "served" / "evil.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(name, "overwritten")
    _assert_refused_and_nothing_written(tmp_path, archive, "zip", "points outside the archive")


def test_links_inside_the_archive_and_a_member_named_like_the_record_are_fine(tmp_path):
    archive = _tar(tmp_path / "served" / "good.tar", [
        ("data/x.csv", "file", b"1"), ("data/sub", "dir"), ("data/sub/up", "sym", "../x.csv"),
        ("latest", "sym", "data"), ("latest/y.csv", "file", b"2"), ("hard", "hard", "data/x.csv"),
        ("checksums.json", "file", b"{}"),
    ])
    root = tmp_path / "cache" / "good_test"
    root.mkdir(parents=True)
    (root / "checksums.json").write_text('{"keep": {"sha256": "record"}}\n')
    manifest = load_manifest(_manifest(tmp_path / "m", "good_test", archive, _sha256(archive), unpack="tar"))
    fetch(manifest, cache_dir=tmp_path / "cache", progress=False)
    unpacked = root / "unpacked" / "good"
    assert (unpacked / "data" / "sub" / "up").read_bytes() == b"1" and (unpacked / "hard").read_bytes() == b"1"
    assert (unpacked / "data" / "y.csv").read_bytes() == b"2"  # written through a link that stays inside
    assert (unpacked / "checksums.json").read_bytes() == b"{}"
    assert (root / "checksums.json").read_text() == '{"keep": {"sha256": "record"}}\n'  # the record is untouched


@pytest.mark.parametrize("field", ["name", "file"])
def test_a_manifest_name_that_is_a_path_is_refused(tmp_path, field):
    archive = _tar(tmp_path / "served" / "good.tar", [("x", "file", b"1")])
    path = _manifest(tmp_path / "m", "good_test", archive, _sha256(archive), unpack="tar")
    text = json.loads(path.read_text())
    if field == "name":
        text["name"] = "../escaped"
    else:
        text["files"][0]["name"] = "../escaped.tar"
    path.write_text(json.dumps(text))
    try:
        manifest = load_manifest(path)
    except ValueError:
        return  # the manifest reader refuses it already
    with pytest.raises(ValueError, match="not a plain name"):
        fetch(manifest, cache_dir=tmp_path / "cache", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "served"]


def test_cache_folder_defaults_to_spatial_mg_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SPATIAL_MG_DATA", str(tmp_path / "env"))
    assert data_home() == tmp_path / "env"
    assert data_home(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("SPATIAL_MG_DATA")
    assert data_home() == Path.home() / ".cache" / "spatial_mg"


def test_cli_fetch_prints_the_section_files_licence_and_citation(tmp_path, monkeypatch, capsys):
    archive = _mendeley_zip(tmp_path)
    _manifest(tmp_path / "m", "sma_test", archive, _sha256(archive), unpack_nested=True)
    monkeypatch.setattr(manifests_module, "_manifest_dir", lambda: tmp_path / "m")
    code = main(["fetch", "sma_test", "--section", SECTION, "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert "licence: CC BY 4.0" in out and "doi:10.1038/s41587-023-01937-y" in out
    assert f"{SECTION}: visium " in out and "_smamsi.csv" in out


def test_loader_explains_a_folder_that_is_not_sma_data(tmp_path):
    (tmp_path / "random" / "stuff").mkdir(parents=True)
    with pytest.raises(ValueError, match="not laid out as SMA data.*output_data.*MSI_intensities.csv"):
        sma_sections(tmp_path / "random")
    with pytest.raises(FileNotFoundError, match="SMA dataset folder"):
        sma_sections(tmp_path / "missing")


def test_loader_names_the_missing_file_of_a_broken_section(tmp_path):
    root = _magpie_tree(tmp_path / "data", with_intensities=False)
    with pytest.raises(ValueError, match="has no MSI_intensities.csv"):
        sma_sections(root, section=SECTION)
    (root / SECTION / "visium" / "filtered_feature_bc_matrix.h5").unlink()
    with pytest.raises(ValueError, match="has no filtered_feature_bc_matrix.h5"):
        sma_sections(root)


def test_loader_keeps_rna_only_sections_of_the_mendeley_layout(tmp_path):
    root = _mendeley_tree(tmp_path / "data")
    shutil.rmtree(root / "V11L12-038" / SECTION / "output_data" / f"{SECTION}_MSI")
    (files,) = sma_sections(root)
    assert files.msi is None and read_visium(files.visium).n_obs > 0


def test_cli_reports_a_failed_download_in_one_line(tmp_path, monkeypatch, capsys):
    import pooch
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("no route to host")

    monkeypatch.setattr(pooch, "retrieve", offline)
    assert main(["fetch", "sma_raw_str", "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "fetching 'sma_raw_str' failed: no route to host" in err and "Check the connection" in err
    assert "Traceback" not in err


# --- each section's MALDI matrix and ion mode, and MAGPIE's landmarks -----------------------
def test_sections_carry_the_matrix_and_polarity_their_manifest_records(tmp_path):
    from spatial_mg.datasets import get_manifest

    recorded = {s["id"]: s for s in get_manifest("sma_mendeley").sections}
    assert (recorded[SECTION]["matrix"], recorded[SECTION]["polarity"]) == ("9-AA", "negative")
    assert {recorded[s]["matrix"] for s in ("V11L12-038_A1", "V11L12-038_B1")} == {"DHB"}
    mendeley = _mendeley_tree(tmp_path / "mendeley")
    magpie = _magpie_tree(tmp_path / "magpie")
    shutil.copy(DATA / "sma_V11L12-038_D1_geometry" / "landmarks_noHE.csv", magpie / SECTION / "landmarks_noHE.csv")
    for root in (mendeley, magpie):  # the same section id in either layout
        (files,) = sma_sections(root)
        assert (files.msi_matrix, files.msi_polarity) == ("9-AA", "negative")
        assert files.msi_acquisition() == {"matrix": "9-AA", "polarity": "negative"}
    assert sma_sections(mendeley)[0].landmarks is None
    assert sma_sections(magpie, section=SECTION)[0].landmarks == magpie / SECTION / "landmarks_noHE.csv"


def test_a_section_no_manifest_lists_has_its_matrix_unknown(tmp_path):
    root = _mendeley_tree(tmp_path / "data")
    renamed = root / "V11L12-038" / "V99X99-999_A1"
    (root / "V11L12-038" / SECTION).rename(renamed)
    output = renamed / "output_data"
    for part in ("RNA", "MSI"):
        (output / f"{SECTION}_{part}").rename(output / f"V99X99-999_A1_{part}")
    (files,) = sma_sections(root)
    assert files.name == "V99X99-999_A1"
    # its MSI export is still named '...9aa...': a file name is not a source, so nothing is guessed
    assert files.msi_matrix is None and files.msi_polarity is None and files.msi_acquisition() == {}


def test_section_files_refuse_an_unknown_polarity():
    from spatial_mg.io import SectionFiles

    with pytest.raises(ValueError, match="msi_polarity must be one of"):
        SectionFiles("S1", VISIUM, msi_matrix="DHB", msi_polarity="+")
