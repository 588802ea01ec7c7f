"""read_section: a section's files into AnnData, named, whichever way the files are given."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_mg.pipeline import read_peak_list, read_section


def test_files_or_paths_give_the_same_section_named_after_its_folder(written):
    root, data, files = written
    peaks = read_peak_list(root / "peaks.csv")
    by_files = read_section(files[0], mz_bins=peaks)
    by_paths = read_section(root / "S1" / "outs", root / "S1" / "msi" / "S1.imzML", mz_bins=peaks)
    assert by_files.name == by_paths.name == "S1"  # the folder that holds outs/
    assert by_files.rna.obs_names.equals(by_paths.rna.obs_names)
    np.testing.assert_array_equal(by_files.msi.X, by_paths.msi.X)
    assert set(by_files.rna.obs["section"]) == set(by_files.msi.obs["section"]) == {"S1"}
    assert by_files.rna.n_obs == data["S1"].rna.n_obs and by_files.msi.n_vars == len(peaks)


def test_name_and_rna_only(written):
    root, _, _ = written
    section = read_section(root / "S2" / "outs", name="slide7")
    assert section.name == "slide7" and section.msi is None
    assert set(section.rna.obs["section"]) == {"slide7"}


def test_section_files_exclude_a_second_msi_or_name(written):
    _, _, files = written
    with pytest.raises(ValueError, match="SectionFiles"):
        read_section(files[0], files[1].msi)


def test_an_unknown_msi_format_is_a_clear_error(written, tmp_path):
    root, _, _ = written
    wrong = tmp_path / "spectra.mzML"
    wrong.write_text("not msi")
    with pytest.raises(ValueError, match=r"imzML.*csv"):
        read_section(root / "S1" / "outs", wrong)


def test_peak_lists_with_and_without_a_header(tmp_path):
    (tmp_path / "with.csv").write_text("mz,name\n100.5,a\n200.25,b\n")
    (tmp_path / "bare.txt").write_text("100.5\n200.25\n300\n")
    np.testing.assert_allclose(read_peak_list(tmp_path / "with.csv"), [100.5, 200.25])
    np.testing.assert_allclose(read_peak_list(tmp_path / "bare.txt"), [100.5, 200.25, 300.0])
    (tmp_path / "empty.csv").write_text("mz\nx\n")
    with pytest.raises(ValueError, match="no m/z values"):
        read_peak_list(tmp_path / "empty.csv")
