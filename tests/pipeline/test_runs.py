"""The file steps: sections keep their identity between align and train."""

from __future__ import annotations

import pytest

from spatial_mg.pipeline import run_train


def test_two_files_of_one_section_are_refused(aligned, tmp_path):
    for folder in ("a", "b"):  # same section, aligned twice into differently named folders
        (tmp_path / folder).mkdir()
        aligned[0].pairs.write(tmp_path / folder / "pairs.h5mu")
    with pytest.raises(ValueError, match="Two pairs files hold section 'S1'"):
        run_train(pairs=[tmp_path / "a" / "pairs.h5mu", tmp_path / "b" / "pairs.h5mu"], out=tmp_path / "model")
    assert not (tmp_path / "model" / "model").exists()


def test_sections_from_folders_of_one_name_stay_apart(aligned, tmp_path):
    # Visium folders are often all called outs/ or named by slide: the section names come
    # from the data, so two sections in folders of one name are not merged
    paths = []
    for i, section in enumerate(aligned):
        folder = tmp_path / f"run{i}" / "aligned"
        folder.mkdir(parents=True)
        section.pairs.write(folder / "pairs.h5mu")
        paths.append(folder / "pairs.h5mu")
    model = run_train(pairs=paths, out=tmp_path / "model", max_epochs=2, accelerator="cpu", echo=lambda *a, **k: None)
    assert model.mdata.n_obs == sum(s.pairs.n_obs for s in aligned)
    assert (tmp_path / "model" / "model" / "model.pt").is_file()
