"""On what scale the MSI values are, and the per-pixel signal on a linear scale that the background rule needs.

The background rule (``_background``) puts the tissue edge half-way between the
background and the tissue level, which is right only on a scale linear in intensity: a
pixel that straddles the edge gets signal in proportion to the tissue it covers. Users
pass MSI values on other scales, so the values are read as one of:

- **raw** (``layers["raw"]``, or ``X`` when neither rule below applies): used as they are;
- **log intensities** (``X`` non-negative and either ``uns["log1p"]`` set, as scanpy's
  ``log1p`` leaves it, or every value at most ``LOG_CEILING`` and varying as logs do:
  little spread on tissue, ``LOG_SPREAD``, and little contrast to the background,
  ``LOG_CONTRAST``): turned back by ``expm1`` (in the recorded base);
- **standardised or centred** (``X`` has negative values, e.g. z-scores): each feature is
  shifted so that its smallest value is 0. A per-feature shift and scale is an affine map
  of the intensities, under which the half-way rule gives the same edge, so z-scores of
  raw intensities lose nothing. z-scores of *log* intensities cannot be turned back (the
  scale of each log is gone): that is an error that says what to pass.

A raster whose every pixel sums to the same total (normalised per pixel) has lost the
tissue / background contrast; that too is an error. The rule reads :func:`pixel_signal`,
which weighs the features alike whatever their units.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import scipy.sparse as sp

from .._constants import RAW_LAYER

# log1p of any detector's intensity stays below this (e^50 is about 5e21 counts)
LOG_CEILING = 50.0
# coefficient of variation of a feature over on-tissue pixels: logs of intensities vary by
# a few tenths of a log unit about a level of several units (about 0.1), the intensities
# themselves, log-normal and spatially structured, by more than half their mean (about 0.8 on
# the synthetic sections); this splits the two
LOG_SPREAD = 0.3
# the median feature's dimmest pixels against its brightest: background intensities are a few
# percent of tissue ones (at most 0.05 on the synthetic sections, less on real MALDI), while
# logs of intensities that differ 10-100 fold differ by far less than that factor (0.3-0.6)
LOG_CONTRAST = 0.15
# the pixels with the highest (lowest) totals, taken as on tissue for the spread test: on any raster
# the rule can work on, tissue covers more than this share
TOP_SHARE = 0.25
# each feature's on-tissue level for the signal: tissue covers more than a tenth of any raster
# the rule can work on, so this quantile is a tissue value (and, a quantile, it moves with
# any per-feature shift and factor)
SIGNAL_QUANTILE = 0.9
# totals whose relative spread is below this were normalised per pixel (TIC normalisation)
PER_PIXEL_SPREAD = 1e-4


def _matrix(msi: ad.AnnData):
    """``layers["raw"]`` or ``X`` (never copied unless sparse-incompatible), and its name."""
    if RAW_LAYER in msi.layers:
        return msi.layers[RAW_LAYER], f"layers[{RAW_LAYER!r}]"
    return msi.X, "X"


def _row_sums(x) -> np.ndarray:
    return np.asarray(x.sum(axis=1) if sp.issparse(x) else np.asarray(x, dtype=np.float64).sum(axis=1)).ravel().astype(np.float64)


def _rows(x, rows: np.ndarray) -> np.ndarray:
    block = x[rows]
    return block.toarray() if sp.issparse(block) else np.asarray(block, dtype=np.float64)


def looks_logarithmic(x, totals: np.ndarray) -> bool:
    """Whether non-negative values ``x`` vary as logarithms of intensities do (module notes, ``LOG_SPREAD``, ``LOG_CONTRAST``).

    Both must hold: on the top pixels (tissue) each feature's positive values spread
    little about their level, and the bottom pixels (background, or the dimmest tissue)
    are not much dimmer than the top ones.
    """
    order = np.argsort(totals)
    k = max(int(TOP_SHARE * len(totals)), 1)
    top, bottom = _rows(x, order[-k:]), _rows(x, order[:k])
    spreads, contrasts = [], []
    for high, low in zip(top.T, bottom.T):
        values = high[high > 0]
        if values.size >= 3:
            spreads.append(values.std() / values.mean())
            contrasts.append(np.median(low) / np.median(values))
    if not spreads:
        return False
    return float(np.median(spreads)) < LOG_SPREAD and float(np.median(contrasts)) > LOG_CONTRAST


def _log_base(msi: ad.AnnData) -> float | None:
    """The base scanpy's ``log1p`` recorded (e for ``None``), or ``None`` when it did not run."""
    info = msi.uns.get("log1p")
    if info is None:
        return None
    base = info.get("base") if isinstance(info, dict) else None
    return float(np.e if base is None else base)


