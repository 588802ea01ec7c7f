"""Figures from SpatialData stores, with the H&E underneath; spatialdata-plot renders the stores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pytest
import spatialdata as sd
from matplotlib.collections import EllipseCollection
from matplotlib.image import AxesImage
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from PIL import Image

from spatial_mg import pl
from spatial_mg.align import register, to_spatialdata
from spatial_mg.pipeline import predictions_spatialdata


@pytest.fixture(scope="module")
def section():
    from spatial_mg.sim import synthetic_vicari

    data = synthetic_vicari(n_sections=1, n_spots=150, n_genes=20, n_metabolites=4, msi_pitch_um=100.0, seed=5)
    s = data.sections[0]
    pts = np.array([[0, 0], [2000, 0], [0, 2000]], float)
    reg = register(s.rna, s.msi, method="landmarks", landmarks=(pts, (s.affine[:2, :2] @ pts.T).T + s.affine[:2, 2]))
    return s.rna, s.msi, reg


@pytest.fixture(scope="module")
def store(section, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "spatialdata.zarr"
    to_spatialdata(*section).write(path)
    return sd.read_zarr(path)


@pytest.fixture(scope="module")
def predictions(section, tmp_path_factory):
    rna, msi, _ = section
    rng = np.random.default_rng(0)
    pred = ad.AnnData(rng.random((rna.n_obs, msi.n_vars)).astype(np.float32), obs=rna.obs[[]].copy(), var=msi.var[[]].copy())
    pred.layers["std"] = np.full(pred.shape, 0.1, np.float32)
    pred.obsm["spatial"] = rna.obsm["spatial"].copy()
    path = tmp_path_factory.mktemp("pred") / "predicted.zarr"
    predictions_spatialdata(pred, section=rna).write(path)
    return pred, sd.read_zarr(path)


def _he_extent(rna) -> tuple:
    library = next(iter(rna.uns["spatial"]))
    entry = rna.uns["spatial"][library]
    res = "hires" if "hires" in entry["images"] else "lowres"
    h, w = entry["images"][res].shape[:2]
    s = entry["scalefactors"][f"tissue_{res}_scalef"]
    return 0.0, w / s, h / s, 0.0


def test_metabolite_maps_of_the_stores_msi_table(section, store):
    rna, msi, reg = section
    fig = pl.metabolite_maps(store, table_key="msi_table", features=[msi.var_names[0]])
    ax = fig.axes[0]
    spots = next(c for c in ax.collections if isinstance(c, EllipseCollection))
    # each pixel drawn where the registration puts it, coloured by its intensity
    np.testing.assert_allclose(spots.get_offsets(), reg.transform(msi.obsm["spatial"]), atol=1e-6)
    np.testing.assert_allclose(spots.get_array(), np.asarray(msi[:, 0].X).ravel(), rtol=1e-6)
    # over the H&E, in micrometres, with a scale bar
    (image,) = [a for a in ax.get_images() if isinstance(a, AxesImage)]
    np.testing.assert_allclose(image.get_extent(), _he_extent(rna), rtol=1e-9)
    assert any(isinstance(a, AnchoredSizeBar) for a in ax.artists)
    plt.close(fig)


def test_metabolite_maps_of_the_rna_table_and_a_prediction_store(section, store, predictions):
    rna, msi, _ = section
    fig = pl.metabolite_maps(store, table_key="rna_table", features=[rna.var_names[0]])
    spots = next(c for c in fig.axes[0].collections if isinstance(c, EllipseCollection))
    np.testing.assert_allclose(spots.get_offsets(), rna.obsm["spatial"], atol=1e-9)
    plt.close(fig)
    _, stored = predictions
    fig = pl.metabolite_maps(stored)  # the default table of a predictions store
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 * msi.n_vars  # predicted | std per metabolite
    for ax in panels:  # the H&E under every panel
        assert len(ax.get_images()) == 1
    plt.close(fig)


def test_the_image_comes_from_the_section_or_not_at_all(section, predictions):
    rna, _, _ = section
    pred, _ = predictions
    assert not pl.metabolite_maps(pred).axes[0].get_images()  # a prediction carries no image
    fig = pl.metabolite_maps(pred, img_from=rna)
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_extent(), _he_extent(rna), rtol=1e-9)
    fig = pl.metabolite_maps(pred, img_from=rna, img=False, scalebar=False)
    assert not fig.axes[0].get_images() and not fig.axes[0].artists
    plt.close("all")


def test_registration_overlay_over_the_he(section, store):
    rna, msi, reg = section
    ax = pl.registration(rna, msi, reg)
    (image,) = ax.get_images()
    np.testing.assert_allclose(image.get_extent(), _he_extent(rna), rtol=1e-9)
    assert image.get_zorder() < min(c.get_zorder() for c in ax.collections)  # underneath
    (bar,) = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
    assert bar.get_gid() == "scale_bar"
    # the same from the store, and without the image when asked
    from_store = pl.registration(store, store, reg)
    np.testing.assert_allclose(from_store.get_images()[0].get_extent(), image.get_extent())
    assert not pl.registration(rna, msi, reg, img=False).get_images()
    plt.close("all")


def _not_blank(path) -> None:
    """The middle of the figure (the data, not the colour bar or labels) holds many colours."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    h, w = pixels.shape[:2]
    middle = pixels[int(0.3 * h) : int(0.7 * h), int(0.25 * w) : int(0.6 * w)]
    colours = np.unique(middle.reshape(-1, 3) // 16, axis=0)
    assert middle.std() > 10 and len(colours) > 20, f"{path} looks blank"


def test_spatialdata_plot_renders_the_stores(section, store, predictions, tmp_path):
    import spatialdata_plot  # noqa: F401  (registers the .pl accessor)

    _, msi, _ = section
    mz = msi.var_names[0]
    (
        store.pl.render_images("he_image")
        .pl.render_shapes("msi_pixels", color=mz, table_name="msi_table")
        .pl.render_shapes("rna_spots", fill_alpha=0.0, outline_alpha=1.0)
        .pl.show(coordinate_systems="global", save=tmp_path / "aligned.png")
    )
    _not_blank(tmp_path / "aligned.png")
    _, stored = predictions
    (
        stored.pl.render_images("he_image")
        .pl.render_shapes("spots", color=mz, table_name="table")
        .pl.show(coordinate_systems="global", save=tmp_path / "predicted.png")
    )
    _not_blank(tmp_path / "predicted.png")
    plt.close("all")
