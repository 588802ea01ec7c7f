"""The packaged dataset manifests: every one parses, names its licence and citation, and is listed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from spatial_mg.cli import main
from spatial_mg.datasets import ManifestError, get_manifest, list_datasets, load_manifest, manifest_names

CHECKOUT_MANIFESTS = Path(__file__).resolve().parents[2] / "data_manifests"
SMA_PAPER_DOI = "10.1038/s41587-023-01937-y"


def test_every_manifest_in_the_checkout_is_packaged():
    on_disk = sorted(p.stem for p in CHECKOUT_MANIFESTS.glob("*.yaml"))
    assert on_disk == manifest_names()
    assert {"sma_mendeley", "sma_raw_imzml", "sma_raw_str", "magpie_sma"} <= set(on_disk)


@pytest.mark.parametrize("name", manifest_names())
def test_manifest_parses_with_licence_citation_and_urls(name):
    manifest = get_manifest(name)
    assert manifest.name == name
    assert manifest.licence.strip() and manifest.citation.strip()
    assert SMA_PAPER_DOI in manifest.citation  # every dataset here derives from Vicari et al. 2024
    assert urlparse(manifest.landing_page).scheme == "https"
    assert manifest.files and all(urlparse(f.url).scheme == "https" for f in manifest.files)
    for f in manifest.files:
        # A checksum is either real (64 hex digits) or explicitly unknown; never a placeholder.
        assert f.sha256 is None or (len(f.sha256) == 64 and int(f.sha256, 16) >= 0)
        assert f.unpack in ("zip", "tar", "none")
    assert manifest.layout["kind"]


def test_mendeley_manifest_records_the_layout_the_loader_reads():
    manifest = get_manifest("sma_mendeley")
    assert manifest.licence == "CC BY 4.0"
    assert "V11L12-038_D1" in manifest.section_ids
    assert manifest.layout["kind"] == "sma_processed"
    assert manifest.layout["visium"].endswith("output_data/{section}_RNA/outs")


def test_every_listed_section_names_its_matrix_and_a_known_polarity():
    for manifest in (get_manifest(name) for name in manifest_names()):
        for section in manifest.sections or ():
            assert section.get("matrix"), section["id"]
            assert section.get("polarity") in (None, "positive", "negative"), section["id"]


def test_list_datasets_has_one_row_per_manifest():
    table = list_datasets()
    assert list(table.columns) == ["name", "title", "licence", "size"]
    assert sorted(table["name"]) == manifest_names()
    assert table.set_index("name").loc["sma_mendeley", "size"] == "~5.9 GB"  # approximate: no exact size known


def test_cli_fetch_list_prints_every_dataset(capsys):
    assert main(["fetch", "--list"]) == 0
    out = capsys.readouterr().out
    for name in manifest_names():
        assert name in out
    assert "CC BY 4.0" in out


def test_cli_fetch_without_a_name_fails_on_stderr(capsys):
    assert main(["fetch"]) == 2
    assert "needs a dataset NAME" in capsys.readouterr().err


def test_cli_fetch_unknown_name_lists_the_known_ones(capsys):
    assert main(["fetch", "no_such_dataset"]) == 2
    err = capsys.readouterr().err
    assert "no_such_dataset" in err and "sma_mendeley" in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


_GOOD = """\
name: {name}
title: T
description: D
licence: CC BY 4.0
citation: C
landing_page: https://example.org/record
files:
  - name: a.zip
    url: https://example.org/a.zip
    size_bytes: null
    sha256: null
    unpack: zip
layout:
  kind: sma_processed
"""


def test_a_valid_minimal_manifest_parses(tmp_path):
    manifest = load_manifest(_write(tmp_path / "mini.yaml", _GOOD.format(name="mini")))
    assert manifest.files[0].sha256 is None and manifest.size_text() == "unknown"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.replace("licence: CC BY 4.0\n", ""), "missing key 'licence'"),
        (lambda s: s.replace("citation: C\n", ""), "missing key 'citation'"),
        (lambda s: s.replace("    sha256: null\n", ""), "files[0]: missing key 'sha256'"),
        (lambda s: s.replace("sha256: null", "sha256: abc"), "'sha256' must be 64 hexadecimal digits"),
        (lambda s: s.replace("unpack: zip", "unpack: rar"), "'unpack' must be one of"),
        (lambda s: s.replace("https://example.org/a.zip", "a.zip"), "is not an http(s), ftp or file URL"),
        (lambda s: s.replace("name: mini", "name: other"), "'name' is 'other' but the file is called 'mini.yaml'"),
        (lambda s: s.replace("layout:\n  kind: sma_processed\n", ""), "'layout' must be a mapping"),
        (lambda s: s + "sections:\n  - id: S1\n    matrix: DHB\n    polarity: pos\n", "'polarity' 'pos'; it must be one of"),
        (lambda s: s + "sections:\n  - id: S1\n    matrix: 7\n", "section 'S1' has 'matrix' 7"),
    ],
)
def test_a_broken_manifest_names_the_file_and_the_key(tmp_path, edit, expected):
    path = _write(tmp_path / "mini.yaml", edit(_GOOD.format(name="mini")))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_per_section_files_select_one_section(tmp_path):
    text = _GOOD.format(name="mini").replace(
        "    unpack: zip\n",
        "    unpack: zip\n    section: S1\n"
        "  - name: b.zip\n    url: https://example.org/b.zip\n    size_bytes: 10\n    sha256: null\n"
        "    unpack: zip\n    section: S2\n"
        "  - name: shared.csv\n    url: https://example.org/shared.csv\n    size_bytes: 5\n    sha256: null\n"
        "    unpack: none\n",
    )
    manifest = load_manifest(_write(tmp_path / "mini.yaml", text))
    assert [f.name for f in manifest.files_for("S2")] == ["b.zip", "shared.csv"]
    assert len(manifest.files_for(None)) == 3
    with pytest.raises(ManifestError, match="no section 'S9'; its sections are S1, S2"):
        manifest.files_for("S9")
