"""Sections of different MALDI matrices (or ion modes) are not trained on together unless asked."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spatial_mg.pipeline import align_section, read_peak_list, read_section, run_train, stack_sections


def _acquired(section, matrix=None, polarity=None):
    """The section with its pairs' MSI recorded as acquired with ``matrix`` / ``polarity``."""
    pairs = section.pairs.copy()
    uns = dict(pairs["msi"].uns["spatial_mg"])
    uns.update({k: v for k, v in (("matrix", matrix), ("polarity", polarity)) if v is not None})
    pairs["msi"].uns["spatial_mg"] = uns
    return dataclasses.replace(section, pairs=pairs)


def test_the_matrix_of_the_files_reaches_the_msi_and_its_pairs(written):
    root, data, files = written
    known = dataclasses.replace(files[0], msi_matrix="DHB", msi_polarity="positive")
    section = read_section(known, mz_bins=read_peak_list(root / "peaks.csv"))
    assert section.msi.uns["spatial_mg"]["matrix"] == "DHB" and section.msi.uns["spatial_mg"]["polarity"] == "positive"
    # registered by three landmarks on the true pose (the pairing carries the record, whatever registered;
    # align_section with moscot on these files: the `aligned` fixture)
    xy = np.asarray(section.msi.obsm["spatial"], float)
    marks = xy[[xy[:, 0].argmin(), xy[:, 0].argmax(), xy[:, 1].argmax()]]
    truth = data.sections[0].affine
    aligned = align_section(section, method="landmarks", landmarks=(marks, marks @ truth[:2, :2].T + truth[:2, 2]))
    assert aligned.pairs.n_obs > 0.5 * section.rna.n_obs
    assert aligned.pairs["msi"].uns["spatial_mg"]["matrix"] == "DHB"
    assert stack_sections([aligned])["msi"].uns["spatial_mg"] == {"matrix": "DHB", "polarity": "positive"}
    unknown = read_section(files[0], mz_bins=read_peak_list(root / "peaks.csv"))
    assert "matrix" not in unknown.msi.uns["spatial_mg"]  # not known: not recorded, never guessed


def test_stacking_different_matrices_is_refused_naming_each_section(aligned):
    dhb, nine_aa = _acquired(aligned[0], "DHB", "positive"), _acquired(aligned[1], "9-AA", "negative")
    with pytest.raises(ValueError, match=r"different MALDI matrices: S1 \(DHB\), S2 \(9-AA\).*mix_matrices=True"):
        stack_sections([dhb, nine_aa])
    with pytest.raises(ValueError, match="different MALDI matrices"):  # pairs read from files: the same check
        stack_sections({"S1": dhb.pairs, "S2": nine_aa.pairs})
    mixed = stack_sections([dhb, nine_aa], mix_matrices=True)
    assert mixed.n_obs == dhb.pairs.n_obs + nine_aa.pairs.n_obs
    assert "matrix" not in mixed["msi"].uns.get("spatial_mg", {})  # no one matrix to record


def test_one_matrix_in_two_modes_is_refused_and_unknowns_stack_with_any(aligned):
    with pytest.raises(ValueError, match=r"different ion modes \(polarities\): S1 \(positive\), S2 \(negative\)"):
        stack_sections([_acquired(aligned[0], "DHB", "positive"), _acquired(aligned[1], "dhb", "negative")])
    same = stack_sections([_acquired(aligned[0], "DHB"), _acquired(aligned[1], "dhb")])  # spelling aside, one matrix
    assert same["msi"].uns["spatial_mg"]["matrix"] == "DHB"
    partly_known = stack_sections([_acquired(aligned[0], "DHB"), aligned[1]])
    assert partly_known.n_obs == sum(s.pairs.n_obs for s in aligned)


def test_run_train_refuses_pairs_files_of_two_matrices(aligned, tmp_path):
    paths = []
    for section, matrix in zip(aligned, ("DHB", "9-AA"), strict=True):
        (tmp_path / section.name).mkdir()
        _acquired(section, matrix).pairs.write(tmp_path / section.name / "pairs.h5mu")
        paths.append(tmp_path / section.name / "pairs.h5mu")
    with pytest.raises(ValueError, match=r"S1 \(DHB\), S2 \(9-AA\)"):
        run_train(pairs=paths, out=tmp_path / "model", max_epochs=1, accelerator="cpu", echo=lambda *a, **k: None)