def linear_intensities(msi: ad.AnnData) -> tuple[np.ndarray | sp.spmatrix, str]:
    """The MSI values on a scale linear in intensity (up to a shift and a factor per feature), and how they were read.

    The caller's matrices are never modified (a transformed copy is returned when needed).

    Raises
    ------
    ValueError
        Non-finite values, negative raw intensities, standardised log intensities, or
        values normalised per pixel: what was found and what to pass instead.
    """
    x, name = _matrix(msi)
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size and not np.isfinite(values).all():
        raise ValueError(
            f"msi.{name} has NaN or infinite values: the background rule cannot read them. Fill them "
            "(0 where nothing was detected) or pass msi_mask=<on-tissue booleans>."
        )
    lowest = float(values.min()) if values.size else 0.0
    highest = float(values.max()) if values.size else 0.0
    if name != "X" and lowest < 0:
        raise ValueError(
            f"msi.{name} should hold raw intensities but has negative values (min {lowest:g}): "
            "put the unnormalised intensities there, or pass msi_mask=<on-tissue booleans>."
        )
    totals = _row_sums(x)
    _check_contrast(totals, name, lowest != highest)
    if name != "X":
        return x, f"raw intensities from msi.{name}"
    if lowest < 0:
        # standardised or centred: an affine map per feature, which the signal below undoes
        dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        shifted = dense - dense.min(axis=0)
        if looks_logarithmic(shifted, shifted.sum(axis=1)):
            raise ValueError(
                f"msi.X has negative values (min {lowest:g}) and, shifted to start at 0, varies on tissue as "
                "logarithms do: it looks like standardised log intensities, which cannot be turned back into "
                "intensities. The tissue / background split needs intensities on a linear scale: keep the raw "
                f"intensities in msi.layers[{RAW_LAYER!r}] (or pass them as msi.X), or pass msi_mask=<on-tissue "
                "booleans> or tic_threshold=<summed intensity>."
            )
        return shifted, "standardised values, each feature shifted to start at 0"
    base = _log_base(msi)
    if base is None and (highest > LOG_CEILING or not looks_logarithmic(x, totals)):
        return x, "raw intensities from msi.X"
    how = "uns['log1p']" if base is not None else f"all values <= {LOG_CEILING:g} and spread as logs"
    factor = np.log(np.e if base is None else base)
    if sp.issparse(x):
        out = x.astype(np.float64)  # a copy: the caller's matrix stays as it is
        out.data = np.expm1(out.data * factor)
        return out, f"log intensities ({how}), turned back by expm1"
    return np.expm1(np.asarray(x, dtype=np.float64) * factor), f"log intensities ({how}), turned back by expm1"


def pixel_signal(x) -> np.ndarray:
    """Per-pixel tissue signal: each feature shifted to start at 0 and divided by its ``SIGNAL_QUANTILE`` level, summed.

    Linear in intensity (so the half-way edge rule holds) and the same for any per-feature
    shift and positive factor: raw intensities and their z-scores give the same signal. A
    feature that is flat (its quantile level equals its minimum) carries no weight.
    """
    n, p = x.shape
    low, level = np.zeros(p), np.zeros(p)
    csc = x.tocsc() if sp.issparse(x) else None
    for j in range(p):
        column = csc[:, j].toarray().ravel() if csc is not None else np.asarray(x[:, j], dtype=np.float64)
        low[j] = column.min() if n else 0.0
        level[j] = np.quantile(column, SIGNAL_QUANTILE) if n else 0.0
    span = level - low
    weight = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
    signal = np.asarray(x @ weight).ravel() - float(low @ weight)
    return np.maximum(signal, 0.0)


def _check_contrast(totals: np.ndarray, name: str, values_vary: bool) -> None:
    """A clear error when every pixel sums to the same total although the values vary (normalised per pixel)."""
    mean = float(totals.mean()) if totals.size else 0.0
    if values_vary and totals.size > 1 and mean != 0 and float(totals.std()) < PER_PIXEL_SPREAD * abs(mean):
        raise ValueError(
            f"Every MSI pixel's values in msi.{name} sum to the same total ({mean:.4g}): they were normalised per "
            "pixel (e.g. TIC normalisation), which removes the tissue / background contrast the background rule "
            f"reads. Keep the raw intensities in msi.layers[{RAW_LAYER!r}], or pass msi_mask=<on-tissue booleans>."
        )
