"""The content's share of the pose (``_content``): towards the truth where the content follows the RNA, not otherwise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spatial_mg.align import Pose
from spatial_mg.align._content import Content, content_move, read_content
from spatial_mg.align._section import prepare_section


@pytest.fixture(scope="module")
def rich_section():
    """A small section whose content is rich (300 genes, 30 metabolites), its prepared form and its content."""
    from spatial_mg.sim import synthetic_vicari

    s = synthetic_vicari(n_sections=1, n_spots=400, n_genes=300, n_metabolites=30, seed=5).sections[0]
    section = prepare_section(s.rna, s.msi, msi_pixel_size_um=None, msi_mask=None, tic_threshold=None, tissue_image=None)
    content, why = read_content(s.rna, s.msi, section)
    assert content is not None, why
    return s, section, content


def _off_by(truth: Pose, dx: float, dy: float) -> Pose:
    matrix = truth.matrix
    matrix[:2, 2] += (dx, dy)
    return Pose(matrix)


@pytest.mark.parametrize("shift", [(25.0, 0.0), (0.0, -25.0)])
def test_content_moves_a_pose_that_is_off_towards_the_truth(rich_section, shift):
    s, section, content = rich_section
    truth = Pose(s.affine)
    start = _off_by(truth, *shift)
    moved = content_move(start, section, content)
    before, after = start.displacement(truth, section.msi_um), moved.pose.displacement(truth, section.msi_um)
    assert 0.1 < moved.details["content_share"] < 0.9
    assert after < before - 3.0, (before, after, moved.details)


def test_content_that_does_not_follow_the_rna_barely_moves_the_pose(rich_section):
    s, section, content = rich_section
    truth = Pose(s.affine)
    shuffled = Content(content.msi_index, np.random.default_rng(0).permutation(content.msi), content.rna)
    moved = content_move(_off_by(truth, 25.0, 0.0), section, shuffled)
    rich = content_move(_off_by(truth, 25.0, 0.0), section, content)
    assert moved.details["content_share"] < rich.details["content_share"] / 2
    assert moved.details["content_sd_um"] > rich.details["content_sd_um"]


def test_content_reads_any_msi_scale_alike(rich_section):
    """Raw, log1p and standardised MSI values give components that span the same space."""
    s, section, content = rich_section
    logged = s.msi.copy()
    logged.X = np.log1p(np.asarray(logged.X, dtype=np.float64))
    logged.uns["log1p"] = {"base": None}
    z = s.msi.copy()
    x = np.log1p(np.asarray(z.X, dtype=np.float64))
    z.X = (x - x.mean(axis=0)) / x.std(axis=0)
    for other in (logged, z):
        got, why = read_content(s.rna, other, section)
        assert got is not None, why
        # the leading components agree up to sign and rotation: canonical correlations near 1
        q1, _ = np.linalg.qr(content.msi[:, :3] - content.msi[:, :3].mean(axis=0))
        q2, _ = np.linalg.qr(got.msi[:, :3] - got.msi[:, :3].mean(axis=0))
        assert np.linalg.svd(q1.T @ q2, compute_uv=False).min() > 0.8


def test_register_with_content_returns_the_moved_pose_and_says_so(rich_section):
    import spatial_mg as smg

    s, section, _ = rich_section
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = smg.align.register(s.rna, s.msi, device="cpu", content=False)
        with_content = smg.align.register(s.rna, s.msi, device="cpu")  # content=True is the default
        unused = smg.align.register(s.rna, s.msi, device="cpu", refine_fit=False)
    details = with_content.qc.details
    assert details["content"].startswith("used")
    assert "content_search" not in details  # the outline pins this section: no search over every turn
    assert "content" not in plain.qc.details
    moved = with_content.pose.displacement(plain.pose, section.msi_um)
    assert moved == pytest.approx(details["content_move_um"], rel=1e-6, abs=1e-6)
    assert moved > 0
    assert unused.qc.details["content"].startswith("not used: refine_fit=False")
    assert with_content.params["content"] is True and plain.params["content"] is False


def test_content_that_cannot_be_read_says_why(rich_section):
    s, section, _ = rich_section
    one_feature, why = read_content(s.rna, s.msi[:, :1], section)
    assert one_feature is None and "too few features" in why
    flat = s.msi.copy()
    flat.X = np.ones_like(np.asarray(flat.X, dtype=np.float32))
    constant, why = read_content(s.rna, flat, section)
    assert constant is None and "do not vary" in why


def test_rna_counts_read_alike_sparse_or_dense(rich_section):
    """Spots' counts as a sparse matrix (what read_visium gives) or dense give the same RNA components."""
    s, section, content = rich_section
    dense = s.rna.copy()
    dense.X = np.asarray(s.rna.X.toarray(), dtype=np.float32)
    got, why = read_content(dense, s.msi, section)
    assert got is not None, why
    np.testing.assert_allclose(np.abs(got.rna), np.abs(content.rna), rtol=1e-4, atol=1e-4)  # up to each component's sign
    assert not np.allclose(np.abs(got.rna[:, 0]), np.abs(got.rna[:, 1]))  # components, not one column repeated
